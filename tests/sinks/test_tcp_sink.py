"""The tcp sink (SPEC §6): a peer that starts late gets what waited; a peer that drops the
connection gets the rest on a new one; nothing is lost or repeated."""

import asyncio
import socket
from pathlib import Path

import orjson

from tests.conftest import Cli, start_cli, wait_until


class Peer:
    """A TCP listener collecting newline-delimited records, connection by connection. Its
    port is bound from the start, and refuses connections until ``start`` listens on it: no
    other socket can take it meanwhile (a port only chosen could be, even by the sink's own
    connection attempts, as their local port)."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.connections: list[list[bytes]] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, sock=self._socket)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines: list[bytes] = []
        self.connections.append(lines)
        self._writers.append(writer)
        while line := await reader.readline():
            lines.append(line)

    @property
    def lines(self) -> list[str]:
        return [orjson.loads(line)["line"] for lines in self.connections for line in lines]

    async def drop(self) -> None:
        """Close every open connection (the peer restarts, say)."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def stop(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._socket.close()


def config(tmp_path: Path, port: int, logs: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[sources.app]
type = "file"
paths = ["{logs}"]
start_at = "beginning"

[sinks.forward]
type = "tcp"
address = "127.0.0.1:{port}"
format = "json"
"""
    )
    return path


def append(path: Path, start: int, count: int) -> None:
    with path.open("a") as file:
        file.writelines(f"line {n}\n" for n in range(start, start + count))


async def test_late_peer_gets_what_waited(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A peer that starts after the aggregator gets every record, once, in order."""
    logs = tmp_path / "a.log"
    append(logs, 0, 100)
    peer = Peer()
    try:
        cli = await start_cli("run", "-c", str(config(tmp_path, peer.port, logs)), cwd=tmp_path)
        cli_processes.append(cli)
        await cli.wait_for(lambda: any("retrying" in line for line in cli.err), "a retry")
        await peer.start()
        await wait_until(lambda: len(peer.lines) >= 100, "100 lines at the peer")
        append(logs, 100, 50)
        await wait_until(lambda: len(peer.lines) >= 150, "150 lines at the peer")
        assert peer.lines == [f"line {n}" for n in range(150)]
        assert await cli.stop() == 0
    finally:
        await peer.stop()


async def test_dropped_connection_is_noticed_before_writing(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A peer that closes the connection: the next records go to a new one, none lost."""
    logs = tmp_path / "a.log"
    append(logs, 0, 100)
    peer = Peer()
    await peer.start()
    try:
        cli = await start_cli("run", "-c", str(config(tmp_path, peer.port, logs)), cwd=tmp_path)
        cli_processes.append(cli)
        await wait_until(lambda: len(peer.lines) >= 100, "100 lines at the peer")
        await peer.drop()
        await cli.wait_for(
            lambda: any("closed the connection" in line for line in cli.err), "the close noticed"
        )
        append(logs, 100, 100)
        await wait_until(lambda: len(peer.lines) >= 200, "200 lines at the peer")
        assert peer.lines == [f"line {n}" for n in range(200)]
        assert len(peer.connections) == 2
        assert await cli.stop() == 0
    finally:
        await peer.stop()
