"""Hostile clients of the WebSocket port (SPEC §9): they are refused or cut off, and the stream
goes on for everyone else."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from websockets.asyncio.client import connect

from aggregator.record.patterns import MAX_SEARCHED
from aggregator.web.subscription import SubscriptionError, compile_grep
from tests.conftest import Cli
from tests.helpers.rawws import handshake, masked_frame, peak_rss_mib, raw_get
from tests.helpers.web import Server, Subscription, http_get, json_lines, start_server


@pytest.fixture
async def server(tmp_path: Path, cli_processes: list[Cli]) -> AsyncIterator[Server]:
    yield await start_server(tmp_path, cli_processes, "replay = 100")


def flood(sock: socket.socket, frames: int, payload: bytes) -> int:
    """Send ``frames`` masked text frames of ``payload`` without reading; the frames sent
    before the server cut the connection."""
    chunk = masked_frame(payload) * 1000
    sent = 0
    with contextlib.suppress(OSError):
        while sent < frames:
            sock.sendall(chunk)
            sent += 1000
    return sent


@pytest.mark.slow
async def test_a_client_that_floods_commands_and_never_reads_is_closed(server: Server) -> None:
    """Answers to a client's messages count against its buffer: a client flooding one-byte
    frames (each answered with an error) and never reading is closed with 1008, the server's
    memory stays bounded, and another client still gets the stream."""
    pid = server.cli.proc.pid
    before = peak_rss_mib(pid)
    sock, head = handshake(server.http)
    assert head.startswith(b"HTTP/1.1 101"), head
    try:
        sent = await asyncio.to_thread(flood, sock, 300_000, b"x")
        await server.cli.wait_for(
            lambda: any("disconnecting it" in line for line in server.cli.err),
            "the flooding client disconnected",
        )
    finally:
        sock.close()
    grown = peak_rss_mib(pid) - before
    assert grown < 100, f"peak RSS grew {grown:.0f} MiB under {sent} frames"
    async with connect(server.url(query="replay=0")) as connection:
        subscription = Subscription(connection)
        await subscription.receive_until(lambda: subscription.others, "the hello")
        await server.send(json_lines(5))
        assert len(await subscription.records_until(5)) == 5


async def test_a_loopback_listener_refuses_foreign_hosts(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """DNS rebinding: on 127.0.0.1 without a token, a request whose Host is another site's
    name is refused (403) on every path, the WebSocket too; loopback names, ``localhost`` and
    ``allowed_hosts`` pass."""
    server = await start_server(tmp_path, cli_processes, 'allowed_hosts = ["logs.internal"]')
    host, port = server.http
    evil = [("Host", f"evil.example:{port}"), ("Origin", f"http://evil.example:{port}")]
    for path in ("/", "/ws", "/metrics", "/healthz", "/app.js"):
        assert await asyncio.to_thread(raw_get, server.http, path, evil) == 403, path
    sock, head = await asyncio.to_thread(handshake, server.http, "/ws?replay=10", evil)
    sock.close()
    assert head.startswith(b"HTTP/1.1 403"), head
    for name in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", f"logs.internal:{port}",
                 f"LOGS.internal:{port}"):  # fmt: skip
        status = await asyncio.to_thread(raw_get, server.http, "/", [("Host", name)])
        assert status == 200, name
    sock, head = await asyncio.to_thread(handshake, server.http, "/ws", [("Host", f"[::1]:{port}")])
    sock.close()
    assert head.startswith(b"HTTP/1.1 101"), head
    assert host == "127.0.0.1"


async def test_duplicate_headers_are_a_bad_request(server: Server) -> None:
    """Two Host, Origin or Authorization headers: 400, and no traceback on stderr."""
    host = ("Host", f"127.0.0.1:{server.http[1]}")
    for twice in (
        [host, host],
        [host, ("Origin", "http://a"), ("Origin", "http://b")],
        [host, ("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
    ):
        for path in ("/", "/ws", "/healthz"):
            assert await asyncio.to_thread(raw_get, server.http, path, twice) == 400
    assert await asyncio.to_thread(raw_get, server.http, "/healthz", [host]) == 200
    assert not any("Traceback" in line or "Error" in line for line in server.cli.err)


def test_costly_client_patterns_are_refused_and_searches_bounded() -> None:
    """A pattern whose RE2 program is over the bound is refused with the reason; an accepted
    one is searched in a line's first MAX_SEARCHED characters only."""
    with pytest.raises(SubscriptionError, match="too costly"):
        compile_grep(r"(.*\S){150}s")
    searcher = compile_grep("needle")
    assert searcher.search("x" * (MAX_SEARCHED - 6) + "needle")
    assert not searcher.search("x" * MAX_SEARCHED + "needle")


async def test_a_costly_grep_gets_400_or_an_error(server: Server) -> None:
    """``/ws?grep=`` with a costly pattern: 400 naming why; as a live filter: an error frame,
    and the old filter stays."""
    status, _, body = http_get(
        server.url("/ws", "grep=" + quote(r"(.*\S){150}s")).replace("ws:", "http:", 1)
    )
    assert status == 400 and "too costly" in body
    async with connect(server.url(query="grep=ok")) as connection:
        subscription = Subscription(connection)
        await connection.send(orjson.dumps({"filter": {"grep": r"(.*\S){150}s"}}).decode())
        await subscription.receive_until(
            lambda: any("error" in m for m in subscription.others), "the error"
        )
        assert "too costly" in next(m["error"] for m in subscription.others if "error" in m)
        await server.send(json_lines(3, text="ok") + json_lines(2, text="no"))
        assert len(await subscription.records_until(3)) == 3
