"""Stream listeners: TCP (optionally TLS) and Unix stream sockets.

Every connection is a lane of its own. While the merge is full, a connection's reader waits to
hand its records on and does not read, so the kernel's buffers fill and a sender that waits
loses nothing (backpressure). Lines are newline-framed or octet-counted (RFC 6587); a line past
``max_line_bytes`` is cut and the connection goes on. ``max_connections`` more are refused and
counted; a connection silent for ``idle_timeout`` is closed.
"""

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import NoReturn

from aggregator.config import StreamListenerConfig, TcpSourceConfig, UnixSourceConfig
from aggregator.config.addresses import split_host_port
from aggregator.errors import StartupError
from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.chunk import Announce, SourceItem
from aggregator.parse.decode import Decoding
from aggregator.parse.framing import FramingError
from aggregator.sources import SourceContext
from aggregator.sources.lanes import LaneOutlet, pump
from aggregator.sources.listen import (
    bind_error,
    bind_unix_socket,
    peer_name,
    remove_socket_file,
)
from aggregator.telemetry.metrics import Counters
from aggregator.telemetry.stalls import Progress, StallWatch

log = logging.getLogger(__name__)

READ_CHUNK = 16 * 1024
"""Bytes per read, and the StreamReader's limit (it buffers up to twice this). A connection held
back by a full pipeline keeps at most about this much as records and twice as bytes: with a
thousand connections that is what bounds memory, so it is kept small."""


LIVE_KEYS = frozenset({"max_connections", "idle_timeout"})
"""What a listener takes on while running: it reads them as connections come and go."""


