"""The websocket sink: the merged stream, the browser page, /healthz and /metrics on one port.

One websockets server answers both: plain HTTP requests in ``process_request``, WebSocket
subscribers in ``_serve_subscriber``. The sink never blocks the pipeline: each batch is handed
to the hub, which only queues, and every subscriber is written by a task of its own.
"""

import asyncio
import logging
import secrets
from collections.abc import Sequence
from http import HTTPStatus
from typing import Protocol

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from aggregator.config import WebSocketSinkConfig
from aggregator.errors import StartupError
from aggregator.flow.channel import Channel, EndOfStream
from aggregator.flow.record import Batch
from aggregator.sinks.encoded import build_filter
from aggregator.web.http import Gate, asset_response, load_assets, response
from aggregator.web.hub import Hub
from aggregator.web.subscriber import Subscriber
from aggregator.web.subscription import (
    SubscriptionError,
    SubscriptionRequest,
    filter_from_json,
    request_from_query,
)

log = logging.getLogger(__name__)

MAX_INCOMING_FRAME = 64 * 1024
"""Largest frame a client may send (a filter); a larger one closes the connection with 1009."""
CLOSE_TIMEOUT = 2.0
"""Seconds a closing handshake may take before the connection is dropped."""
FLUSH_TIMEOUT = 1.0
"""Seconds subscribers get at shutdown to receive what is queued for them."""
FRAME_INTERVAL = 0.001
"""Seconds between two publishes at least: records that come meanwhile share the next frame.
At 1000 lines/s, a frame per line per subscriber costs the server (and every client) a send
each; this saves about a fifth of the server's CPU there, for at most 1 ms of added latency."""
CLOSE_TRY_AGAIN = 1013
CONNECTION_LOG = "aggregator.web.connections"
"""The logger websockets reports each connection and HTTP request to."""


class Telemetry(Protocol):
    """What the pipeline tells /healthz and /metrics."""

    def health(self) -> tuple[bool, dict[str, object]]: ...

    def metrics(self) -> str: ...


