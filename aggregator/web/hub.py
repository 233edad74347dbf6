"""The fan-out: each merged batch goes to every subscriber, filtered and encoded once per group.

Subscribers with the same filter and format form a group, so a thousand browsers on the same
view cost one filter pass and one encoding per batch, plus a queue append each. The replay ring
keeps the last records for new subscribers (``replay=N``) and for those that resume
(``since=SEQ``, or after a pause); what the ring no longer holds is reported as a gap.
"""

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aggregator.lazyjson import dumps
from aggregator.record.filters import RecordFilter
from aggregator.record.formats import encode_json, text_encoder
from aggregator.record.record import Batch, Record
from aggregator.web.subscription import ClientFilter, Format

if TYPE_CHECKING:  # subscribers come with websockets, loaded with the first client (server.py)
    from aggregator.web.subscriber import Subscriber

FRAME_RECORDS = 1000
"""Most records in one frame as encoded (a slow reader may get waiting frames joined)."""
RECORD_OVERHEAD = 200
"""Bytes a record costs in the replay ring besides its line and JSON tail (the object)."""


def control_frame(message: dict[str, object]) -> bytes:
    """A hello, notice, error or rates frame: one JSON object.

    Copied to a bytes object of its own size: orjson's result keeps the 4 KiB it was written
    into, and an outbox of small frames counted by their length would hold 100 times more."""
    return memoryview(dumps(message)).tobytes()


def record_bytes(record: Record) -> int:
    """What a record holds in memory, about: its line, its tail, the object."""
    tail = record.json_tail
    fields = 0 if tail is not None or record.fields is None else 64 * len(record.fields)
    return len(record.line) + (len(tail) if tail is not None else fields) + RECORD_OVERHEAD


GroupKey = tuple[ClientFilter, Format]


class Group:
    """Subscribers that share a filter and a format. (A plain class: a dataclass's generated
    methods cost every start more.)"""

    __slots__ = ("encode", "members", "record_filter")

    def __init__(
        self, record_filter: RecordFilter | None, encode: Callable[[Sequence[Record]], bytes]
    ) -> None:
        self.record_filter = record_filter
        self.encode = encode
        self.members: set[Subscriber] = set()

    def passing(self, records: Sequence[Record]) -> Sequence[Record]:
        """The records this group's filter lets through."""
        return records if self.record_filter is None else self.record_filter.apply(records)

    def frames(self, records: Sequence[Record]) -> list[tuple[bytes, int, int]]:
        """(frame, record count, last seq) for ``records``, at most FRAME_RECORDS each."""
        frames = []
        for start in range(0, len(records), FRAME_RECORDS):
            part = records[start : start + FRAME_RECORDS]
            # Encoders end every record with a newline; a frame separates them.
            frames.append((self.encode(part)[:-1], len(part), part[-1].seq))
        return frames