class StreamListener:
    """Accepts connections and reads each to its end; subclasses say where to listen."""

    def __init__(self, name: str, config: StreamListenerConfig, context: SourceContext) -> None:
        self.name = name
        self.config = config
        self.connections = 0
        self.refused = 0
        # Live reads are small: they are parsed on the loop, where a worker would add latency.
        self.decoding = Decoding(name, config, context.needs, judged=context.judged)
        self._server: asyncio.Server | None = None
        self._group: asyncio.TaskGroup | None = None
        self._out: Channel[SourceItem] | None = None
        self._outlets: set[LaneOutlet] = set()  # one a connection
        self._stalls = StallWatch(context.stall_after)

    async def _listen(self, accept: Callable[..., None]) -> asyncio.Server:
        raise NotImplementedError

    def _where(self) -> str:
        raise NotImplementedError

    def _peer(self, writer: asyncio.StreamWriter) -> str:
        return peer_name(writer.get_extra_info("peername"))

    async def open(self) -> None:
        self._server = await self._listen(self._accept)

    async def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._server is not None:
            self._server.close()

    def counters(self) -> Counters:
        return {
            "connections": self.connections,
            "connections_refused": self.refused,
            "lines_truncated": self.decoding.truncated_lines,
            "stalled": int(bool(self._stalls.stalled)),
        }

    def reconfigure(self, config: StreamListenerConfig) -> bool:
        """Take ``config`` while listening (a reload) if it differs only in what is read as
        connections come and go (``LIVE_KEYS``): the socket and its connections are kept."""
        fields = type(config).__dataclass_fields__
        if type(config) is not type(self.config) or any(
            getattr(config, key) != getattr(self.config, key)
            for key in fields
            if key not in LIVE_KEYS
        ):
            return False
        self.config = config
        return True

    async def run(self, out: Channel[SourceItem]) -> None:
        assert self._server is not None
        self._out = out
        await out.put(Announce([], live=True))
        try:
            async with asyncio.TaskGroup() as group, self._server:
                self._group = group
                group.create_task(self._watch_stalls(), name=f"stalls:{self.name}")
                await self._server.start_serving()
                # Only now: a client that reads this line may connect at once.
                log.info("sources.%s: listening on %s", self.name, self._where())
                await self._server.serve_forever()
        finally:
            await self.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = self._peer(writer)
        if self._group is None or self.connections >= self.config.max_connections:
            self.refused += 1
            log.warning("sources.%s: refused %s: %d connections open", self.name, peer,
                        self.connections)  # fmt: skip
            writer.close()
            return
        self.connections += 1
        self._group.create_task(self._serve(peer, reader, writer), name=f"conn:{self.name}:{peer}")

    async def _serve(
        self, peer: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert self._out is not None
        outlet = LaneOutlet(self._out, peer)
        self._outlets.add(outlet)
        decoder = self.decoding.lane(peer, self.config.framing)
        try:
            await pump(lambda: self._read(reader), decoder, outlet)
        except FramingError as error:
            log.warning("sources.%s: %s: %s; closing the connection", self.name, peer, error)
            await outlet.send([], final=True)
        except OSError as error:
            log.warning("sources.%s: connection from %s failed: %s", self.name, peer, error)
            await outlet.send(decoder.flush(), final=True)
        except ChannelClosed:
            pass
        finally:
            self.connections -= 1
            self._outlets.discard(outlet)
            writer.close()

    async def _watch_stalls(self) -> NoReturn:
        """Name the connections whose records wait to be handed on for stall_after (SPEC §8):
        their lane has not moved while they have input; the sinks hold the pipeline back."""
        while True:
            await asyncio.sleep(min(1.0, self._stalls.stall_after / 4))
            seen = [Progress(o.origin, o.sent, o.sending, o.sending) for o in self._outlets]
            for change in self._stalls.observe(time.monotonic(), seen):
                if change.reason is None:
                    log.info("sources.%s: %s: reading again", self.name, change.what)
                else:
                    log.warning("sources.%s: the connection from %s has waited %gs to hand its "
                                "records on: %s", self.name, change.what,
                                self._stalls.stall_after, change.reason)  # fmt: skip

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        """The next bytes; b"" at the end, or once the connection was silent too long."""
        if not self.config.idle_timeout:
            return await reader.read(READ_CHUNK)
        try:
            async with asyncio.timeout(self.config.idle_timeout):
                return await reader.read(READ_CHUNK)
        except TimeoutError:
            log.info("sources.%s: closing a connection silent for %gs", self.name,
                     self.config.idle_timeout)  # fmt: skip
            return b""


class TcpSource(StreamListener):
    """Listens on ``listen`` (``HOST:PORT``), with TLS when ``tls`` names a cert and key."""

    config: TcpSourceConfig

    @property
    def address(self) -> tuple[str, int]:
        """The address bound (port 0 in the config becomes the real port)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[:2]  # type: ignore[no-any-return]

    def _where(self) -> str:
        scheme = "tls" if self.config.tls is not None else "tcp"
        return f"{scheme}://{peer_name(self.address)}"

    async def _listen(self, accept: Callable[..., None]) -> asyncio.Server:
        context = None
        tls = self.config.tls
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(tls.cert, tls.key)
            except (OSError, ssl.SSLError) as error:
                reason = error.strerror if isinstance(error, OSError) else None
                raise StartupError(
                    f"sources.{self.name}.tls: cannot load the certificate {tls.cert} with the "
                    f"key {tls.key}: {reason or error}"
                ) from error
        host, port = split_host_port(self.config.listen)
        try:
            return await asyncio.start_server(
                accept, host, port, start_serving=False, limit=READ_CHUNK, ssl=context
            )
        except OSError as error:
            raise bind_error(self.name, self.config.listen, error) from error


class UnixStreamSource(StreamListener):
    """Listens on a Unix stream socket at ``path`` with file mode ``mode``; the file is replaced
    if stale and removed on exit."""

    config: UnixSourceConfig

    def __init__(self, name: str, config: UnixSourceConfig, context: SourceContext) -> None:
        super().__init__(name, config, context)
        self._connection_number = 0

    def _where(self) -> str:
        return f"unix://{self.config.path}"

    def _peer(self, writer: asyncio.StreamWriter) -> str:
        # Unix peers are usually unnamed: number the connections so each is its own lane.
        self._connection_number += 1
        return f"{self.config.path}#{self._connection_number}"

    async def _listen(self, accept: Callable[..., None]) -> asyncio.Server:
        return await bind_unix_socket(
            self.name,
            self.config.path,
            socket.SOCK_STREAM,
            self.config.mode,
            lambda: asyncio.start_unix_server(
                accept, self.config.path, start_serving=False, limit=READ_CHUNK
            ),
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            remove_socket_file(self.config.path)
            self._server = None
