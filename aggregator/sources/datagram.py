"""Datagram listeners: UDP and Unix datagram sockets.

A datagram's lines become records (its end ends its last line). A datagram cannot wait: when
the merge is full it is dropped, and counted.
"""

import asyncio
import logging
import socket
from typing import Any

from aggregator.channel import Channel, ChannelClosed
from aggregator.chunk import Announce, Chunk, SourceItem
from aggregator.config import UdpSourceConfig, UnixSourceConfig
from aggregator.decode import Decoding
from aggregator.lines import LineSplitter
from aggregator.sources.listen import (
    bind_error,
    chmod_socket,
    clear_stale_socket,
    peer_name,
    remove_socket_file,
    split_listen,
)

log = logging.getLogger(__name__)


class _Intake(asyncio.DatagramProtocol):
    def __init__(self, source: "DatagramListener") -> None:
        self.source = source

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.source.take(data, addr)


class DatagramListener:
    """Takes datagrams until cancelled; subclasses say where to listen."""

    def __init__(self, name: str, config: UdpSourceConfig | UnixSourceConfig) -> None:
        self.name = name
        self.config = config
        self.datagrams = 0
        self.dropped = 0
        self._decoding = Decoding(name, config)
        self._transport: asyncio.DatagramTransport | None = None
        self._out: Channel[SourceItem] | None = None

    async def _listen(self) -> asyncio.DatagramTransport:
        raise NotImplementedError

    def _where(self) -> str:
        raise NotImplementedError

    def _origin(self, addr: Any) -> str:
        return peer_name(addr)

    async def open(self) -> None:
        self._transport = await self._listen()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def run(self, out: Channel[SourceItem]) -> None:
        assert self._transport is not None
        log.info("sources.%s: listening on %s", self.name, self._where())
        await out.put(Announce([], live=True))
        self._out = out
        try:
            await asyncio.Future()  # datagrams arrive through take() until cancelled
        finally:
            await self.close()

    def take(self, data: bytes, addr: Any) -> None:
        """A datagram's lines become records, or are dropped and counted if the merge is full."""
        if self._out is None:
            return
        self.datagrams += 1
        origin = self._origin(addr)
        data = data[: self.config.max_datagram_bytes]
        if not data.endswith(b"\n"):
            data += b"\n"  # the datagram's end ends its last line
        lines = LineSplitter(self.config.max_line_bytes).feed(data)
        records = self._decoding.records(origin, lines)
        try:
            if not self._out.put_nowait(Chunk(origin, records)):
                self.dropped += 1
        except ChannelClosed:
            pass


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
                lambda: _Intake(self), local_addr=split_listen(self.config.listen)
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
        path = self.config.path
        clear_stale_socket(self.name, path, socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Intake(self), local_addr=str(path), family=socket.AF_UNIX
            )
        except OSError as error:
            raise bind_error(self.name, path, error) from error
        chmod_socket(self.name, path, self.config.mode)
        return transport

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            remove_socket_file(self.config.path)
            self._transport = None
