"""Socket sources, first cut: TCP (newline-framed, with backpressure) and UDP (a datagram's lines).

Each TCP connection is a lane of its own whose ``origin`` is the peer's address. While the merge
is full, a connection's handler waits in ``put`` and stops reading, so the kernel's buffers fill
and a sender that waits loses nothing. UDP cannot wait: datagrams that do not fit are dropped and
counted.
"""

import asyncio
import logging
from typing import Any

from aggregator.channel import Channel, ChannelClosed
from aggregator.chunk import Announce, Chunk, SourceItem
from aggregator.config import TcpSourceConfig, UdpSourceConfig
from aggregator.decode import Decoding
from aggregator.errors import StartupError
from aggregator.lines import LineSplitter
from aggregator.sources import LaneOutlet, pump

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets) as (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def peer_name(address: Any) -> str:
    """A peer's address as ``HOST:PORT``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


class TcpSource:
    """Listens on ``listen``; every line of every connection becomes a record."""

    def __init__(self, name: str, config: TcpSourceConfig) -> None:
        self.name = name
        self.config = config
        self.connections = 0
        self.refused = 0
        self._decoding = Decoding(name, config)
        self._server: asyncio.Server | None = None
        self._group: asyncio.TaskGroup | None = None
        self._out: Channel[SourceItem] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The address bound (port 0 in the config becomes the real port)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[:2]  # type: ignore[no-any-return]

    async def open(self) -> None:
        host, port = split_listen(self.config.listen)
        try:
            self._server = await asyncio.start_server(
                self._accept, host, port, start_serving=False, limit=READ_CHUNK
            )
        except OSError as error:
            raise StartupError(
                f"sources.{self.name}: cannot listen on {self.config.listen}: "
                f"{error.strerror or error}"
            ) from error

    async def run(self, out: Channel[SourceItem]) -> None:
        assert self._server is not None
        self._out = out
        log.info("sources.%s: listening on tcp://%s", self.name, peer_name(self.address))
        await out.put(Announce([], live=True))
        async with asyncio.TaskGroup() as group, self._server:
            self._group = group
            await self._server.serve_forever()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_name(writer.get_extra_info("peername"))
        if self._group is None or self.connections >= self.config.max_connections:
            self.refused += 1
            log.warning("sources.%s: refused %s: too many connections", self.name, peer)
            writer.close()
            return
        self.connections += 1
        self._group.create_task(self._serve(peer, reader, writer), name=f"tcp:{self.name}:{peer}")

    async def _serve(
        self, peer: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert self._out is not None
        outlet = LaneOutlet(self._out, peer)
        try:
            await pump(lambda: reader.read(READ_CHUNK), self._decoding.lane(peer), outlet)
        except OSError as error:
            log.warning("sources.%s: connection from %s failed: %s", self.name, peer, error)
            await outlet.send([], final=True)
        except ChannelClosed:
            pass
        finally:
            self.connections -= 1
            writer.close()


class _DatagramIntake(asyncio.DatagramProtocol):
    def __init__(self, source: "UdpSource") -> None:
        self.source = source

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.source.take(data, peer_name(addr))


class UdpSource:
    """Listens on ``listen``; each line of each datagram becomes a record."""

    def __init__(self, name: str, config: UdpSourceConfig) -> None:
        self.name = name
        self.config = config
        self.dropped = 0
        self._decoding = Decoding(name, config)
        self._transport: asyncio.DatagramTransport | None = None
        self._out: Channel[SourceItem] | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramIntake(self), local_addr=split_listen(self.config.listen)
            )
        except OSError as error:
            raise StartupError(
                f"sources.{self.name}: cannot listen on {self.config.listen}: "
                f"{error.strerror or error}"
            ) from error

    async def run(self, out: Channel[SourceItem]) -> None:
        assert self._transport is not None
        log.info("sources.%s: listening on udp://%s", self.name, peer_name(self.address))
        await out.put(Announce([], live=True))
        self._out = out
        try:
            await asyncio.Future()  # datagrams arrive through take() until cancelled
        finally:
            self._transport.close()

    def take(self, data: bytes, peer: str) -> None:
        """A datagram's lines become records, or are dropped and counted if the merge is full."""
        if self._out is None:
            return
        data = data[: self.config.max_datagram_bytes]
        if not data.endswith(b"\n"):
            data += b"\n"  # the datagram's end ends its last line
        lines = LineSplitter(self.config.max_line_bytes).feed(data)
        records = self._decoding.records(peer, lines)
        try:
            if not self._out.put_nowait(Chunk(peer, records)):
                self.dropped += len(records)
        except ChannelClosed:
            pass
