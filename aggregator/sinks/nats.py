"""The nats sink: the merged stream published to NATS JetStream, many records a message.

Records go to ``SUBJECT.NODE.SOURCE``, one message per (source, cut): a message closes at
``max_records``, at ``max_message_bytes``, or when its first record has waited ``linger``. A
clean stop ends with a message of no records marked ``end`` on each subject.
Each subject has its own publisher, which sends its messages one after the other and waits for
JetStream's acknowledgement of each; the subjects publish concurrently. One at a time per
subject keeps what the stream holds a prefix of what was sent, in order (a retried message can
never land behind a later one of its subject), which is what lets a consumer keep a high-water
mark per file; a message of up to 256 KiB a round trip is far more than the pipeline makes.

``delivered_seq`` moves only past records whose message was acknowledged, so file checkpoints
never pass what JetStream has not stored. While nats-server is away, the publishers retry with
backoff, their queues fill, and the sink stops taking batches: the pipeline waits (files wait,
TCP senders get backpressure). The connection has no reconnect buffer (``pending_size=0``):
what was sent before an outage either reached the server or is sent again, with the same
``Nats-Msg-Id``, so the server stores it once.
"""

import asyncio
import logging
import random
import socket
import time
from collections import deque
from typing import Any

from aggregator.config import NatsSinkConfig
from aggregator.flow.channel import Channel, EndOfStream
from aggregator.jetstream.link import Link, ensure_stream
from aggregator.jetstream.messages import Message, encode_message, message_id, subject_token
from aggregator.jetstream.messages import subject_for as make_subject
from aggregator.record.filters import RecordFilter
from aggregator.record.record import Batch, Record
from aggregator.sinks import Sink, SinkContext
from aggregator.sinks.encoded import build_filter, where_reads_parsed
from aggregator.telemetry.metrics import Counters
from aggregator.trouble import reason_of

log = logging.getLogger(__name__)

QUEUED_MESSAGES = 2
"""Messages a subject may have cut and waiting behind the one being published."""
DEFAULT_MAX_PAYLOAD = 1 << 20
"""What nats-server takes in one message unless it says otherwise (when it connects)."""
HEADROOM = 512
"""Bytes left for the headers (Nats-Msg-Id) and the protocol line."""
FIRST_RETRY = 0.1
LAST_RETRY = 1.0
"""Seconds at most a publisher waits before it tries a message again (and then, while not
connected, for the connection). A stream whose leader a cluster elects takes the first
attempt after the election: a longer wait is a longer gap in the node's records at the central."""
STREAM_TIMEOUT = 1.0
"""Seconds the stream's info may take to come when the sink sets the stream up or looks
whether it was deleted: while a cluster elects the stream's leader it never comes, and the
publisher must not wait nats-py's 5 s for it before it tries again."""


def _copy(record: Record) -> Record:
    """A record of its own (``copy.copy`` does not copy a class compiled with mypyc)."""
    copied = Record(
        record.ts,
        record.source,
        record.origin,
        record.line,
        record.level,
        record.fields,
        record.truncated,
        record.parse_error,
        record.json_tail,
    )
    copied.seq, copied.late, copied.node = record.seq, record.late, record.node
    copied.lane, copied.lane_seq = record.lane, record.lane_seq
    return copied


class _Subject:
    """One subject's buffer (records not cut into a message yet) and its publisher's queue."""

    def __init__(self, subject: str, source: str) -> None:
        self.subject = subject
        self.source = source
        self.buffer: list[Record] = []
        self.bytes = 0
        self.since = 0.0  # when the buffer's first record came (monotonic)
        self.pending: deque[Message] = deque()  # cut, not yet acknowledged; [0] is in flight
        self.room = asyncio.Event()
        self.room.set()
        self.work = asyncio.Event()
        self.count = 0  # messages cut, for their fallback ids

    def first_unacked(self) -> int | None:
        """The lowest seq this subject has not had acknowledged."""
        if self.pending:
            return self.pending[0].first_seq
        if self.buffer:
            return self.buffer[0].seq
        return None


