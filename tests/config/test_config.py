"""Config loading: typed values, every error at once with its key path (SPEC §3)."""

import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.config import (
    ConfigError,
    FileSinkConfig,
    FileSourceConfig,
    load_config,
    parse_config,
)
from tests.conftest import DEADLINE

MINIMAL = {
    "sources": {"app": {"type": "file", "paths": ["/tmp/*.log"]}},
    "sinks": {"out": {"type": "stdout"}},
}


def errors_of(data: dict[str, object], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "c.toml", env or {})
    return caught.value.errors


def test_defaults_are_filled_in() -> None:
    """A minimal config gets the documented defaults."""
    config = parse_config(MINIMAL, "c.toml", {})
    source = config.sources["app"]
    assert isinstance(source, FileSourceConfig)
    assert source.start_at == "end" and source.max_line_bytes == 1 << 20
    assert config.aggregator.order_window == 0.25
    assert config.aggregator.idle_timeout == 1.0


def test_every_error_is_reported_with_its_key_path() -> None:
    """Bad values, unknown keys, unknown types and missing keys all come back at once."""
    errors = errors_of(
        {
            "aggregator": {"order_window": "250x", "bogus": 1},
            "sources": {
                "app": {"type": "file", "paths": ["a"], "start_at": "middle"},
                "net": {"type": "tcp", "listen": "8765x"},
                "q": {"type": "carrier-pigeon"},
            },
            "sinks": {
                "live": {"type": "stdout", "format": "yaml", "filter": {"grep": "("}},
                "f": {"type": "file"},
            },
        }
    )
    assert errors == [
        'c.toml: aggregator.order_window: expected a duration such as "250ms", "1s" or "5m", '
        'got "250x"',
        "c.toml: aggregator.bogus: unknown key",
        "c.toml: sources.app.start_at: expected one of 'end' or 'beginning', got \"middle\"",
        'c.toml: sources.net.listen: expected "HOST:PORT", got "8765x"',
        "c.toml: sources.q.type: expected one of 'file', 'stdin', 'tcp', 'udp', 'unix', "
        "'nats', 'websocket', got \"carrier-pigeon\"",
        'c.toml: sinks.live.filter.grep: expected a regular expression, got "(": '
        "missing ), unterminated subpattern at position 0",
        "c.toml: sinks.live.format: expected one of 'text', 'json' or 'raw', got \"yaml\"",
        "c.toml: sinks.f.path: required key is missing",
    ]


def test_sizes_durations_and_list_indexes_in_paths() -> None:
    """A bad element of a list is named with its index."""
    errors = errors_of(
        {
            "sources": {"app": {"type": "file", "paths": ["ok", 3], "max_line_bytes": "1MiBB"}},
            "sinks": {"out": {"type": "stdout"}},
        }
    )
    assert "c.toml: sources.app.paths[1]: input should be a valid string, got 3" in errors
    assert any(
        line.startswith("c.toml: sources.app.max_line_bytes: expected a size") for line in errors
    )


def test_environment_variables_are_expanded() -> None:
    """${VAR} and ${VAR:-default} come from the environment; unset without default is an error."""
    data = {
        "aggregator": {"state_dir": "${STATE:-/tmp/default}"},
        "sources": {"app": {"type": "file", "paths": ["${LOGS}/*.log"]}},
        "sinks": {"out": {"type": "file", "path": "${OUT:-}x.log"}},
    }
    config = parse_config(data, "c.toml", {"LOGS": "/srv/logs"})
    assert config.aggregator.state_dir == Path("/tmp/default")
    source = config.sources["app"]
    assert isinstance(source, FileSourceConfig) and source.paths == ["/srv/logs/*.log"]
    sink = config.sinks["out"]
    assert isinstance(sink, FileSinkConfig) and sink.path == Path("x.log")
    errors = errors_of(data)
    assert errors == [
        "c.toml: sources.app.paths[0]: environment variable LOGS is not set (use ${LOGS:-default})"
    ]


def test_needs_a_source_and_a_sink() -> None:
    """Empty sources or sinks tables are errors, as are missing ones."""
    errors = errors_of({"sources": {}})
    assert any("sources" in line for line in errors)
    assert "c.toml: sinks: required key is missing" in errors


