"""The program's one HTTP port: the page, /healthz, /metrics and the way in to /ws.

The port is bound and listening from the start (a port in use is said then, and the "serving
on" line is true at once), but websockets, which answers it, is loaded only when the first
connection comes: importing it is most of what a WebSocket sink costs a start, and a run may
never be visited. Meanwhile connections wait in the kernel's queue of the listening socket;
the first one wakes ``_first_client``, which imports ``aggregator.web.routes`` and gives
websockets' server the bound sockets, where it accepts what waits.
"""

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aggregator.config import WebSocketSinkConfig
from aggregator.config.addresses import is_loopback, split_host_port
from aggregator.errors import StartupError
from aggregator.telemetry import Telemetry
from aggregator.web.http import Gate, load_assets

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection

log = logging.getLogger(__name__)

BACKLOG = 100
"""Connections the kernel queues on the port until they are accepted (asyncio's default)."""

Refusal = tuple[int, str]
"""Why a request is answered with an error: its HTTP status and the text of the answer (plain
numbers: the ``http`` module's enum is not needed before the first client)."""
Admit = Callable[[str], Refusal | None]
"""Whether a ``/ws`` request (its query) may become a subscriber: None, or the refusal."""
Subscribe = Callable[["ServerConnection"], Awaitable[None]]
"""Serves one admitted subscriber until it goes."""
Stats = Callable[[], dict[str, Any]]
"""The live counts /stats shows (``aggregator.telemetry.live_counts``)."""


async def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on ``host``:``port`` (one for each address a name has), bound by
    asyncio as websockets' own ``serve`` would bind them, with the same errors; nothing
    accepts from them yet."""
    loop = asyncio.get_running_loop()
    bound = await loop.create_server(asyncio.Protocol, host, port, start_serving=False)
    sockets: list[socket.socket] = []
    try:
        for transport_socket in bound.sockets:
            sockets.append(transport_socket.dup())
            sockets[-1].listen(BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    finally:
        bound.close()  # its own descriptors: the duplicates keep the sockets
    return sockets


class WebServer:
    """The port: bound at ``open``, answered by websockets' server from the first connection."""

    def __init__(
        self,
        name: str,
        config: WebSocketSinkConfig,
        telemetry: Telemetry | None,
        admit: Admit,
        subscribe: Subscribe,
        stats: Stats | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.address: tuple[str, int] | None = None
        self._telemetry = telemetry
        self._admit = admit
        self._subscribe = subscribe
        self._stats = stats
        self._gate = Gate(
            config.auth_token.get_secret_value(),
            config.allowed_origins,
            loopback=is_loopback(config.listen),
            allowed_hosts=config.allowed_hosts,
        )
        self._waiting: list[socket.socket] = []
        """Bound and listening, watched for a first connection; websockets' server not yet."""
        self._starting: asyncio.Task[None] | None = None
        self._servers: list[Server] = []

    async def open(self) -> None:
        """Bind the port (a port in use is a StartupError naming the sink) and wait for a
        first connection."""
        host, port = split_host_port(self.config.listen)
        try:
            self._waiting = await listening_sockets(host, port)
        except OSError as error:
            raise StartupError(
                f"sinks.{self.name}: cannot listen on {self.config.listen}: "
                f"{error.strerror or error}"
            ) from error
        self.address = self._waiting[0].getsockname()[:2]
        needs = " (a token is needed: open it with ?token=TOKEN)" if self._gate.needs_token else ""
        log.info("sink %s: serving on http://%s:%d/%s", self.name, *self.address, needs)
        loop = asyncio.get_running_loop()
        for sock in self._waiting:
            loop.add_reader(sock.fileno(), self._first_client)

    def _first_client(self) -> None:
        """A connection waits on the port: websockets' server is started for it."""
        self._stop_watching()
        self._starting = asyncio.create_task(self._serve(), name=f"sink:{self.name}:serve")

    def _stop_watching(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._waiting:
            loop.remove_reader(sock.fileno())

    async def _serve(self) -> None:
        """Load websockets and give its server the listening sockets (and what waits there).

        What fails here (a broken install: the page's files or websockets missing) is said
        once and the port closed, so that clients are refused rather than left waiting; the
        records go on to the other sinks."""
        try:
            from aggregator.web.routes import Routes, serve_on

            routes = Routes(self._gate, load_assets(), self._telemetry, self._admit, self._stats)
            while self._waiting:
                sock = self._waiting.pop(0)
                try:
                    self._servers.append(await serve_on(sock, routes, self._subscribe, self.config))
                except BaseException:
                    sock.close()
                    raise
        except Exception as error:
            log.error("sinks.%s: cannot serve on %s: %s", self.name, self.config.listen, error)
            waiting, self._waiting = self._waiting, []
            for sock in waiting:
                sock.close()

    async def close(self) -> None:
        """Stop accepting, close every connection with 1001 and wait for their handlers.
        Idempotent."""
        starting, self._starting = self._starting, None
        if starting is None:
            self._stop_watching()
        try:
            if starting is not None:
                await starting  # the server being started for a first client (or its error)
        finally:
            waiting, self._waiting = self._waiting, []
            for sock in waiting:
                sock.close()  # what waits in its queue is refused, as a closing server's is
            servers, self._servers = self._servers, []
            for server in servers:
                server.close()
            for server in servers:
                await server.wait_closed()
