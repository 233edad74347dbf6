"""The program's one HTTP port: the page, /healthz, /metrics and the way in to /ws.

One websockets server answers everything: plain HTTP requests in ``_process_request``, and
WebSocket subscribers, once admitted, in the handler the stream sink gives (``subscribe``).
"""

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from aggregator.config import WebSocketSinkConfig
from aggregator.config.addresses import is_loopback, split_host_port
from aggregator.errors import StartupError
from aggregator.telemetry import Telemetry
from aggregator.web import CONNECTION_LOG
from aggregator.web.http import Gate, asset_response, load_assets, response

log = logging.getLogger(__name__)

MAX_INCOMING_FRAME = 64 * 1024
"""Largest frame a client may send (a filter); a larger one closes the connection with 1009."""
CLOSE_TIMEOUT = 2.0
"""Seconds a closing handshake may take before the connection is dropped."""


Admit = Callable[[str], Response | None]
"""Whether a ``/ws`` request (its query) may become a subscriber: None, or the refusal."""
Subscribe = Callable[[ServerConnection], Awaitable[None]]
"""Serves one admitted subscriber until it goes."""
Stats = Callable[[], dict[str, Any]]
"""The live counts /stats shows (``aggregator.telemetry.live_counts``)."""


class WebServer:
    """Routes requests: /healthz for anyone; the page, /ws, /metrics and /stats behind the gate."""

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
        self._assets = load_assets()
        self._server: Server | None = None

    async def open(self) -> None:
        """Bind the port (a port in use is a StartupError naming the sink)."""
        host, port = split_host_port(self.config.listen)
        try:
            self._server = await serve(
                self._subscribe,
                host,
                port,
                process_request=self._process_request,
                compression="deflate" if self.config.compression else None,
                max_size=MAX_INCOMING_FRAME,
                ping_interval=self.config.ping_interval or None,
                ping_timeout=self.config.ping_interval or None,
                close_timeout=CLOSE_TIMEOUT,
                server_header=None,
                logger=logging.getLogger(CONNECTION_LOG),
            )
        except OSError as error:
            raise StartupError(
                f"sinks.{self.name}: cannot listen on {self.config.listen}: "
                f"{error.strerror or error}"
            ) from error
        self.address = self._server.sockets[0].getsockname()[:2]
        needs = " (a token is needed: open it with ?token=TOKEN)" if self._gate.needs_token else ""
        log.info("sink %s: serving on http://%s:%d/%s", self.name, *self.address, needs)

    async def close(self) -> None:
        """Stop accepting, close every connection with 1001 and wait for their handlers.
        Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP here; return None to let ``/ws`` become a WebSocket."""
        duplicated = self._gate.duplicated(request)
        if duplicated is not None:
            return response(HTTPStatus.BAD_REQUEST, f"more than one {duplicated} header\n")
        if not self._gate.host_allowed(request):
            return response(HTTPStatus.FORBIDDEN, "this Host may not use this server\n")
        path, _, query = request.path.partition("?")
        if path == "/healthz":
            return self._health()
        asset = self._assets.get(path)
        if asset is not None and path != "/":
            return asset_response(asset)  # the page's code and style: the same for everyone
        if path not in ("/", "/ws", "/metrics", "/stats"):
            return response(HTTPStatus.NOT_FOUND, "not found\n")
        if not self._gate.origin_allowed(request):
            return response(HTTPStatus.FORBIDDEN, "this origin may not use the stream\n")
        if not self._gate.authorised(request, query):
            extra = {"WWW-Authenticate": 'Bearer realm="aggregator"'}
            refusal = self._gate.refusal(request, query)
            return response(HTTPStatus.UNAUTHORIZED, refusal, extra=extra)
        if asset is not None:
            return asset_response(asset)
        if path == "/stats":
            body = orjson.dumps(self._stats() if self._stats is not None else {}) + b"\n"
            return response(HTTPStatus.OK, body, "application/json")
        if path == "/metrics":
            text = self._telemetry.metrics() if self._telemetry is not None else ""
            return response(HTTPStatus.OK, text, "text/plain; version=0.0.4; charset=utf-8")
        return self._admit(query)

    def _health(self) -> Response:
        healthy, detail = self._telemetry.health() if self._telemetry is not None else (True, {})
        body = {"status": "ok" if healthy else "failing", **detail}
        status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return response(status, orjson.dumps(body) + b"\n", "application/json")
