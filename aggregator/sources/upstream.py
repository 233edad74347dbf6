"""The websocket source: another aggregator's stream, followed as ``aggregator connect`` does
(``aggregator.web.client.StreamFollower``: reconnect with backoff, resume with since+run, gaps
reported and counted).

Records keep the upstream's ``source``, ``origin``, ``ts``, ``level`` and ``fields`` and gain
``node`` (the upstream's own, for records that came to it from further away, else this source's
``node``). Each (node, source) of the upstream is a lane of its own in the merge. A WebSocket
stream has no acknowledgements: what the upstream no longer held when this source reconnected
is a gap, counted as ``aggregator_dropped_total{reason="gap"}``, not delivered. A line of the
upstream's that is not a valid record is dropped and counted (``reason="invalid"``); a frame
larger than ``max_size`` closes the connection, which is then retried.
"""

import logging
from urllib.parse import urlsplit

from aggregator.config import WebSocketSourceConfig
from aggregator.flow.channel import Channel
from aggregator.flow.chunk import Announce, SourceItem
from aggregator.masking import mask_url
from aggregator.record.record import Record
from aggregator.sources import SourceContext
from aggregator.sources.lanes import LaneOutlet
from aggregator.telemetry.metrics import Counters
from aggregator.web.client import (
    ConnectError,
    Received,
    StreamFollower,
    StreamRequest,
)

log = logging.getLogger(__name__)


class WebSocketSource:
    """Follows one upstream aggregator's ``/ws``."""

    def __init__(self, name: str, config: WebSocketSourceConfig, context: SourceContext) -> None:
        self.name = name
        self.config = config
        self.node = config.node or urlsplit(config.url).netloc
        request = StreamRequest.from_url(config.url, config.token.get_secret_value())
        where = f"sources.{name}: {mask_url(request.url)}"
        self.follower = StreamFollower(request, self._deliver, where, config.max_size)
        self._out: Channel[SourceItem] | None = None
        self._outlets: dict[tuple[str, str], LaneOutlet] = {}

    async def open(self) -> None:
        """Nothing to bind: the upstream may come later."""

    async def close(self) -> None:
        """Nothing to release."""

    def counters(self) -> Counters:
        follower = self.follower
        return {
            "connected": int(follower.connected),
            "dropped_gap": follower.gaps,
            "dropped_upstream_slow": follower.dropped,
            "dropped_invalid": follower.invalid.count,
        }

    async def run(self, out: Channel[SourceItem]) -> None:
        self._out = out
        await out.put(Announce([], live=True))
        try:
            await self.follower.run()
        except ConnectError as error:
            # Refused (a bad token or filter): retrying would not help. This source ends and
            # is reported failed (/healthz); the others go on.
            raise OSError(str(error)) from error

    async def _deliver(self, received: Received) -> None:
        assert self._out is not None
        lanes: dict[tuple[str, str], list[Record]] = {}
        for record in received:
            record.seq = 0  # numbered again by this merge; ``late`` stays: it was sent late
            if record.node is None:
                record.node = self.node
            lanes.setdefault((record.node, record.source), []).append(record)
        fresh = [key for key in lanes if key not in self._outlets]
        if fresh:
            for key in fresh:
                self._outlets[key] = LaneOutlet(self._out, f"{key[0]}/{key[1]}")
            await self._out.put(Announce([f"{n}/{s}" for n, s in fresh], live=True))
        for key, records in lanes.items():
            await self._outlets[key].send(records, live=True)
