"""A benchmark client process: many WebSocket subscribers on one URL, counting what arrives.

    python3 bench/ws_subscribers.py URL CONNECTIONS EXPECTED_LINES [--latency]

Prints ``READY`` once every connection is open, then one JSON line when each connection has
EXPECTED_LINES lines (or nothing came for IDLE seconds): lines, drops announced by the server,
the time of the last line, and with ``--latency`` the write → receive latencies in ms (the
writer puts ``t=<time_ns>`` in each line). Frames may hold many lines (aggregator) or one
(websocketd); both are counted as lines.
"""

import asyncio
import json
import re
import sys
import time

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

IDLE = 5.0
STAMP = re.compile(rb"t=(\d{19})")


class Tally:
    def __init__(self) -> None:
        self.lines = 0
        self.dropped = 0
        self.last = 0.0
        self.latencies: list[float] = []


class Subscriber(asyncio.Protocol):
    """One subscriber on websockets' Sans-I/O protocol: frames are counted as they are parsed,
    with no task or future per message, so the client costs the shared CPU as little as can be."""

    def __init__(self, url: str, expected: int, tally: Tally, latency: bool) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.expected = expected
        self.tally = tally
        self.latency = latency
        self.got = 0
        self.opened = asyncio.get_running_loop().create_future()
        self.finished = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if not self.opened.done():
                    self.opened.set_result(None)
            elif isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.CONT):
                self._count(event.data)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the handshake"))
        if not self.finished.done():
            self.finished.set_result(None)

    def _count(self, data: bytes) -> None:
        if data.startswith(b'{"hello"'):
            return
        if data.startswith(b'{"notice"'):
            count = json.loads(data).get("count", 0)
            self.tally.dropped += count
            self.got += count
        else:
            now = time.time_ns()
            count = data.count(b"\n") + 1
            self.got += count
            self.tally.lines += count
            self.tally.last = now / 1e9
            if self.latency:
                self.tally.latencies.extend((now - int(m)) / 1e6 for m in STAMP.findall(data))
        if self.got >= self.expected and not self.finished.done():
            self.finished.set_result(None)

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)


async def finish(subscriber: Subscriber) -> None:
    """Until every line came, or nothing came for IDLE seconds."""
    while not subscriber.finished.done():
        seen = subscriber.got
        try:
            async with asyncio.timeout(IDLE):
                await asyncio.shield(subscriber.finished)
        except TimeoutError:
            if subscriber.got == seen and seen:
                break
    if subscriber.transport is not None:
        subscriber.transport.close()


async def main() -> None:
    url, connections, expected = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    latency = "--latency" in sys.argv
    tally = Tally()
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    subscribers = []
    for _ in range(connections):
        _, subscriber = await loop.create_connection(
            lambda: Subscriber(url, expected, tally, latency), uri.host, uri.port
        )
        await subscriber.opened
        subscribers.append(subscriber)
    print("READY", flush=True)
    await asyncio.gather(*(finish(subscriber) for subscriber in subscribers))
    print(json.dumps({"lines": tally.lines, "dropped": tally.dropped, "last": tally.last,
                      "latencies": tally.latencies}), flush=True)  # fmt: skip


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