def test_load_config_names_the_file(tmp_path: Path) -> None:
    """TOML syntax errors and unreadable files name the file."""
    broken = tmp_path / "broken.toml"
    broken.write_text("[sources\n")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert caught.value.errors[0].startswith(f"{broken}: not valid TOML")
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "nope.toml")
    assert "cannot read" in missing.value.errors[0]


def test_example_config_is_valid() -> None:
    """The shipped example passes its own check."""
    config = load_config(Path(__file__).parents[2] / "config.example.toml", env={})
    assert list(config.sources) == ["system", "app", "net", "syslog"]


def test_parse_workers_is_auto_or_a_count() -> None:
    assert parse_config(MINIMAL, "c.toml", {}).aggregator.parse_workers == "auto"
    none = parse_config({**MINIMAL, "aggregator": {"parse_workers": 0}}, "c.toml", {})
    assert none.aggregator.parse_workers == 0
    assert errors_of({**MINIMAL, "aggregator": {"parse_workers": -1}}) == [
        'c.toml: aggregator.parse_workers: expected "auto" or a number of processes, 0 to 64, '
        "got -1"
    ]


def test_remote_parts_are_checked() -> None:
    """Bad server URLs, subject tokens and stream addresses are errors with their key paths."""
    errors = errors_of(
        {
            "sources": {
                "bus": {"type": "nats", "url": "http://x:4222", "subject": "logs.*"},
                "up": {"type": "websocket", "url": "10.0.0.5:8765"},
            },
            "sinks": {
                "bus": {"type": "nats", "url": [], "stream": "my stream", "max_records": 0},
                "fwd": {"type": "tcp", "address": "collector"},
            },
        }
    )
    assert errors == [
        'c.toml: sources.bus.url: expected "nats://HOST:PORT" (or tls://) or a list of them, '
        'got "http://x:4222"',
        "c.toml: sources.bus.subject: expected a name of letters, digits, _ and - (no spaces, "
        'no * or >), got "logs.*"',
        'c.toml: sources.up.url: expected "ws://HOST:PORT/ws" (filters in its query), '
        'got "10.0.0.5:8765"',
        'c.toml: sinks.bus.url: expected "nats://HOST:PORT" (or tls://) or a list of them, '
        "got an array",
        "c.toml: sinks.bus.stream: expected a name of letters, digits, _ and - (no spaces, "
        'no * or >), got "my stream"',
        "c.toml: sinks.bus.max_records: expected a number above 0, got 0",
        'c.toml: sinks.fwd.address: expected "HOST:PORT", got "collector"',
    ]


@pytest.mark.parametrize(
    "mode", ["0666", "0662", "0602", 0o666, "666"], ids=["0666", "0662", "0602", "0o666", "666"]
)
def test_a_unix_socket_others_may_write_is_refused(tmp_path: Path, mode: str | int) -> None:
    """A unix source whose mode lets others write (world-writable) is refused at config time,
    with the file and the key; a mode only the group may write is taken."""
    unix = {"type": "unix", "path": str(tmp_path / "in.sock")}
    shown = f"{mode:04o}" if isinstance(mode, int) else mode.zfill(4)
    assert errors_of({**MINIMAL, "sources": {"sock": {**unix, "mode": mode}}}) == [
        f'c.toml: sources.sock.mode: expected a mode that others cannot write, got "{shown}"'
    ]
    for kept in ("0660", "0620", 0o600):
        config = parse_config(
            {**MINIMAL, "sources": {"sock": {**unix, "mode": kept}}}, "c.toml", {}
        )
        assert config.sources["sock"].mode == (int(kept, 8) if isinstance(kept, str) else kept)


def test_check_refuses_a_world_writable_unix_socket(tmp_path: Path) -> None:
    """``aggregator check`` names the file and key of a unix source's mode "0666", exit 2."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[sources.sock]\ntype = "unix"\npath = "{tmp_path / "in.sock"}"\nmode = "0666"\n'
        '[sinks.out]\ntype = "stdout"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "check", "-c", str(config)],
        capture_output=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 2
    assert (
        f'{config}: sources.sock.mode: expected a mode that others cannot write, got "0666"'
        in result.stderr.decode()
    )