class WebSocketSink:
    """Serves the stream to WebSocket subscribers and the page; never holds the pipeline back."""

    def __init__(self, name: str, config: WebSocketSinkConfig, source_names: Sequence[str]) -> None:
        self.name = name
        self.config = config
        self.records_out = 0
        self.delivered_seq = 0
        self.gone = False
        self.telemetry: Telemetry | None = None
        self.hub = Hub(secrets.token_hex(8), config.replay, source_names)
        self.address: tuple[str, int] | None = None
        self._filter = build_filter(config.filter)  # the sink's own, before any subscriber's
        self._gate = Gate(config.auth_token.get_secret_value(), config.allowed_origins)
        self._assets = load_assets()
        self._server: Server | None = None
        self._writers: set[asyncio.Task[None]] = set()

    @property
    def subscribers(self) -> int:
        return len(self.hub.subscribers)

    async def open(self) -> None:
        """Bind the port (a port in use is a StartupError naming the sink)."""
        host, _, port = self.config.listen.rpartition(":")
        try:
            self._server = await serve(
                self._serve_subscriber,
                host.strip("[]"),
                int(port),
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
        log.info("sink %s: serving on http://%s:%d/", self.name, *self.address)

    async def run(self, inp: Channel[Batch]) -> None:
        loop = asyncio.get_running_loop()
        last_publish = 0.0
        ended = False
        try:
            while not ended:
                try:
                    batch = await inp.get()
                except EndOfStream:
                    break
                batch, ended = await self._gather_until(inp, batch, last_publish + FRAME_INTERVAL)
                last_publish = loop.time()
                self.delivered_seq = batch[-1].seq
                if self._filter is not None:
                    batch = list(self._filter.apply(batch))
                self.hub.publish(batch)
                self.records_out += len(batch)
        finally:
            await self._close()

    @staticmethod
    async def _gather_until(
        inp: Channel[Batch], batch: Batch, deadline: float
    ) -> tuple[Batch, bool]:
        """``batch`` and what comes before ``deadline``; and whether the stream ended.

        Batches are shared with the other sinks: they are joined into a new list, never
        extended in place."""
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    batch = batch + await inp.get()
        except TimeoutError:
            return batch, False
        except EndOfStream:
            return batch, True

    async def _close(self) -> None:
        """Let subscribers take what is queued (briefly), then close them all with 1001."""
        if self._server is None:
            return
        try:
            async with asyncio.timeout(FLUSH_TIMEOUT):
                await asyncio.gather(*(member.wait_idle() for member in self.hub.subscribers))
        except TimeoutError:
            pass
        self._server.close()
        await self._server.wait_closed()

    # --- HTTP -------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP here; return None to let ``/ws`` become a WebSocket."""
        path, _, query = request.path.partition("?")
        if path == "/healthz":
            return self._health()
        asset = self._assets.get(path)
        if asset is not None and path != "/":
            return asset_response(asset)  # the page's code and style: the same for everyone
        if path not in ("/", "/ws", "/metrics"):
            return response(HTTPStatus.NOT_FOUND, "not found\n")
        if not self._gate.origin_allowed(request):
            return response(HTTPStatus.FORBIDDEN, "this origin may not use the stream\n")
        if not self._gate.authorised(request, query):
            extra = {"WWW-Authenticate": 'Bearer realm="aggregator"'}
            return response(HTTPStatus.UNAUTHORIZED, "a token is required\n", extra=extra)
        if asset is not None:
            return asset_response(asset)
        if path == "/metrics":
            text = self.telemetry.metrics() if self.telemetry is not None else ""
            return response(HTTPStatus.OK, text, "text/plain; version=0.0.4; charset=utf-8")
        try:
            request_from_query(query, self.config.replay)
        except SubscriptionError as error:
            return response(HTTPStatus.BAD_REQUEST, f"{error}\n")
        if len(self.hub.subscribers) >= self.config.max_subscribers:
            return response(HTTPStatus.SERVICE_UNAVAILABLE, "too many subscribers\n")
        return None

    def _health(self) -> Response:
        healthy, detail = self.telemetry.health() if self.telemetry is not None else (True, {})
        body = {"status": "ok" if healthy else "failing", **detail}
        status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return response(status, orjson.dumps(body) + b"\n", "application/json")

    # --- WebSocket --------------------------------------------------------------------------

    async def _serve_subscriber(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        query = connection.request.path.partition("?")[2]
        request = request_from_query(query, self.config.replay)  # checked in _process_request
        if len(self.hub.subscribers) >= self.config.max_subscribers:
            await connection.close(CLOSE_TRY_AGAIN, "too many subscribers")
            return
        subscriber = Subscriber(
            connection,
            request.filter,
            request.format,
            self.config.subscriber_buffer,
            self.config.slow_subscriber,
        )
        subscriber.send_control({"hello": {"run": self.hub.run_id, "seq": self.hub.last_seq}})
        self.hub.join(subscriber, request.replay, self._resume_point(request), request.paused)
        writer = asyncio.create_task(subscriber.write(), name=f"ws:write:{subscriber.peer}")
        try:
            await self._read_messages(subscriber)
        finally:
            self.hub.leave(subscriber)
            writer.cancel("the subscriber has gone")

    def _resume_point(self, request: SubscriptionRequest) -> int | None:
        """``since`` as this run understands it: a SEQ of another run means from the start."""
        if request.since is None:
            return None
        if request.run is not None and request.run != self.hub.run_id:
            return 0
        return request.since

    async def _read_messages(self, subscriber: Subscriber) -> None:
        """Live filter changes and pause/resume, until the client goes."""
        try:
            async for message in subscriber.connection:
                try:
                    self._apply(subscriber, message)
                except SubscriptionError as error:
                    subscriber.send_control({"error": str(error)})
        except ConnectionClosed:
            pass

    def _apply(self, subscriber: Subscriber, message: str | bytes) -> None:
        try:
            command = orjson.loads(message)
        except orjson.JSONDecodeError:
            raise SubscriptionError("expected a JSON object") from None
        if not isinstance(command, dict) or not ({"filter", "pause"} & command.keys()):
            raise SubscriptionError('expected {"filter": {...}} or {"pause": true|false}')
        if "filter" in command:
            new_filter = filter_from_json(command["filter"])
            replay = command.get("replay", 0)
            if not isinstance(replay, int) or isinstance(replay, bool) or replay < 0:
                raise SubscriptionError("replay: expected a whole number")
            # The notice first: what follows it (the replay, then live records) is filtered anew.
            subscriber.send_control({"notice": "filter", "filter": new_filter.to_json()})
            self.hub.change_filter(subscriber, new_filter, min(replay, self.config.replay))
        if "pause" in command:
            paused = command["pause"]
            if not isinstance(paused, bool):
                raise SubscriptionError("pause: expected true or false")
            # Acknowledged first: on resume, what was missed follows the notice.
            subscriber.send_control({"notice": "pause", "paused": paused})
            self.hub.set_paused(subscriber, paused)
