"""Helpers for tests of the WebSocket port: a running server fed over TCP, and plain HTTP."""

import asyncio
import contextlib
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import DEADLINE, LONGEST_WAIT, Cli, start_cli


@dataclass
class Server:
    """``aggregator run`` with a TCP source ``net`` (JSON lines) and a websocket sink ``live``."""

    cli: Cli
    tcp: tuple[str, int]
    http: tuple[str, int]
    clients: list[ClientConnection] = field(default_factory=list)
    """The WebSocket clients ``subscribe`` opened, for ``close_clients``."""

    def url(self, path: str = "/ws", query: str = "") -> str:
        scheme = "ws" if path == "/ws" else "http"
        host, port = self.http
        return f"{scheme}://{host}:{port}{path}" + (f"?{query}" if query else "")

    async def subscribe(self, query: str = "", **options: Any) -> "Subscription":
        """A client of ``/ws?QUERY`` that has had its hello (``options``: ``connect``'s)."""
        connection = await connect(self.url("/ws", query), **options)
        self.clients.append(connection)
        subscription = Subscription(connection)
        await subscription.receive_until(lambda: subscription.others, "the hello")
        return subscription

    async def close_clients(self) -> None:
        """Close the clients while the test's loop runs: a socket left to the garbage collector
        warns (an error here), in whichever later test it is collected, or at the very end.
        ``cli_processes`` does it at every test's end; a test may do it sooner."""
        for connection in self.clients:
            await connection.close()

    async def send(self, lines: list[str]) -> None:
        """Write ``lines`` to the TCP source on one connection."""
        await send_lines(self.tcp, lines)

    async def source_address(self, name: str) -> tuple[str, int]:
        """The address the socket source ``name`` logged that it listens on."""
        pattern = re.compile(rf"sources\.{re.escape(name)}: listening on \w+://([\d.]+):(\d+)")
        found: list[re.Match[str]] = []

        def logged() -> bool:
            found[:] = [m for line in self.cli.err if (m := pattern.search(line))]
            return bool(found)

        await self.cli.wait_for(logged, f"sources.{name} listening")
        return found[0].group(1), int(found[0].group(2))


async def send_lines(address: tuple[str, int], lines: list[str]) -> None:
    """Write ``lines`` to a TCP source on one connection."""
    _, writer = await asyncio.open_connection(*address)
    writer.write("".join(f"{line}\n" for line in lines).encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def json_lines(count: int, start: int = 0, level: str = "info", text: str = "msg") -> list[str]:
    """JSON log lines with rising timestamps: ``{"ts": …, "level": …, "msg": "<text> <n>"}``."""
    return [
        orjson.dumps(
            {"ts": f"2026-11-25T10:00:00.{n:06d}Z", "level": level, "msg": f"{text} {n}"}
        ).decode()
        for n in range(start, start + count)
    ]


async def start_server(
    tmp_path: Path,
    cli_processes: list[Cli],
    sink: str = "",
    env: dict[str, str] | None = None,
    debug: bool = False,
    port: int = 0,
    codec: str = "json",
    extra_sources: str = "",
) -> Server:
    """Run a server whose websocket sink has the extra TOML keys ``sink`` (on ``port``); the
    TCP source ``net`` decodes with ``codec``, and ``extra_sources`` are more TOML tables."""
    config = tmp_path / "server.toml"
    config.write_text(
        '[aggregator]\norder_window = "0s"\n'
        f'[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "{codec}"\n'
        f"{extra_sources}\n"
        '[sinks.out]\ntype = "stdout"\nformat = "json"\n'
        f'[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:{port}"\n{sink}\n'
    )
    flags = ["--debug"] if debug else []
    cli = await start_cli("run", "-c", str(config), *flags, cwd=tmp_path, env=env)
    cli_processes.append(cli)
    server = Server(cli, await cli.listening("tcp"), await cli.serving())
    cli.cleanups.append(server.close_clients)
    return server


@dataclass
class Subscription:
    """What one WebSocket client received: records, and every other message."""

    connection: ClientConnection
    records: list[dict[str, Any]] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # records in the text format
    rates: list[dict[str, Any]] = field(default_factory=list)  # the once-a-second rates frames
    frames: int = 0

    async def receive_until(self, condition: Callable[[], object], what: str) -> None:
        """Read frames until ``condition()`` holds; fail after DEADLINE without a new record
        or message (the rates frames are no progress), or after LONGEST_WAIT in all: a long
        stream on a busy box comes slower, not stuck (60,000 records took more than 15 s)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + LONGEST_WAIT
        try:
            async with asyncio.timeout(DEADLINE) as deadline:
                while not condition():
                    before = self.progress()
                    self.take(await self.connection.recv())
                    if self.progress() > before:
                        deadline.reschedule(min(loop.time() + DEADLINE, give_up))
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {what}: {len(self.records)} records, {self.others[-5:]}"
            ) from None

    def progress(self) -> int:
        """How many records and messages (not rates) came so far."""
        return len(self.records) + len(self.texts) + len(self.others)

    def take(self, frame: str | bytes) -> None:
        self.frames += 1
        text = frame if isinstance(frame, str) else frame.decode()
        for line in text.split("\n"):
            if not line.startswith("{"):
                self.texts.append(line)
                continue
            message = orjson.loads(line)
            if "rates" in message:
                self.rates.append(message)
            else:
                (self.records if "seq" in message else self.others).append(message)

    async def records_until(self, count: int) -> list[dict[str, Any]]:
        await self.receive_until(lambda: len(self.records) >= count, f"{count} records")
        return self.records

    def lines(self) -> list[str]:
        return [record["line"] for record in self.records]

    def notices(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.others if message.get("notice") == kind]


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of a GET; errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


class CuttableLink:
    """A TCP proxy in front of the server whose connections the test can cut (and refuse)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.down = False
        self.accepted = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"ws://{host}:{port}/ws"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink), name="test:proxy")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()

    def cut(self) -> None:
        """Drop every connection at once, as a network failure would; refuse new ones."""
        self.down = True
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
