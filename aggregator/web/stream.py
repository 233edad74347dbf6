"""The websocket sink: the merged stream for WebSocket subscribers and the browser page.

The sink never blocks the pipeline: each batch is handed to the hub, which only queues, and
every subscriber is written by a task of its own. The port itself (the page, /healthz,
/metrics, who may come in) is ``aggregator.web.server``'s.
"""

import asyncio
import logging
import os
import time
from collections import Counter
from typing import TYPE_CHECKING

from aggregator.config import WebSocketSinkConfig
from aggregator.flow.channel import Channel, EndOfStream
from aggregator.lazyjson import loads
from aggregator.record.record import Batch
from aggregator.sinks import Sink, SinkContext
from aggregator.sinks.encoded import build_filter
from aggregator.telemetry.live_counts import LiveCounts
from aggregator.telemetry.metrics import Counters
from aggregator.web.hub import Hub
from aggregator.web.server import Refusal, WebServer
from aggregator.web.subscription import (
    SubscriptionError,
    SubscriptionRequest,
    filter_from_json,
    request_from_query,
)

if TYPE_CHECKING:  # websockets is loaded with the first client (server.py)
    from websockets.asyncio.server import ServerConnection

    from aggregator.web.subscriber import Subscriber

log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 1.0
"""Seconds subscribers get at shutdown to receive what is queued for them."""
FRAME_INTERVAL = 0.001
"""Seconds between two publishes at least: records that come meanwhile share the next frame,
so that a busy stream costs a send per millisecond per subscriber, not one per line."""
RATE_INTERVAL = 1
"""Seconds between two ``{"rates": …}`` frames: every subscriber's plot moves on this clock."""
CLOSE_TRY_AGAIN = 1013


class WebSocketSink(Sink):
    """Serves the stream to WebSocket subscribers and the page; never holds the pipeline back."""

    def __init__(self, name: str, config: WebSocketSinkConfig, context: SinkContext) -> None:
        self.name = name
        self.config = config
        self.records_out = 0
        self.delivered_seq = 0
        self.gone = False
        self.needs = "everything"  # subscribers filter by level and read every field
        self.hub = Hub(
            os.urandom(8).hex(), config.replay, context.source_names, config.replay_bytes
        )
        self._filter = build_filter(config.filter)  # the sink's own, before any subscriber's
        self._source_names = context.source_names  # the pipeline's: a reload updates it
        self._counts: Counter[str] = Counter()  # records per source since the last rates frame
        self.live_counts = LiveCounts(config.stats_field or None, time.monotonic)
        """What /stats shows: every record, before any filter."""
        self.server = WebServer(
            name,
            config,
            context.telemetry,
            self._admit,
            self._subscribe,
            stats=self.live_counts.snapshot,
        )

    @property
    def address(self) -> tuple[str, int] | None:
        return self.server.address

    async def open(self) -> None:
        await self.server.open()

    async def close(self) -> None:
        await self.server.close()

    def counters(self) -> Counters:
        return {
            "subscribers": len(self.hub.subscribers),
            "subscriber_groups": self.hub.groups,
            "dropped_slow_subscriber": self.hub.dropped_total,
        }

    async def run(self, inp: Channel[Batch]) -> None:
        ticker = asyncio.create_task(self._send_rates(), name=f"sink:{self.name}:rates")
        try:
            await self._publish(inp)
        finally:
            ticker.cancel("the stream has ended")
            await asyncio.gather(ticker, return_exceptions=True)
            await self._close_subscribers()

    async def _publish(self, inp: Channel[Batch]) -> None:
        """Hand every batch to the hub, counting what each source sent (before any filter)."""
        loop = asyncio.get_running_loop()
        last_publish = 0.0
        ended = False
        while not ended:
            try:
                batch = await inp.get()
            except EndOfStream:
                break
            batch, ended = await self._gather_until(inp, batch, last_publish + FRAME_INTERVAL)
            last_publish = loop.time()
            self.delivered_seq = batch[-1].seq
            self._counts.update(record.source for record in batch)
            self.live_counts.add(batch)
            if self._filter is not None:
                batch = list(self._filter.apply(batch))
            self.hub.publish(batch)
            self.records_out += len(batch)

    async def _send_rates(self) -> None:
        """Every RATE_INTERVAL, tell every subscriber how many records each source sent.

        The counts are the pipeline's, not a subscriber's: a page under a filter still sees
        what every source is doing, and a replay (which is not counted) cannot look like a
        burst. The frame is encoded once for all. Sources of the config come first, each
        always present (0 when quiet), so plots keep their series on one time axis."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + RATE_INTERVAL
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            # On time, ticks stay on one clock; after a stalled loop, no burst of ticks to catch up.
            next_tick = max(next_tick + RATE_INTERVAL, loop.time() + RATE_INTERVAL / 2)
            counts, self._counts = self._counts, Counter()
            rates = dict.fromkeys(self._source_names, 0)
            rates.update(counts)
            self.hub.broadcast_control(
                {"rates": rates, "interval": RATE_INTERVAL, "last_seq": self.hub.last_seq}
            )

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

    async def _close_subscribers(self) -> None:
        """Let subscribers take what is queued (briefly), then close them all with 1001."""
        try:
            async with asyncio.timeout(FLUSH_TIMEOUT):
                await asyncio.gather(*(member.wait_idle() for member in self.hub.subscribers))
        except TimeoutError:
            pass
        await self.server.close()

    def _admit(self, query: str) -> Refusal | None:
        """A ``/ws`` request past the gate: refused (400) when its filter is not valid, or
        (503) when the sink has all the subscribers it takes."""
        try:
            request_from_query(query, self.config.replay)
        except SubscriptionError as error:
            return 400, f"{error}\n"
        if len(self.hub.subscribers) >= self.config.max_subscribers:
            return 503, "too many subscribers\n"
        return None

    # --- WebSocket --------------------------------------------------------------------------

    async def _subscribe(self, connection: "ServerConnection") -> None:
        from aggregator.web.subscriber import Subscriber  # websockets' side, loaded by now

        assert connection.request is not None
        query = connection.request.path.partition("?")[2]
        request = request_from_query(query, self.config.replay)  # checked in _admit
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
            await asyncio.gather(writer, return_exceptions=True)

    def _resume_point(self, request: SubscriptionRequest) -> int | None:
        """``since`` as this run understands it: a SEQ of another run means from the start."""
        if request.since is None:
            return None
        if request.run is not None and request.run != self.hub.run_id:
            return 0
        return request.since

    async def _read_messages(self, subscriber: "Subscriber") -> None:
        """Live filter changes and pause/resume, until the client goes."""
        async for message in subscriber.messages():
            try:
                self._apply(subscriber, message)
            except SubscriptionError as error:
                subscriber.send_control({"error": str(error)})

    def _apply(self, subscriber: "Subscriber", message: str | bytes) -> None:
        try:
            command = loads(message)
        except ValueError:  # orjson's JSONDecodeError
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
            subscriber.send_control(
                {"notice": "pause", "paused": paused, "last_seq": self.hub.last_seq}
            )
            self.hub.set_paused(subscriber, paused)
