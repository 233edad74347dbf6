"""What ``run`` refuses at start, ``check`` (and so a reload) refuses too, with the same message;
an unknown key names the nearest known one (issue #28)."""

import subprocess
import sys
from pathlib import Path

import pytest

from aggregator import check
from aggregator.config import ConfigError, parse_config
from aggregator.errors import StartupError
from aggregator.flow.checkpoints import check_state_dir
from tests.conftest import DEADLINE

AGGREGATOR = [sys.executable, "-m", "aggregator"]


def errors_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "c.toml", {})
    return caught.value.errors


def with_source(**keys: object) -> dict[str, object]:
    return {
        "sources": {"app": {"type": "file", "paths": ["/tmp/*.log"], **keys}},
        "sinks": {"out": {"type": "stdout"}},
    }


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {**with_source(), "aggregator": {"idle_timout": "1s"}},
            "c.toml: aggregator.idle_timout: unknown key (did you mean idle_timeout?)",
        ),
        (
            with_source(start_from="end"),
            "c.toml: sources.app.start_from: unknown key (did you mean start_at?)",
        ),
        (
            with_source(timestamp={"feild": "t"}),
            "c.toml: sources.app.timestamp.feild: unknown key (did you mean field?)",
        ),
        (
            {**with_source(), "sinks": {"out": {"type": "stdout", "fromat": "json"}}},
            "c.toml: sinks.out.fromat: unknown key (did you mean format?)",
        ),
        (
            with_source(multiline={"start": "^x", "max_line": 3}),
            "c.toml: sources.app.multiline.max_line: unknown key (did you mean max_lines?)",
        ),
        (with_source(zebra=1), "c.toml: sources.app.zebra: unknown key"),
    ],
)
def test_an_unknown_key_names_the_nearest_known_one(data: dict[str, object], error: str) -> None:
    """A misspelt key is refused with the known key it is closest to, at any depth; a key
    close to none is refused plainly."""
    assert errors_of(data) == [error]


def test_a_timestamp_format_python_rejects_is_refused() -> None:
    """A strptime pattern with a directive Python does not know (``%Q``) is refused with
    Python's reason, not accepted to match nothing."""
    assert errors_of(with_source(timestamp={"format": "%Q"})) == [
        'c.toml: sources.app.timestamp.format: expected "auto" or a strptime pattern such as '
        "\"%d/%m/%Y %H:%M:%S\", got \"%Q\" ('Q' is a bad directive in format '%Q')"
    ]
    parse_config(with_source(timestamp={"format": "%d/%m/%Y %H:%M:%S"}), "c.toml", {})


def test_check_refuses_a_state_dir_as_run_does_and_leaves_nothing(tmp_path: Path) -> None:
    """``check`` gives the very message ``run``'s start gives for a state_dir that cannot be
    made, and a state_dir it could make is not left behind by ``check``."""
    config = parse_config({**with_source(), "aggregator": {"state_dir": "/proc/x"}}, "c", {})
    with pytest.raises(StartupError) as refused:
        check_state_dir(Path("/proc/x"))
    assert check.problems(config) == [str(refused.value)]
    fresh = tmp_path / "a" / "b" / "state"
    config = parse_config({**with_source(), "aggregator": {"state_dir": str(fresh)}}, "c", {})
    assert check.problems(config) == []
    assert not (tmp_path / "a").exists()


def test_check_and_run_refuse_the_same_things_with_the_same_words(tmp_path: Path) -> None:
    """End to end: a config ``run`` cannot start is refused by ``check`` (exit 2) with the
    message ``run`` gives (exit 1)."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[aggregator]\nstate_dir = "/proc/x"\n'
        f'[sources.app]\ntype = "file"\npaths = ["{tmp_path}/*.log"]\n'
        '[sinks.out]\ntype = "stdout"\n'
    )

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AGGREGATOR, command, "-c", str(config)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=DEADLINE * 2,
            stdin=subprocess.DEVNULL,
        )

    checked, started = run("check"), run("run")
    assert (checked.returncode, started.returncode) == (2, 1)
    message = "aggregator.state_dir: cannot write /proc/x: "
    [refusal] = [line for line in checked.stderr.splitlines() if message in line]
    assert refusal.startswith(f"{config}: {message}")
    reason = refusal.removeprefix(f"{config}: ")
    assert f"aggregator: ERROR: {reason}" in started.stderr.splitlines()