class NatsSink(Sink):
    """Publishes the stream to JetStream; see the module's docstring."""

    def __init__(self, name: str, config: NatsSinkConfig, context: SinkContext) -> None:
        self.name = name
        self.config = config
        self.node = config.node or socket.gethostname()
        if subject_token(self.node) != self.node:
            log.warning("sinks.%s: the node name %r is not a valid NATS subject token (letters, "
                        "digits, - and _); its subjects use %r, its records keep the name",
                        name, self.node, subject_token(self.node))  # fmt: skip
        self.records_out = 0
        self.gone = False
        # records travel in the json format; a filter on levels or fields reads what codecs find
        reads_parsed = config.filter is not None and (
            config.filter.level is not None or where_reads_parsed(config.filter)
        )
        self.needs = "everything" if reads_parsed else "json"
        self._filter: RecordFilter | None = build_filter(config.filter)
        self._subjects: dict[str, _Subject] = {}
        self._last_seq = 0
        self._watermark = -(2**63)  # the highest ts taken so far
        self._stored_marks: deque[tuple[int, int]] = deque()  # (a batch's last seq, watermark)
        self._stored_watermark = -(2**63)
        """The highest ts of the records JetStream has stored (all seqs up to it acknowledged):
        what a message says as its sender's watermark. Not the highest ts taken: a record
        taken before may still wait in another subject's buffer, or its message be on its way,
        and it may reach the stream after this message."""
        self._run_id = f"{time.time_ns():x}"
        self.link = Link(config, f"sinks.{name}", f"aggregator-sink-{self.node}", pending_size=0)
        self._js: Any = None
        self._max_payload = DEFAULT_MAX_PAYLOAD - HEADROOM
        self._publishers: list[asyncio.Task[None]] = []
        self._failure: Exception | None = None
        self.published = 0  # messages acknowledged
        self.records_acked = 0
        self.retries = 0
        self.duplicates = 0  # messages the server already had (a retry after a lost ack)

    @property
    def delivered_seq(self) -> int:  # type: ignore[override]
        """The seq up to which every record is in an acknowledged message (or filtered out)."""
        firsts = [first for s in self._subjects.values() if (first := s.first_unacked())]
        return min(firsts) - 1 if firsts else self._last_seq

    async def open(self) -> None:
        """Nothing is connected before ``run``: nats-server may start after the sidecar."""

    async def close(self) -> None:
        await self.link.close()

    def reopen(self) -> None:
        """Nothing to reopen."""

    def counters(self) -> Counters:
        return {
            "connected": int(self.link.up),
            "nats_published": self.published,
            "nats_records_acknowledged": self.records_acked,
            "nats_pending": self._unpublished(),
            "nats_retries": self.retries,
            "nats_duplicates": self.duplicates,
        }

    def _unpublished(self) -> int:
        """Records taken and not acknowledged by JetStream yet."""
        subjects = self._subjects.values()
        return sum(len(s.buffer) + sum(m.count for m in s.pending) for s in subjects)

    async def run(self, inp: Channel[Batch]) -> None:
        connecting = asyncio.create_task(self.link.open(self._on_connect), name="nats:connect")
        try:
            await self._take(inp)
            for subject in self._subjects.values():
                self._cut(subject)
            await self._settled()
            await self._end_while_connected()
        finally:
            self._say_what_is_left()
            connecting.cancel("the sink is stopping")
            for task in self._publishers:
                task.cancel("the sink is stopping")
            await asyncio.gather(connecting, *self._publishers, return_exceptions=True)
            await self.link.close()

    async def _on_connect(self, client: Any) -> None:
        await ensure_stream(client, self.config, STREAM_TIMEOUT)
        self._js = client.jetstream()
        self._max_payload = int(client.max_payload) - HEADROOM

    async def _take(self, inp: Channel[Batch]) -> None:
        """Batches into subject buffers, cut into messages as they fill or linger."""
        linger = self.config.linger
        while True:
            deadline = self._linger_deadline()
            try:
                if deadline is None:
                    batch = await inp.get()
                else:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        batch = await inp.get()
            except TimeoutError:
                now = time.monotonic()
                for subject in list(self._subjects.values()):
                    if subject.buffer and now >= subject.since + linger:
                        await self._cut_when_room(subject)
                continue
            except EndOfStream:
                return
            await self._add(batch)

    def _linger_deadline(self) -> float | None:
        waiting = [s.since for s in self._subjects.values() if s.buffer]
        return min(waiting) + self.config.linger if waiting else None

    async def _add(self, batch: Batch) -> None:
        records = self._filter.apply(batch) if self._filter is not None else batch
        watermark = self._watermark
        limit_records = self.config.max_records
        limit_bytes = self.config.max_message_bytes - 1024  # room for the meta line
        for record in records:
            if record.ts > watermark:
                watermark = record.ts
            subject = self._subject(record.source)
            if not subject.buffer:
                subject.since = time.monotonic()
            subject.buffer.append(record)
            subject.bytes += len(record.line) + len(record.origin) + 120
            if len(subject.buffer) >= limit_records or subject.bytes >= limit_bytes:
                self._watermark = watermark
                await self._cut_when_room(subject)
        self._watermark = watermark
        self._last_seq = batch[-1].seq
        self._stored_marks.append((self._last_seq, watermark))
        self.records_out += len(records)

    def _subject(self, source: str) -> _Subject:
        subject = self._subjects.get(source)
        if subject is None:
            name = make_subject(self.config.subject, self.node, source)
            subject = self._subjects[source] = _Subject(name, source)
            self._publishers.append(
                asyncio.create_task(self._publish(subject), name=f"nats:publish:{name}")
            )
        return subject

    async def _cut_when_room(self, subject: _Subject) -> None:
        """Cut the subject's buffer into a message once its queue has room (the backpressure)."""
        while len(subject.pending) > QUEUED_MESSAGES:
            await self._room(subject)
        self._cut(subject)

    async def _room(self, subject: _Subject) -> None:
        """Until the subject's publisher has settled a message (or failed: raised here)."""
        subject.room.clear()
        await subject.room.wait()
        if self._failure is not None:
            raise self._failure

    def _cut(self, subject: _Subject) -> None:
        records, subject.buffer, subject.bytes = subject.buffer, [], 0
        if records:
            self._queue(subject, records)
        subject.work.set()

    def _queue(self, subject: _Subject, records: list[Record]) -> None:
        """Make ``records`` one message, or more if the payload would pass what the server
        takes (its max_payload: a size estimate can be wrong, non-ASCII lines say). A single
        record too large even alone is truncated to fit, flagged, and reported."""
        watermark = self._stored()
        payload = encode_message(self.node, subject.source, records, watermark)
        if len(payload) > self._max_payload:
            if len(records) > 1:
                half = len(records) // 2
                self._queue(subject, records[:half])
                self._queue(subject, records[half:])
                return
            record = records[0] = _copy(records[0])  # other sinks keep the whole line
            room = max(1024, self._max_payload - (len(payload) - len(record.line.encode())) - 64)
            log.warning("sinks.%s: a record of %d bytes does not fit in a NATS message; "
                        "truncated to %d", self.name, len(record.line.encode()),
                        room)  # fmt: skip
            while len(payload) > self._max_payload:
                record.line = record.line.encode()[:room].decode("utf-8", "ignore")
                record.truncated = True
                record.json_tail = None
                payload = encode_message(self.node, subject.source, records, watermark)
                room //= 2
        subject.count += 1
        fallback = f"{self.node}.{subject.source}.{self._run_id}.{subject.count}"
        subject.pending.append(
            Message(
                subject.subject,
                payload,
                message_id(self.node, subject.source, records, fallback),
                len(records),
                records[0].seq,
                records[-1].seq,
            )
        )

    async def _end_while_connected(self) -> None:
        """Every record is stored: end the subjects, if nats-server is there to take the
        markers. Nothing is lost without them (the central ends the lanes after
        ``idle_timeout``), so a stop does not wait for a server that is away."""
        if not self.link.up:
            return
        self._end_subjects()
        settled = asyncio.create_task(self._settled(), name=f"nats:end:{self.name}")
        away = asyncio.create_task(self.link.away.wait(), name=f"nats:away:{self.name}")
        try:
            await asyncio.wait([settled, away], return_when=asyncio.FIRST_COMPLETED)
        finally:
            away.cancel("the sink is stopping")
            settled.cancel("the sink is stopping")
            await asyncio.gather(settled, away, return_exceptions=True)
        if settled.done() and not settled.cancelled():
            settled.result()  # raises what a publisher could not retry

    def _say_what_is_left(self) -> None:
        """A stop that could not publish everything (nats-server away past the drain's
        deadline): how many records, and that the next start sends them (the checkpoints
        never passed them)."""
        left = self._unpublished()
        if left:
            log.error("sinks.%s: %d records were not published (nats-server %s); the next start "
                      "sends them", self.name, left,
                      "away" if not self.link.up else "did not acknowledge")  # fmt: skip

    def _end_subjects(self) -> None:
        """A clean stop: tell consumers that each subject's lane ends here, so that a
        central's merge need not wait idle_timeout for it."""
        for subject in self._subjects.values():
            payload = encode_message(self.node, subject.source, [], self._stored(), end=True)
            subject.count += 1
            msg_id = f"{self.node}.{subject.source}.{self._run_id}.end"
            seq = self._last_seq + 1
            subject.pending.append(Message(subject.subject, payload, msg_id, 0, seq, seq))
            subject.work.set()

    def _stored(self) -> int:
        """The watermark of what is stored now (see ``_stored_watermark``)."""
        delivered = self.delivered_seq
        marks = self._stored_marks
        while marks and marks[0][0] <= delivered:
            self._stored_watermark = marks.popleft()[1]
        return self._stored_watermark

    async def _settled(self) -> None:
        """Until every message cut has been acknowledged (the end of the stream)."""
        for subject in self._subjects.values():
            while subject.pending:
                await self._room(subject)

    async def _publish(self, subject: _Subject) -> None:
        """Publish the subject's messages in order, each until it is acknowledged. What it
        cannot retry (a bug) wakes the sink, which raises it: a publisher never dies alone."""
        try:
            await self._publish_in_order(subject)
        except Exception as error:
            self._failure = error
            subject.room.set()
            raise

    async def _publish_in_order(self, subject: _Subject) -> None:
        from nats.errors import Error as NatsError

        while True:
            while not subject.pending:
                subject.work.clear()
                await subject.work.wait()
            message = subject.pending[0]
            delay = FIRST_RETRY
            while True:
                await self.link.connected.wait()
                try:
                    ack = await self._js.publish(
                        message.subject,
                        message.payload,
                        timeout=self.config.publish_timeout,
                        headers={"Nats-Msg-Id": message.msg_id},
                    )
                    break
                except (NatsError, OSError, TimeoutError) as error:
                    self.retries += 1
                    if delay == FIRST_RETRY and self.link.up:  # once a streak, not per retry
                        log.warning("sinks.%s: publish to %s failed (%s); retrying until it is "
                                    "stored", self.name, message.subject,
                                    reason_of(error))  # fmt: skip
                    if type(error).__name__ == "NoStreamResponseError":
                        await self._recreate_stream(report=delay == FIRST_RETRY)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, LAST_RETRY)
            if delay > FIRST_RETRY:
                log.info("sinks.%s: published to %s again", self.name, message.subject)
            if ack.duplicate:
                self.duplicates += 1
            subject.pending.popleft()
            self.published += 1
            self.records_acked += message.count
            subject.room.set()

    async def _recreate_stream(self, report: bool) -> None:
        """The stream did not answer: deleted while running (make it again), or a cluster
        electing its leader (it answers again by itself)."""
        client = self.link.client
        if client is None:
            return
        try:
            await ensure_stream(client, self.config, STREAM_TIMEOUT)
        except Exception as error:  # reported once a streak, and tried again at the next failure
            if report:
                log.warning("sinks.%s: the stream %s does not answer (%s): a cluster electing "
                            "its leader, or the stream gone; retrying", self.name,
                            self.config.stream, reason_of(error))  # fmt: skip
