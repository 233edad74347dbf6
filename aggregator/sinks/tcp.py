"""The tcp sink: newline-delimited records (json, text or raw) to a TCP peer.

It connects when it has something to send, and while the peer is away it waits and retries
with backoff, holding the pipeline (SPEC §6: nothing is dropped). A connection the peer has
closed is noticed before anything is written into it: a reader watches the socket for the
peer's end, so a batch goes to a new connection instead of a dead one. What TCP cannot tell is
whether the peer *read* what the kernel accepted before it went away; a peer that closes
cleanly (a restart of Vector, Fluent Bit or ``nc``) reads what came before its close.
"""

import asyncio
import contextlib
import logging

from aggregator.backoff import Backoff
from aggregator.config import TcpSinkConfig
from aggregator.config.addresses import split_host_port
from aggregator.sinks import SinkContext
from aggregator.sinks.delivery import DeliveringSink
from aggregator.sinks.encoded import FilteredEncoder
from aggregator.telemetry.metrics import Counters
from aggregator.trouble import reason_of

log = logging.getLogger(__name__)

FIRST_RETRY = 0.1
LAST_RETRY = 5.0
"""Seconds between connection attempts: doubling from the first to the last, with jitter."""
WRITE_HIGH_WATER = 256 * 1024
"""Bytes the transport may buffer before a write waits for the peer to read."""


class _Peer:
    """One connection: the writer, and a reader that only watches for the peer's end."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str
    ) -> None:
        self.writer = writer
        self.where = where
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._watch = asyncio.create_task(self._watch_end(reader), name="tcp-sink:watch")

    async def _watch_end(self, reader: asyncio.StreamReader) -> None:
        # A log collector sends nothing back; whatever comes is read and thrown away.
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass
        log.warning("%s: the peer closed the connection; the next records go to a new one",
                    self.where)  # fmt: skip

    @property
    def closed(self) -> bool:
        """True once the peer closed its end (or reset it), or the transport is closing."""
        return self._watch.done() or self.writer.is_closing()

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self._watch.cancel("the connection is closing")
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class TcpSink(DeliveringSink):
    """Sends the stream to ``address``; reconnects with backoff and resends what waited."""

    def __init__(self, name: str, config: TcpSinkConfig, context: SinkContext) -> None:
        self.name = name
        self.config = config
        self.host, self.port = split_host_port(config.address)
        self.encode = FilteredEncoder(
            config.filter, config.format, context.source_names, judged=context.judged
        )
        self.needs = self.encode.needs
        self._peer: _Peer | None = None
        self.connects = 0
        self.reconnects = 0

    async def open(self) -> None:
        """Nothing is opened before there is something to send: the peer may start later."""

    async def close(self) -> None:
        if self._peer is not None:
            await self._peer.close()
            self._peer = None

    def reopen(self) -> None:
        """Nothing to reopen."""

    def counters(self) -> Counters:
        return {
            "connected": int(self._peer is not None and not self._peer.closed),
            "reconnects": self.reconnects,
        }

    async def write(self, data: bytes) -> None:
        """Write ``data`` to a live connection, connecting (again) until one takes it."""
        backoff = Backoff(FIRST_RETRY, LAST_RETRY)
        while True:
            peer = self._peer
            if peer is not None and peer.closed:
                await self.close()
                peer = None
            try:
                if peer is None:
                    peer = self._peer = await self._connect()
                await peer.write(data)
                return
            except OSError as error:
                delay = backoff.next()
                log.warning("sinks.%s: %s: %s; retrying in %.1fs", self.name,
                            self.config.address, reason_of(error), delay)  # fmt: skip
                await self.close()
                await asyncio.sleep(delay)

    async def _connect(self) -> _Peer:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        log.info("sinks.%s: connected to %s", self.name, self.config.address)
        return _Peer(reader, writer, f"sinks.{self.name}: {self.config.address}")
