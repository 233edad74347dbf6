"""What the port answers once websockets' server runs on it: plain HTTP (the page, /healthz,
/metrics, /stats) in ``process_request``, and the way in to /ws.

This is the websockets side of the port: ``aggregator.web.server`` imports it when the first
connection comes, and hands it the sockets it bound at start.
"""

import logging
import socket
from http import HTTPStatus

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from aggregator.config import WebSocketSinkConfig
from aggregator.telemetry import Telemetry
from aggregator.web import CONNECTION_LOG
from aggregator.web.http import CONTENT_SECURITY_POLICY, Asset, Gate
from aggregator.web.server import Admit, Stats, Subscribe

MAX_INCOMING_FRAME = 64 * 1024
"""Largest frame a client may send (a filter); a larger one closes the connection with 1009."""
CLOSE_TIMEOUT = 2.0
"""Seconds a closing handshake may take before the connection is dropped."""


def response(
    status: HTTPStatus,
    body: bytes | str = b"",
    content_type: str = "text/plain; charset=utf-8",
    extra: dict[str, str] | None = None,
) -> Response:
    """An HTTP response that is never cached, sniffed or told where it came from."""
    data = body.encode() if isinstance(body, str) else body
    headers = Headers(
        {
            "Content-Type": content_type,
            "Content-Length": str(len(data)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Connection": "close",
            **(extra or {}),
        }
    )
    return Response(status.value, status.phrase, headers, data)


def asset_response(asset: Asset) -> Response:
    extra = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"}
    return response(HTTPStatus.OK, asset.body, asset.content_type, extra)


class Routes:
    """Routes requests: /healthz for anyone; the page, /ws, /metrics and /stats behind the gate."""

    def __init__(
        self,
        gate: Gate,
        assets: dict[str, Asset],
        telemetry: Telemetry | None,
        admit: Admit,
        stats: Stats | None,
    ) -> None:
        self._gate = gate
        self._assets = assets
        self._telemetry = telemetry
        self._admit = admit
        self._stats = stats

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
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
        refused = self._admit(query)
        if refused is None:
            return None
        status, text = refused
        return response(HTTPStatus(status), text)

    def _health(self) -> Response:
        healthy, detail = self._telemetry.health() if self._telemetry is not None else (True, {})
        body = {"status": "ok" if healthy else "failing", **detail}
        status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return response(status, orjson.dumps(body) + b"\n", "application/json")


async def serve_on(
    sock: socket.socket, routes: Routes, subscribe: Subscribe, config: WebSocketSinkConfig
) -> Server:
    """websockets' server on ``sock``, a socket already bound and listening: it accepts the
    connections waiting there first."""
    return await serve(
        subscribe,
        sock=sock,
        process_request=routes.process_request,
        compression="deflate" if config.compression else None,
        max_size=MAX_INCOMING_FRAME,
        ping_interval=config.ping_interval or None,
        ping_timeout=config.ping_interval or None,
        close_timeout=CLOSE_TIMEOUT,
        server_header=None,
        logger=logging.getLogger(CONNECTION_LOG),
    )
