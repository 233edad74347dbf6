"""Broken and hostile upstreams (SPEC §9): a websocket source and ``aggregator connect`` facing a
server that sends what no aggregator would. Bad lines are dropped and counted, the good ones go
on, nothing the server sent is copied into the output as it came."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.conftest import Cli, start_cli, wait_until
from tests.helpers.web import http_get

GOOD = {"seq": 1, "ts": "2026-11-25T10:00:00.000001Z", "source": "app", "origin": "a.log",
        "line": "good one", "level": "info"}  # fmt: skip
FORGED = '{"seq":99,"ts":"2026-11-25T10:00:00Z","source":"forged","origin":"x","line":"forged"}'
BROKEN = [
    b"not json at all",
    b"[1, 2, 3]",
    orjson.dumps({**GOOD, "seq": 2, "level": ["error"]}),
    orjson.dumps({**GOOD, "seq": 3, "level": "err or"}),
    orjson.dumps({**GOOD, "seq": 4, "fields": "not an object"}),
    orjson.dumps({**GOOD, "seq": 5, "ts": 12}),
    orjson.dumps({**GOOD, "seq": "6"}),
    orjson.dumps({**GOOD, "seq": 7, "node": {"a": 1}}),
    orjson.dumps({"notice": "gap", "count": "many"}),
    orjson.dumps({"error": "\x1b]0;pwned\x07 the server is sad"}),
]
"""Frames no aggregator sends: each is dropped (or its text escaped), none ends the program."""


class BrokenUpstream:
    """A WebSocket server that greets, sends BROKEN between two good records (the second with
    extra members that must not be copied), then an oversized frame, then waits."""

    def __init__(self, oversized: int = 0) -> None:
        self.oversized = oversized
        self.connections = 0
        self.address: tuple[str, int] = ("", 0)

    async def handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        await connection.send(orjson.dumps({"hello": {"run": "r1", "seq": 0}}), text=True)
        if self.connections > 1:
            await connection.wait_closed()
            return
        await connection.send(orjson.dumps(GOOD), text=True)
        for frame in BROKEN:
            await connection.send(frame, text=True)
        second = {**GOOD, "seq": 8, "line": "good two", "fields": {"k": "v"}, "extra": FORGED}
        # A frame of two lines: the record, then a line of JSON text that is not one.
        await connection.send(orjson.dumps(second) + b"\n" + FORGED.encode()[:-1], text=True)
        if self.oversized:
            await connection.send(b" " * self.oversized, text=True)
        await connection.wait_closed()


@pytest.fixture
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[BrokenUpstream]:
    server = BrokenUpstream(getattr(request, "param", 0))
    async with serve(server.handle, "127.0.0.1", 0, max_size=None) as running:
        server.address = running.sockets[0].getsockname()[:2]
        yield server


def lines_out(cli: Cli) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in cli.out if line.startswith("{")]


async def test_connect_drops_broken_lines_and_goes_on(
    tmp_path: Path, cli_processes: list[Cli], upstream: BrokenUpstream
) -> None:
    """``connect --format json``: the two good records, encoded again (no unknown member, no
    forged line); every broken line dropped and named; escapes in the server's text escaped."""
    host, port = upstream.address
    cli = await start_cli("connect", f"ws://{host}:{port}/ws", "--format", "json", cwd=tmp_path)
    cli_processes.append(cli)
    await cli.wait_for_out("good two")
    await cli.wait_for(lambda: any("sad" in line for line in cli.err), "the server's error")
    assert cli.proc.returncode is None
    records = lines_out(cli)
    assert [r["line"] for r in records] == ["good one", "good two"]
    assert [r["seq"] for r in records] == [1, 8]
    assert "extra" not in records[1] and records[1]["fields"] == {"k": "v"}
    assert not any("forged" in line for line in cli.out)
    assert any("dropped what is not a valid record" in line for line in cli.err)
    assert not any("\x1b" in line or "\x07" in line for line in cli.err)
    assert any("\\x1b]0;pwned\\x07" in line for line in cli.err)
    assert not any("Traceback" in line for line in cli.err)


def central_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "central.toml"
    path.write_text(
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[sources.up]\ntype = "websocket"\nurl = "ws://127.0.0.1:{port}/ws"\n{extra}\n'
        '[sinks.out]\ntype = "stdout"\nformat = "json"\n'
        '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    )
    return path


@pytest.mark.parametrize("upstream", [2 << 20], indirect=True)
async def test_a_websocket_source_drops_broken_lines_and_oversized_frames(
    tmp_path: Path, cli_processes: list[Cli], upstream: BrokenUpstream
) -> None:
    """The websocket source takes the good records, counts the broken lines as invalid, and a
    frame over its ``max_size`` closes the connection (retried), never the program."""
    config = central_config(tmp_path, upstream.address[1], 'max_size = "1MiB"')
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    http = await cli.serving()
    await cli.wait_for_out("good two")
    await wait_until(lambda: upstream.connections >= 2, "a reconnection after the big frame")
    records = lines_out(cli)
    assert [r["line"] for r in records] == ["good one", "good two"]
    assert "extra" not in records[1] and not any("forged" in line for line in cli.out)
    _, _, metrics = http_get(f"http://{http[0]}:{http[1]}/metrics")
    invalid = [line for line in metrics.splitlines() if "invalid" in line]
    # BROKEN less the error message, and the line cut short after the second record
    assert invalid == ['aggregator_dropped_total{source="up",reason="invalid"} 10']
    assert cli.proc.returncode is None
    assert await cli.stop() == 0
    assert not any("Traceback" in line for line in cli.err)
    await asyncio.sleep(0)