class Hub:
    """Subscribers, their groups and the replay ring of one WebSocket sink."""

    def __init__(
        self,
        run_id: str,
        replay_size: int,
        source_names: Sequence[str],
        replay_bytes: int = 64 << 20,
    ) -> None:
        """The ring keeps the last ``replay_size`` records, and no more than ``replay_bytes``
        of them (``record_bytes``): a thousand records of 1 MiB are not kept."""
        self.run_id = run_id
        self.last_seq = 0
        self.subscribers: set[Subscriber] = set()
        self._ring: deque[Record] = deque()
        self._ring_sizes: deque[int] = deque()
        self._ring_bytes = 0
        self._replay_size = replay_size
        self._replay_bytes = replay_bytes
        self._groups: dict[GroupKey, Group] = {}
        self._source_names = list(source_names)
        self._dropped_by_departed = 0

    @property
    def groups(self) -> int:
        """Distinct (filter, format) pairs: each costs one filter pass and encoding per batch."""
        return len(self._groups)

    @property
    def dropped_total(self) -> int:
        """Records not sent to slow subscribers, those gone included."""
        current = sum(subscriber.dropped_total for subscriber in self.subscribers)
        return self._dropped_by_departed + current

    def publish(self, batch: Batch) -> None:
        """Keep ``batch`` in the ring and offer it to every subscriber that is not paused."""
        if not batch:
            return
        self._keep(batch)
        self.last_seq = batch[-1].seq
        if not self._groups:
            return
        from aggregator.web.subscriber import write_now  # loaded with the first subscriber

        for group in self._groups.values():
            listening = [member for member in group.members if not member.paused]
            if not listening:
                continue
            for frame, count, last_seq in group.frames(group.passing(batch)):
                # Subscribers that keep up are written at once, all in one call; the others
                # get the frame queued (or dropped) by their own writer.
                direct = []
                for member in listening:
                    if member.writable_now():
                        direct.append(member)
                    else:
                        member.offer(frame, count, last_seq)
                if direct:
                    write_now(direct, frame)
            for member in listening:
                member.last_seq = self.last_seq

    def _keep(self, batch: Batch) -> None:
        """Add ``batch`` to the ring; the oldest records go past its records or bytes."""
        if self._replay_size <= 0:
            return
        ring, sizes = self._ring, self._ring_sizes
        for record in batch[-self._replay_size :]:
            size = record_bytes(record)
            ring.append(record)
            sizes.append(size)
            self._ring_bytes += size
        while ring and (len(ring) > self._replay_size or self._ring_bytes > self._replay_bytes):
            ring.popleft()
            self._ring_bytes -= sizes.popleft()

    def broadcast_control(self, message: dict[str, object]) -> None:
        """Queue one control frame (a rates frame) for every subscriber, paused ones too;
        it is encoded once."""
        if not self.subscribers:
            return
        frame = control_frame(message)
        for subscriber in self.subscribers:
            subscriber.send_control_frame(frame)

    def join(
        self, subscriber: "Subscriber", replay: int, since: int | None, paused: bool = False
    ) -> None:
        """Add ``subscriber``, first queueing its replay or its resume from ``since``; one
        that joins ``paused`` gets that when it resumes."""
        self.subscribers.add(subscriber)
        if paused:
            subscriber.paused = True
            subscriber.last_seq = self.last_seq if since is None else min(since, self.last_seq)
        elif since is not None:
            self._catch_up(subscriber, since)
        else:
            self._replay(subscriber, replay)
        self._group_of(subscriber).members.add(subscriber)

    def leave(self, subscriber: "Subscriber") -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)
            self._dropped_by_departed += subscriber.dropped_total
        self._ungroup(subscriber)

    def _ungroup(self, subscriber: "Subscriber") -> None:
        key = (subscriber.filter, subscriber.format)
        group = self._groups.get(key)
        if group is not None:
            group.members.discard(subscriber)
            if not group.members:
                del self._groups[key]

    def change_filter(self, subscriber: "Subscriber", new: ClientFilter, replay: int) -> None:
        """Switch ``subscriber`` to ``new``; with ``replay``, queue the last records it passes."""
        self._ungroup(subscriber)
        subscriber.filter = new
        self.join(subscriber, replay, since=None)

    def set_paused(self, subscriber: "Subscriber", paused: bool) -> None:
        """Pause (nothing is queued) or resume (what was missed comes from the ring first)."""
        if paused == subscriber.paused:
            return
        subscriber.paused = paused
        if not paused:
            self._catch_up(subscriber, subscriber.last_seq)

    def _replay(self, subscriber: "Subscriber", count: int) -> None:
        subscriber.last_seq = self.last_seq
        if count <= 0:
            return
        group = self._group_of(subscriber)
        self._queue(subscriber, group.passing(list(self._ring))[-count:])

    def _catch_up(self, subscriber: "Subscriber", since: int) -> None:
        """Queue what came after ``since``; a gap notice for what the ring no longer has."""
        since = min(since, self.last_seq)
        oldest = self._ring[0].seq if self._ring else self.last_seq + 1
        if oldest > since + 1:
            subscriber.send_control({"notice": "gap", "count": oldest - since - 1})
        missed = [record for record in self._ring if record.seq > since]
        self._queue(subscriber, self._group_of(subscriber).passing(missed))

    def _queue(self, subscriber: "Subscriber", records: Sequence[Record]) -> None:
        """Queue ``records`` (already filtered) for ``subscriber``, up to the newest seq."""
        group = self._group_of(subscriber)
        for frame, count, last_seq in group.frames(records):
            subscriber.offer(frame, count, last_seq)
        subscriber.last_seq = self.last_seq

    def _group_of(self, subscriber: "Subscriber") -> Group:
        key = (subscriber.filter, subscriber.format)
        group = self._groups.get(key)
        if group is None:
            encode = (
                encode_json if subscriber.format == "json" else text_encoder(self._source_names)
            )
            group = self._groups[key] = Group(subscriber.filter.compile(), encode)
        return group
