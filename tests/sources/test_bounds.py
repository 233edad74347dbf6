"""Buffers bounded in bytes as well as records (SPEC §9): UDP pending with the sinks blocked,
and the websocket sink's replay ring of large records."""

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.conftest import Cli, start_cli
from tests.helpers.rawws import peak_rss_mib
from tests.helpers.web import Server, Subscription, http_get, start_server


@pytest.fixture
async def stuck_peer() -> AsyncIterator[tuple[str, int]]:
    """A TCP peer that accepts and never reads: a tcp sink writing to it blocks the pipeline."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    server.sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    yield server.sockets[0].getsockname()[:2]
    for writer in held:
        writer.transport.abort()
    server.close()


@pytest.mark.slow
async def test_udp_pending_is_bounded_in_bytes_while_the_sinks_are_blocked(
    tmp_path: Path, cli_processes: list[Cli], stuck_peer: tuple[str, int]
) -> None:
    """60 kB datagrams while the only record sink is blocked: memory stays bounded (64 MiB of
    datagrams wait at most), the rest is dropped and counted."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[aggregator]\norder_window = "0s"\n'
        '[sources.u]\ntype = "udp"\nlisten = "127.0.0.1:0"\nmax_line_bytes = "64KiB"\n'
        f'[sinks.out]\ntype = "tcp"\naddress = "{stuck_peer[0]}:{stuck_peer[1]}"\n'
        '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\nreplay = 0\n'
    )
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    http = await cli.serving()
    server = Server(cli, ("", 0), http)
    address = await server.source_address("u")
    before = peak_rss_mib(cli.proc.pid)
    payload = b"x" * 60_000
    metrics_url = f"http://{http[0]}:{http[1]}/metrics"

    def dropped() -> int:
        _, _, text = http_get(metrics_url)
        for line in text.splitlines():
            if line.startswith('aggregator_dropped_total{source="u",reason="pipeline_full"}'):
                return int(line.rsplit(" ", 1)[1])
        return 0

    # Paced: the socket's kernel buffer holds a few datagrams of 60 kB; a burst is lost there.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        async with asyncio.timeout(60):
            sent = 0
            while not (sent % 300 == 0 and sent and await asyncio.to_thread(dropped) > 100):
                sender.sendto(payload, address)
                sent += 1
                if sent % 3 == 0:
                    await asyncio.sleep(0.001)
    grown = peak_rss_mib(cli.proc.pid) - before
    assert grown < 200, f"peak RSS grew {grown:.0f} MiB"


@pytest.mark.slow
async def test_the_replay_ring_is_bounded_in_bytes(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """replay = 1000 with replay_bytes = "1MiB": of 100 records of 50 kB, a new subscriber
    asking for all of them gets the last twenty or so."""
    server = await start_server(
        tmp_path, cli_processes, 'replay = 1000\nreplay_bytes = "1MiB"', codec="raw"
    )
    big = "y" * 50_000  # stdout lines stay under the test reader's 64 KiB
    await server.send([f"{n} {big}" for n in range(100)])
    await server.cli.wait_for(lambda: len(server.cli.out) >= 100, "100 records out")
    async with connect(server.url(query="replay=1000"), max_size=None) as connection:
        subscription = Subscription(connection)

        def numbers_received() -> list[int]:
            return [int(record["line"].split(" ", 1)[0]) for record in subscription.records]

        # The replay ends with the last record sent (99): until it comes, however slow the box.
        await subscription.receive_until(lambda: 99 in numbers_received(), "the whole replay")
        with pytest.raises(TimeoutError):  # and nothing after it
            async with asyncio.timeout(1):
                while True:
                    subscription.take(await connection.recv())
    numbers = numbers_received()
    assert 15 <= len(numbers) <= 21 and numbers[-1] == 99, numbers
    assert orjson.loads(orjson.dumps(numbers)) == sorted(numbers)
