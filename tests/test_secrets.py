"""Secrets are never printed (SPEC §9): not by ``check``, not in a config error, not in the
logs, not with ``--debug`` (which logs the headers websockets sends and receives)."""

import subprocess
import sys
from pathlib import Path

from aggregator.masking import mask_text, mask_url
from tests.conftest import DEADLINE, Cli, start_cli
from tests.helpers.nats_server import NatsServer

PASSWORD = "Pa55w0rdNATS"
UPSTREAM_TOKEN = "UpstreamT0ken"
SINK_TOKEN = "SinkT0kenXYZ"


def test_masking() -> None:
    """URL passwords, secret query parameters, Authorization values and bearer tokens."""
    assert mask_url("nats://u:pw@h:4222") == "nats://u:***@h:4222"
    assert mask_url("ws://h:1/ws?level=info&token=t") == "ws://h:1/ws?level=info&token=***"
    assert mask_text("> Authorization: Bearer abc") == "> Authorization: ***"
    assert mask_text("GET /ws?token=abc HTTP/1.1") == "GET /ws?token=*** HTTP/1.1"
    assert mask_text("connect to ws://a:b@h/x") == "connect to ws://a:***@h/x"
    assert mask_text("nothing secret: level=info") == "nothing secret: level=info"
    assert mask_text('WWW-Authenticate: Bearer realm="x"') == 'WWW-Authenticate: Bearer realm="x"'


def config_text(nats_url: str, upstream: str, listen: str = "127.0.0.1:0") -> str:
    return f"""
[aggregator]
state_dir = "state"

[sources.up]
type = "websocket"
url = "{upstream}?level=info&token={UPSTREAM_TOKEN}"
token = "{UPSTREAM_TOKEN}"

[sinks.bus]
type = "nats"
url = "{nats_url}"

[sinks.live]
type = "websocket"
listen = "{listen}"
auth_token = "{SINK_TOKEN}"
"""


def check(config: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "aggregator", "check", "-c", str(config)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=DEADLINE, cwd=config.parent
    )


def secrets_in(text: str) -> list[str]:
    return [s for s in (PASSWORD, UPSTREAM_TOKEN, SINK_TOKEN) if s in text]


def test_check_shows_no_secret(tmp_path: Path) -> None:
    """``check`` names every part and shows no password, token or header value."""
    config = tmp_path / "config.toml"
    nats_url = f"nats://ann:{PASSWORD}@127.0.0.1:4222"
    config.write_text(config_text(nats_url, "ws://127.0.0.1:1/ws"))
    result = check(config)
    assert result.returncode == 0, result.stderr
    assert "sink bus" in result.stdout and "source up" in result.stdout
    assert secrets_in(result.stdout + result.stderr) == []
    assert "ann:***@" in result.stdout and "token=***" in result.stdout


def test_a_wrongly_typed_secret_is_not_echoed(tmp_path: Path) -> None:
    """A token given as a number (or a list) is refused without showing it."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[sources.s]\ntype = "stdin"\n'
        f'[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\nauth_token = [{SINK_TOKEN!r}]\n'
    )
    result = check(config)
    assert result.returncode != 0
    assert "auth_token" in result.stderr
    assert secrets_in(result.stdout + result.stderr) == []


async def said(cli: Cli, text: str) -> None:
    await cli.wait_for(lambda: any(text in line for line in cli.err), repr(text))


async def test_debug_logs_show_no_secret(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """``run --debug`` against a nats-server that wants a password and an upstream that
    wants a token: the connected lines and websockets' header logging show neither."""
    nats = NatsServer(tmp_path / "nats", ["--user", "ann", "--pass", PASSWORD])
    try:
        upstream_config = tmp_path / "upstream.toml"
        upstream_config.write_text(
            '[aggregator]\nstate_dir = "state-up"\n[sources.s]\ntype = "stdin"\n'
            f'[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
            f'auth_token = "{UPSTREAM_TOKEN}"\n'
        )
        upstream = await start_cli("run", "-c", str(upstream_config), "--debug", cwd=tmp_path,
                                   stdin=subprocess.PIPE)  # fmt: skip
        cli_processes.append(upstream)
        host, port = await upstream.serving()
        nats_url = f"nats://ann:{PASSWORD}@127.0.0.1:{nats.port}"
        config = tmp_path / "config.toml"
        config.write_text(config_text(nats_url, f"ws://{host}:{port}/ws"))
        cli = await start_cli("run", "-c", str(config), "--debug", cwd=tmp_path)
        cli_processes.append(cli)
        # Connected after an outage, the line names the server: start it once that is said.
        await said(cli, "cannot connect")
        await nats.start()
        await said(cli, "connected to nats-server")
        await said(cli, ": connected")  # the upstream
        await said(cli, "Authorization")  # websockets' header logging
        await cli.stop()
        await upstream.stop()
        assert secrets_in("\n".join(cli.out + cli.err + upstream.out + upstream.err)) == []
    finally:
        await nats.stop()


async def test_control_characters_in_names_are_escaped_on_stderr(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A watched file whose name holds an ANSI escape or a newline is named on stderr with
    them escaped: no terminal control obeyed, no line of the program's forged."""
    name = "evil\x1b]0;pwned\x07\naggregator: ERROR: forged.log"
    cli = await start_cli("tail", "--no-follow", name, cwd=tmp_path)
    cli_processes.append(cli)
    await cli.exit_code()
    assert any("\\x1b]0;pwned\\x07\\naggregator: ERROR: forged" in line for line in cli.err)
    assert not any("\x1b" in line or "\x07" in line for line in cli.err)
    assert not any(line.startswith("aggregator: ERROR: forged") for line in cli.err), cli.err
