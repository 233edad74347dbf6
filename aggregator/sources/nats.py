"""The nats source: a durable JetStream pull consumer of ``SUBJECT.>`` (what nats sinks publish).

Messages are fetched in batches. Each (node, source) is a lane of its own in the merge, so the
records of many sidecars merge by event time as if their files were local; records keep their
``source``, ``origin``, ``ts``, ``level`` and ``fields`` and gain ``node``.

What the stream holds when the source starts (its backlog) is catch-up, merged exactly: the
stream lists its subjects and each one's last message before the consumer is bound (what is
published once it consumes is live), and each such lane ends its catch-up once that message has
been taken. Later records are live, and since a node not
heard from yet may speak at any time, the source is *open* (``Announce.open``): the merge holds
live records back for ``order_window`` after they were read.

Exactly once: a message is acknowledged only once every local sink has written its records and
what it changed has been saved (this source's book in ``state_dir``, committed through the same
``Checkpointer`` as file offsets, whose ``settle`` acknowledges). The book holds, per subject, the
last stream sequence taken, and per file of a sidecar (``Record.lane``) the last record taken:
a message delivered again (its acknowledgement was lost, or it waited past ``ack_wait``) and
records a sidecar sent again after a crash (in other messages) are dropped and counted. A
message that is not a valid one (not JSON, wrong types: ``decode_message`` checks every member)
is terminated (acknowledged for good: never redelivered, so it cannot crash-loop a consumer),
counted as ``dropped_total{reason="invalid"}`` and named on stderr once a minute per subject.
"""

import asyncio
import contextlib
import logging
from typing import Any

from aggregator.config import NatsSourceConfig
from aggregator.flow.channel import Budget, Channel
from aggregator.flow.checkpoints import Checkpointer
from aggregator.flow.chunk import Announce, Chunk, SourceItem
from aggregator.invalid import InvalidInput
from aggregator.jetstream.ledger import LANES_KEPT, Ledger, Taken
from aggregator.jetstream.link import Link, StreamUnfit, ensure_stream
from aggregator.jetstream.messages import BadMessage, Decoded, decode_message
from aggregator.jetstream.nodes import Nodes
from aggregator.sources import SourceContext
from aggregator.telemetry.metrics import Counters
from aggregator.trouble import reason_of

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0
"""Seconds a fetch waits for messages before it asks again."""
CONSUMER_CHECK = 10
"""Empty fetches between looks at whether the durable consumer still exists."""
LAST_LOOKUPS = 64
"""Subjects whose last message is asked for at once, when the backlog is listed at start."""


