"""Datagram listeners: UDP and Unix datagram sockets.

A datagram's lines become records (its end ends its last line). Records wait in a bounded
pending batch that a flusher hands to the merge, so a burst of small datagrams travels as a few
chunks. A datagram cannot wait: when the pending batch is full it is dropped, and counted.

Full is counted in records and in bytes, and what was handed to the merge counts until the
merge has sent it on (``Chunk.on_release``): with the sinks blocked, the records waiting in
the channel and the merge are bounded too, not only those still pending here.
"""

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from aggregator.config import UdpSourceConfig, UnixSourceConfig
from aggregator.config.addresses import split_host_port
from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.chunk import Announce, Chunk, SourceItem
from aggregator.parse.decode import Decoding
from aggregator.parse.lines import Lines, LineSplitter
from aggregator.record.record import Batch
from aggregator.sources import SourceContext
from aggregator.sources.listen import (
    bind_error,
    bind_unix_socket,
    peer_name,
    remove_socket_file,
)
from aggregator.telemetry.metrics import Counters

log = logging.getLogger(__name__)

PENDING_LIMIT = 65_536
"""Records from datagrams that may wait for the merge; past it, datagrams are dropped."""
PENDING_BYTES = 64 << 20
"""Bytes of datagrams (and of their records) that may wait, here and in the merge."""
RECORD_OVERHEAD = 200
"""Bytes a record costs besides its datagram's (the object, its strings' headers)."""
RECEIVE_BUFFER = 4 << 20
"""Asked of the kernel for the socket (it caps the request at net.core.rmem_max)."""


class _Intake(asyncio.DatagramProtocol):
    def __init__(self, source: "DatagramListener") -> None:
        self.source = source

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.source.take(data, addr)


class DatagramListener:
    """Takes datagrams until cancelled; subclasses say where to listen."""

    def __init__(
        self, name: str, config: UdpSourceConfig | UnixSourceConfig, context: SourceContext
    ) -> None:
        self.name = name
        self.config = config
        self.datagrams = 0
        self.dropped = 0
        self.decoding = Decoding(name, config, context.needs, judged=context.judged)
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[str, Batch] = {}
        self._pending_count = 0
        self._pending_bytes = 0
        self._held_bytes = 0  # handed to the merge, not yet sent on by it
        self._held: dict[str, deque[list[int]]] = {}  # per origin: [records, bytes] per chunk
        self._ready = asyncio.Event()
        self._running = False

    async def _listen(self) -> asyncio.DatagramTransport:
        raise NotImplementedError

    def _where(self) -> str:
        raise NotImplementedError

    def _origin(self, addr: Any) -> str:
        return peer_name(addr)

    async def open(self) -> None:
        self._transport = await self._listen()
        sock = self._transport.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    async def close(self) -> None:
        """Stop listening and say what was dropped (idempotent)."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self._report_drops()

    def counters(self) -> Counters:
        return {
            "dropped_pipeline_full": self.dropped,
            "lines_truncated": self.decoding.truncated_lines,
        }

    def _report_drops(self) -> None:
        if self.dropped:
            log.warning("sources.%s: dropped %d of %d datagrams: the pipeline was full",
                        self.name, self.dropped, self.datagrams)  # fmt: skip

    async def run(self, out: Channel[SourceItem]) -> None:
        assert self._transport is not None
        await out.put(Announce([], live=True))
        self._running = True
        # Only now: datagrams sent by whoever reads this line are taken.
        log.info("sources.%s: listening on %s", self.name, self._where())
        try:
            while True:  # datagrams arrive through take(); this hands them on in batches
                await self._ready.wait()
                self._ready.clear()
                pending, self._pending, self._pending_count = self._pending, {}, 0
                share = self._pending_bytes // max(1, sum(map(len, pending.values())))
                self._held_bytes += self._pending_bytes
                self._pending_bytes = 0
                for origin, records in pending.items():
                    held = self._held.setdefault(origin, deque())
                    held.append([len(records), share * len(records)])
                    await out.put(Chunk(origin, records, on_release=self._releaser(origin)))
        except ChannelClosed:
            pass
        finally:
            await self.close()

    def _releaser(self, origin: str) -> Callable[[int], None]:
        """What the merge calls as it sends ``origin``'s records on: their bytes are free."""

        def release(count: int) -> None:
            held = self._held.get(origin)
            while held and count > 0:
                head = held[0]
                taken = min(count, head[0])
                freed = head[1] * taken // head[0]
                head[0] -= taken
                head[1] -= freed
                self._held_bytes -= freed
                count -= taken
                if head[0] == 0:
                    self._held_bytes -= head[1]
                    held.popleft()
            if held is not None and not held:
                del self._held[origin]

        return release

    def take(self, data: bytes, addr: Any) -> None:
        """A datagram's lines become pending records, or it is dropped (and counted) when the
        pending batch is full, in records or in bytes."""
        if not self._running:
            return
        self.datagrams += 1
        if (
            self._pending_count >= PENDING_LIMIT
            or self._pending_bytes + self._held_bytes >= PENDING_BYTES
        ):
            self.dropped += 1
            return
        origin = self._origin(addr)
        data = data[: self.config.max_datagram_bytes]
        if data.endswith(b"\n"):
            data = data[:-1]
        if b"\n" not in data and len(data) <= self.config.max_line_bytes:
            # The common case, one line a datagram: no splitter needed.
            text = data.decode("utf-8", "replace")
            lines = Lines([text[:-1] if text.endswith("\r") else text])
        else:
            lines = LineSplitter(self.config.max_line_bytes).feed(data + b"\n")
        records, _ = self.decoding.records(origin, lines)  # each datagram stands alone
        self.decoding.add_fields(records, self.decoding.fields)
        self._pending.setdefault(origin, []).extend(records)
        self._pending_count += len(records)
        self._pending_bytes += len(data) + RECORD_OVERHEAD * len(records)
        self._ready.set()


class UdpSource(DatagramListener):
    """Listens on ``listen`` (``HOST:PORT``)."""

    config: UdpSourceConfig

    @property
    def address(self) -> tuple[str, int]:
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

    def _where(self) -> str:
        return f"udp://{peer_name(self.address)}"

    async def _listen(self) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Intake(self), local_addr=split_host_port(self.config.listen)
            )
        except OSError as error:
            raise bind_error(self.name, self.config.listen, error) from error
        return transport


class UnixDatagramSource(DatagramListener):
    """Listens on a Unix datagram socket at ``path`` (``/dev/log`` style)."""

    config: UnixSourceConfig

    def _where(self) -> str:
        return f"unixgram://{self.config.path}"

    def _origin(self, addr: Any) -> str:
        return str(self.config.path)

    async def _listen(self) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()

        async def bind() -> asyncio.DatagramTransport:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Intake(self), local_addr=str(self.config.path), family=socket.AF_UNIX
            )
            return transport

        return await bind_unix_socket(
            self.name, self.config.path, socket.SOCK_DGRAM, self.config.mode, bind
        )

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._report_drops()
            remove_socket_file(self.config.path)
            self._transport = None