class NatsSource:
    """Consumes the stream; see the module's docstring."""

    def __init__(self, name: str, config: NatsSourceConfig, context: SourceContext) -> None:
        self.name = name
        self.config = config
        self.durable = config.durable or name
        self.book = f"nats:{name}"
        self.ledger = Ledger(context.state_dir, self.durable, self.book)
        interval = context.books.interval if context.books is not None else 1.0
        self.checkpointer = Checkpointer(self.ledger, interval, settle=self._acknowledge)
        if context.books is not None:
            context.books.register(self.book, self.checkpointer, close=self._close_link, owner=self)
        self.link = Link(config, f"sources.{name}", f"aggregator-source-{self.durable}")
        self._subscription: Any = None
        self._outlets: set[str] = set()  # the lanes (subjects) the merge has been told of
        # One credit for all lanes, not one each: the lanes come through one fetch loop, and a
        # lane out of credit would stop the others, whose records it may be waiting for.
        # Every live record waits order_window in the merge (a node not heard from may still
        # speak): the credit must cover the rate times the window (``max_held_records``).
        self._budget = Budget(config.max_held_records)
        self._taken_seq: dict[str, int] = {}  # per subject, this run (committed or in flight)
        self._taken_lanes: dict[str, dict[str, int]] = {}
        self._node_lanes: dict[str, list[str]] = {}  # each sidecar's lanes, for its watermark
        self._delivered = 0  # the consumer sequence of the last delivery (0: none yet)
        self._backlog: dict[str, int] = {}  # lanes still catching up: their last message's seq
        self._started = False  # bound once: the backlog is listed
        self.messages = 0
        self.redelivered = 0
        self.duplicates = 0  # records dropped: already taken
        self.invalid = InvalidInput(log)
        self.lag = 0
        self.acked = 0
        self.nodes = Nodes(f"sources.{name}", config.quiet_after)
        self.skew: dict[str, float] = {}
        """Per node: the server's store time of its last message less the node's clock when it
        sent it (seconds; a few ms on a good network, more when the node's clock is behind)."""

    async def open(self) -> None:
        """Nothing to bind: the server may come later."""

    async def close(self) -> None:
        await self._close_link()

    async def _close_link(self) -> None:
        await self.link.close()

    def counters(self) -> Counters:
        return {
            "connected": int(self.link.up),
            "nats_messages": self.messages,
            "nats_acknowledged": self.acked,
            "nats_redelivered": self.redelivered,
            "nats_duplicates_dropped": self.duplicates,
            "dropped_invalid": self.invalid.count,
            "nats_consumer_lag": self.lag,
            "nats_clock_skew": dict(self.skew),
            "nats_node_last_seen": self.nodes.last_seen(),
            "nats_node_lag": self.nodes.lags(),
        }

    async def run(self, out: Channel[SourceItem]) -> None:
        await out.put(Announce([], live=True, open=True))
        for subject, taken in self.checkpointer.positions.items():
            self._taken_seq[subject] = taken.stream_seq
            self._taken_lanes[subject] = dict(taken.lanes)
        await self.link.open(self._on_connect)
        self._started = True
        if self._backlog:  # catch-up lanes: the merge waits for each one's old records
            log.info("sources.%s: catching up on %d subjects", self.name, len(self._backlog))
            await out.put(Announce(sorted(self._backlog), live=False))
        await self._consume(out)

    async def _on_connect(self, client: Any, rewind: bool = False) -> None:
        """Bind to the durable consumer, made if it is missing. At the first connect, before
        binding, what the stream holds is listed: the backlog (``_backlog_subjects``)."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        stream = await ensure_stream(client, self.config)
        js = client.jetstream()
        created = str(stream.created)
        if self.ledger.stream_created not in ("", created):
            # The stream was deleted and made again: its sequences start again, so what was
            # taken of the old one says nothing of the new one (the files' marks still hold).
            log.warning("sources.%s: the stream %s was made again; taking it from its start",
                        self.name, self.config.stream)  # fmt: skip
            self._taken_seq.clear()
            self.checkpointer.positions = {
                key: Taken(key, 0, taken.lanes, None, self.book)
                for key, taken in self.checkpointer.positions.items()
            }
        self.ledger.stream_created = created
        existing = await self._durable(js)
        if not self._started:
            self._backlog = await self._backlog_subjects(js, existing, stream)
        start: dict[str, Any] = {"deliver_policy": DeliverPolicy.ALL}
        floor = await self._rewind(js, existing, always=rewind)
        self._delivered = 0
        if floor is not None:
            start = {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": floor + 1}
        if existing is None or floor is not None:
            consumer = ConsumerConfig(
                durable_name=self.durable,
                name=self.durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.config.ack_wait,
                max_ack_pending=self.config.max_ack_pending,
                max_deliver=-1,
                filter_subject=f"{self.config.subject}.>",
                **start,
            )
            await js.add_consumer(self.config.stream, config=consumer)
        self._subscription = await js.pull_subscribe_bind(
            durable=self.durable, stream=self.config.stream
        )

    async def _durable(self, js: Any) -> Any:
        """The durable consumer's info, None when there is none. ``StreamUnfit`` when it
        exists with a filter other than ours: another central's (several centrals on one
        stream, one durable name); bound to it, this one would take a share of the other's
        subjects and none of its own."""
        from nats.js.errors import NotFoundError

        try:
            info = await js.consumer_info(self.config.stream, self.durable)
        except NotFoundError:
            return None
        wanted = f"{self.config.subject}.>"
        theirs = list(info.config.filter_subjects or [info.config.filter_subject or ">"])
        if theirs != [wanted]:
            raise StreamUnfit(
                f"its consumer {self.durable} exists and takes {theirs}, not {wanted} (another "
                f"central's?): give this source a durable of its own, or, if this source's "
                f"subject has changed, delete that consumer"
            )
        return info

    async def _rewind(self, js: Any, existing: Any, always: bool = False) -> int | None:
        """When the durable has messages delivered and not acknowledged (an earlier run was
        killed with them on their way), delete it, to be made again from its ack floor, and
        return the floor: the server would send them again only after ``ack_wait``, behind
        newer ones, and a file's records must come in order for its high-water mark to hold.
        What this source took of them before is recognised by its book. None: nothing to
        rewind."""
        from nats.js.errors import NotFoundError

        if existing is None or not (existing.num_ack_pending or always):
            return None
        floor = int(existing.ack_floor.stream_seq if existing.ack_floor else 0)
        log.info("sources.%s: %d messages were on their way when it last stopped; taking them "
                 "again from %d", self.name, existing.num_ack_pending, floor + 1)  # fmt: skip
        with contextlib.suppress(NotFoundError):  # gone meanwhile: made again all the same
            await js.delete_consumer(self.config.stream, self.durable)
        return floor

    async def _backlog_subjects(self, js: Any, existing: Any, stream: Any) -> dict[str, int]:
        """When the stream holds messages this consumer has not taken (this central was away,
        or starts after the nodes), the subjects with such messages, each with its last
        message's stream sequence: where its catch-up ends. Empty when it is up to date or
        cannot tell. Listed before the consumer is bound: a node that publishes once this
        central consumes is live, never backlog, however slowly the listing goes (its records
        would leave as catch-up at once, ahead of older ones of nodes still to speak)."""
        from nats.errors import Error as NatsError

        if existing is not None:
            pending = existing.num_pending + existing.num_ack_pending
            floor = int(existing.ack_floor.stream_seq if existing.ack_floor else 0)
        else:  # made now, taking the stream from its start
            pending, floor = int(stream.state.messages), 0
        if not pending:
            return {}
        try:
            info = await js.stream_info(
                self.config.stream, subjects_filter=f"{self.config.subject}.>"
            )
            subjects = sorted(info.state.subjects or {})
            lasts: dict[str, int] = {}
            for start in range(0, len(subjects), LAST_LOOKUPS):
                part = subjects[start : start + LAST_LOOKUPS]
                found = await asyncio.gather(
                    *(js.get_last_msg(self.config.stream, subject) for subject in part)
                )
                lasts.update(zip(part, (int(msg.seq) for msg in found), strict=True))
        except (NatsError, OSError, TimeoutError) as error:
            log.warning("sources.%s: cannot list the stream's backlog (%s); merging it within "
                        "order_window", self.name, reason_of(error))  # fmt: skip
            return {}
        return {
            subject: last
            for subject, last in lasts.items()
            if last > max(floor, self._taken_seq.get(subject, 0))
        }

    async def _end_catch_up(self, subjects: list[str], out: Channel[SourceItem]) -> None:
        """These lanes have read through the backlog: what they send from now on is live."""
        for subject in subjects:
            if self._backlog.pop(subject, None) is not None:
                await out.put(Chunk(subject, [], live=True))

    async def _check_consumer(self) -> None:
        from nats.errors import Error as NatsError
        from nats.js.errors import NotFoundError

        try:
            await self.link.client.jetstream().consumer_info(
                self.config.stream, self.durable, timeout=FETCH_TIMEOUT
            )
        except NotFoundError:
            log.warning("sources.%s: the consumer %s is gone (the stream was reset?); making it "
                        "again", self.name, self.durable)  # fmt: skip
            await self._reconnect()
        except (NatsError, OSError, TimeoutError) as error:
            log.debug("sources.%s: consumer_info failed: %s", self.name, reason_of(error))

    async def _reconnect(self, rewind: bool = False) -> None:
        """Bind again (the consumer made again, or rewound); what fails is said and tried
        again later (a cluster electing the consumer's leader does not answer for seconds):
        this source never stops for it."""
        from nats.errors import Error as NatsError

        try:
            await self._on_connect(self.link.client, rewind=rewind)
        except StreamUnfit as error:  # made again meanwhile by another central: said, retried
            log.error("sources.%s: %s", self.name, error)
        except (NatsError, OSError, TimeoutError) as error:
            log.warning("sources.%s: cannot bind to the consumer %s again (%s); retrying",
                        self.name, self.durable, reason_of(error))  # fmt: skip

    async def _consume(self, out: Channel[SourceItem]) -> None:
        from nats.errors import Error as NatsError

        quiet = 0
        while True:
            try:
                messages = await self._subscription.fetch(self.config.batch, timeout=FETCH_TIMEOUT)
            except TimeoutError:
                # Nothing came, or the server is away (the client reconnects by itself). Now
                # and then, check that the consumer is still there: a fetch from one that was
                # deleted (or lost with the server's store) only ever times out.
                quiet += 1
                self.nodes.look_for_quiet()
                if self._backlog and self.link.up:  # nothing pending: the backlog is through
                    await self._end_catch_up(list(self._backlog), out)
                if quiet % CONSUMER_CHECK == 0 and self.link.up:
                    await self._check_consumer()
                continue
            except (NatsError, OSError) as error:
                log.debug("sources.%s: fetch failed: %s", self.name, reason_of(error))
                await asyncio.sleep(FETCH_TIMEOUT)
                continue
            fresh = list(
                dict.fromkeys(
                    m.subject
                    for m in messages
                    if m.subject not in self._outlets and m.subject not in self._backlog
                )
            )
            if fresh:  # known to the merge before any of them sends: it waits for them
                await out.put(Announce(fresh, live=True))
            self.nodes.look_for_quiet()
            watermarks: dict[str, int] = {}
            caught_up: list[str] = []
            for message in messages:
                delivered = message.metadata.sequence.consumer
                if self._delivered and delivered != self._delivered + 1:
                    # Deliveries were lost on the way (the connection broke with them in it):
                    # the server sends them again only after ack_wait, behind these. Take the
                    # consumer back to its ack floor instead, so everything comes in order.
                    log.warning("sources.%s: deliveries %d to %d were lost on the way; taking "
                                "the stream again from the last message acknowledged",
                                self.name, self._delivered + 1, delivered - 1)  # fmt: skip
                    await self._reconnect(rewind=True)
                    break
                self._delivered = delivered
                decoded = await self._take(message, out)
                if decoded is not None:
                    node = decoded.node
                    watermarks[node] = max(watermarks.get(node, decoded.watermark),
                                           decoded.watermark)  # fmt: skip
                last = self._backlog.get(message.subject)
                if last is not None and message.metadata.sequence.stream >= last:
                    caught_up.append(message.subject)
            await self._spread(watermarks, out)
            await self._end_catch_up(caught_up, out)

    async def _spread(self, watermarks: dict[str, int], out: Channel[SourceItem]) -> None:
        """A sidecar's watermark holds for all its sources (its merge sent them in one order):
        its other lanes still catching up need not hold the exact merge back below it either.
        A live lane is not told: this source is open, and the merge holds every live record
        its window whatever a live lane's bound says (with a window of 0, a live lane holds
        nobody back), so a chunk per lane and fetch would cost the merge a push each for
        nothing (at 1,000 nodes, more chunks than the messages' own)."""
        if not self._backlog:
            return
        for node, watermark in watermarks.items():
            for lane in self._node_lanes.get(node, ()):
                if lane in self._backlog:
                    await out.put(Chunk(lane, [], True, watermark=watermark))

    async def _take(self, message: Any, out: Channel[SourceItem]) -> Decoded | None:
        """Hand a message's new records to the merge; what it said, if it could be read."""
        meta = message.metadata
        subject: str = message.subject
        stream_seq: int = meta.sequence.stream
        self.lag = meta.num_pending
        if meta.num_delivered > 1:
            self.redelivered += 1
        if stream_seq <= self._taken_seq.get(subject, 0):
            # Taken already: committed (its ack was lost: ack again), or still on its way
            # through the pipeline (waited past ack_wait: its own ack will settle it).
            committed = self.checkpointer.positions.get(subject)
            if committed is not None and stream_seq <= committed.stream_seq:
                await self._ack(message)
            return None
        try:
            decoded = decode_message(message.data)
        except BadMessage as error:
            why = f"message {stream_seq} cannot be read ({error}); terminated"
            self.invalid.dropped(f"sources.{self.name}: {subject}", why)
            await self._settle_bad(message)
            self._taken_seq[subject] = stream_seq
            return None
        self.messages += 1
        self._taken_seq[subject] = stream_seq
        if decoded.sent_at is not None:
            stored = int(meta.timestamp.timestamp() * 1_000_000)
            self.skew[decoded.node] = round((stored - decoded.sent_at) / 1e6, 6)
        self.nodes.heard(decoded, subject)
        records = self._new_records(subject, decoded)
        lanes = self._taken_lanes.get(subject, {})
        taken = Taken(subject, stream_seq, dict(lanes), message, self.book)
        if not records:
            # Every record was here already, in a message that is committed or on its way
            # (or an end marker): this one may go now.
            await self._ack(message)
            if decoded.end and (subject in self._outlets or subject in self._backlog):
                self._backlog.pop(subject, None)
                await out.put(Chunk(subject, [], True, final=True))
            return decoded
        lane = subject  # one (node, source): a lane of its own
        if lane not in self._outlets:
            self._outlets.add(lane)
            self._node_lanes.setdefault(decoded.node, []).append(lane)
        if self._backlog and self._budget.free <= 0:
            # The backlog's lanes wait for each other, and a lane's old records may come far
            # behind another's in the stream: rather than hold more, merge the rest live.
            log.warning("sources.%s: the backlog is too large to merge exactly in memory; the "
                        "rest is merged within order_window", self.name)  # fmt: skip
            await self._end_catch_up(list(self._backlog), out)
        await self._budget.take(len(records))
        await out.put(
            Chunk(
                lane, records, lane not in self._backlog, False, self._budget.give, taken,
                decoded.watermark,
            )
        )  # fmt: skip
        return decoded

    def _new_records(self, subject: str, decoded: Decoded) -> list[Any]:
        """The records not taken before, by their place in their files."""
        lanes = self._taken_lanes.setdefault(subject, {})
        fresh = []
        for record in decoded.records:
            lane = record.lane
            if lane is not None:
                seen = lanes.get(lane, 0)
                if record.lane_seq <= seen:
                    self.duplicates += 1
                    continue
                if seen == 0 and len(lanes) >= LANES_KEPT:
                    del lanes[next(iter(lanes))]  # the file heard of longest ago
                lanes.pop(lane, None)
                lanes[lane] = record.lane_seq  # most recent last
            fresh.append(record)
        return fresh

    async def _acknowledge(self, positions: list[Taken]) -> None:
        """Settle: the sinks wrote these messages' records and the book is saved."""
        for taken in positions:
            if taken.message is not None:
                await self._ack(taken.message)

    async def _ack(self, message: Any) -> None:
        from nats.errors import Error as NatsError

        try:
            await message.ack()
            self.acked += 1
        except (NatsError, OSError) as error:  # redelivered later, and dropped as taken
            log.debug("sources.%s: cannot acknowledge: %s", self.name, reason_of(error))

    async def _settle_bad(self, message: Any) -> None:
        from nats.errors import Error as NatsError

        try:
            await message.term()
        except (NatsError, OSError) as error:
            log.debug("sources.%s: cannot terminate: %s", self.name, reason_of(error))
