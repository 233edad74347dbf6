"""The ordering core: per-lane FIFOs in, one stream ordered by event time out. Pure: no I/O,
no clock of its own (the caller passes ``now``, monotonic seconds), so it is tested directly.

A lane is one origin of one source (a file, a connection). Its records never reorder. The core
merges lanes by each lane's *key*: the running maximum of ``ts`` along the lane, so a record
older than its predecessor keeps its place right behind it. Sources are known by name; ties go
to the source added first (config order), then to the lane seen first.

Catch-up lanes (existing data) are merged exactly, like ``sort -m -s``: a catch-up record
leaves once every lane still reading existing data has a record waiting or has ended; a lane
that has read through its existing data (gone live) does not hold catch-up records back, so
what files hold at start is written at once. Live records wait at most ``window`` seconds
after they were read; a live lane silent for ``idle_timeout`` does not hold others back. A
source *open* to lanes not heard from yet (remote peers: ``Announce.open``) holds every live
record back for the window, since an unknown lane could still send an older one. A live record
that comes after newer records were sent is late: flagged (``late_policy="emit"``) or dropped
(``"drop"``), counted either way; but a time is only as exact as its precision
(``flow.lane.within_precision``): a record stamped to the second is not late beside millisecond
records of the same second. A lane's own state, and what leaves of it, is ``flow.lane.Lane``.
"""

import math
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter
from typing import Literal

from aggregator.flow.chunk import Announce, Chunk
from aggregator.flow.lane import BOTTOM, Lane, LaneIndex, Limits, blocks, live_bound, scan_limits
from aggregator.record.record import Batch, Record

LatePolicy = Literal["emit", "drop"]

PRUNE_INTERVAL = 1.0
"""Seconds between looks for live lanes gone quiet (a UDP peer, a closed-over file)."""

_LANE_RANK = itemgetter(0, 1)  # a run's (source, lane order)
SMALL_RUNS, SMALL_MERGE = 16, 64
"""At most this many runs of at most this many records in all are merged by ``merge_small``
(a live step), more by sorting (its cost grows with runs times records)."""


@dataclass(slots=True)
class OrderingStats:
    """Counters for /metrics: records sent late (and dropped late) per source name."""

    late: dict[str, int] = field(default_factory=dict)
    dropped_late: dict[str, int] = field(default_factory=dict)


class OrderingCore:
    """Merges the lanes of the sources it is given (``add_source``) into one event-time ordered
    stream."""

    def __init__(
        self,
        window: float,
        idle_timeout: float,
        late_policy: LatePolicy = "emit",
    ) -> None:
        self.window = window
        self.idle_timeout = idle_timeout
        self.late_policy = late_policy
        self.stats = OrderingStats()
        self._lanes: dict[tuple[str, str], Lane] = {}
        self._ranks: dict[str, int] = {}
        self._next_rank = 0
        self._unannounced: set[str] = set()
        self._open: set[str] = set()  # sources whose unknown lanes may still speak
        # While a source is open, live records leave only once they have waited the window (or
        # are late): until ``_hold_until`` nothing may, and no lane need be looked at, unless
        # something else changed (``_changed``: catch-up, a lane's end, a late record).
        self._hold_until = math.inf
        self._changed = True
        self._early = 0.0
        """While a source is open, when the oldest record has waited its window, those that
        would have within this much more (a tenth of it) leave with it: one look at every lane
        releases a group, and the next look is at least this much later."""
        self._high_water = -(2**63)  # the largest key sent so far
        self._held = 0
        self._seen = 0
        self._pruned_at = -math.inf
        self._index = LaneIndex()
        self._catching_up: set[Lane] = set()  # lanes still reading existing data (not ended)
        self._catch_up_batches = 0  # catch-up batches queued, in all lanes
        self.indexed = True
        """Whether looks may use the index instead of every lane (False: the reference)."""
        self.completed: list[tuple[Record, object]] = []
        """(last record, position) of each chunk with a position that has wholly left, in the
        order released; the caller takes them (and clears the list)."""

    # --- input ------------------------------------------------------------------------------

    def add_source(self, source: str) -> None:
        """Merge ``source`` too. Nothing leaves until it has announced what it reads; on a tie
        in time, sources added earlier go first (one added by a reload: after all others)."""
        self._ranks[source] = self._next_rank
        self._next_rank += 1
        self._unannounced.add(source)

    def remove_source(self, source: str) -> bool:
        """Forget ``source`` once it has ended and its lanes are drained (a reload removed or
        replaced it; a replacement is added again under its name); False while it holds
        records or lanes."""
        if any(lane.name == source for lane in self._lanes.values()):
            return False
        self._ranks.pop(source, None)
        self._unannounced.discard(source)
        return True

    def announce(self, source: str, item: Announce, now: float) -> None:
        """Register the lanes ``source`` is about to read."""
        self._unannounced.discard(source)
        self._changed = True
        if item.open:
            self._open.add(source)
            self._early = self.window / 10
        for origin in item.origins:
            self._lane(source, origin, item.live and origin not in item.resumed, now)
        for origin in item.resumed:
            self._lane(source, origin, False, now)

    def push(self, source: str, chunk: Chunk, now: float) -> None:
        """Queue ``chunk``'s records behind what its lane already holds."""
        # The chunk's fields read once: a ``Chunk`` is not compiled, each read is a lookup.
        records, live, final, watermark = chunk.records, chunk.live, chunk.final, chunk.watermark
        self._unannounced.discard(source)
        if watermark is not None and not records and not final:
            # A watermark alone: it raises the lane's bound but is not a sign of life (an idle
            # lane still stops holding back after idle_timeout).
            known = self._lanes.get((source, chunk.origin))
            if known is not None:
                known.tail_key = max(known.tail_key, watermark)
                known.bounded = True
            return
        lane = self._lane(source, chunk.origin, live, now)
        lane.last_read = now
        if not (lane.live and live) or final or not records:
            self._changed = True  # catch-up, a lane going live or ending
        if live and not lane.live:
            lane.live = True
            self._catching_up.discard(lane)
        on_release = chunk.on_release
        if on_release is not None:
            lane.on_release = on_release
        if records:
            stamps = [record.ts for record in records]
            if stamps[0] >= lane.tail_key and sorted(stamps) == stamps:
                keys = [lane.tail_key, *stamps]  # already in order, the common case: 10x faster
            else:
                keys = list(accumulate(stamps, max, initial=lane.tail_key))
            lane.tail_key = keys[-1]
            number = lane.queue_batch(records, now, live, keys, chunk.position)
            self._index.queued(lane, number, now, live, keys[-1])
            if not live:
                self._catch_up_batches += 1
            self._held += len(records)
            if keys[1] < self._high_water:
                self._changed = True  # late: it leaves at once
            elif now + self.window < self._hold_until:
                self._hold_until = now + self.window
        if watermark is not None:
            lane.tail_key = max(lane.tail_key, watermark)
            lane.bounded = True
        if final:
            lane.ended = True
            self._catching_up.discard(lane)
            self._forget_if_done(lane)

    def end_source(self, source: str) -> None:
        """``source`` will send nothing more: its lanes end once drained."""
        self._unannounced.discard(source)
        self._open.discard(source)
        self._changed = True
        if not self._open:
            self._early = 0.0
        for lane in [lane for lane in self._lanes.values() if lane.name == source]:
            lane.ended = True
            self._catching_up.discard(lane)
            self._forget_if_done(lane)

    # --- output -----------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Records waiting in the core."""
        return self._held

    def pop_ready(self, now: float) -> Batch:
        """The records that may leave at ``now``, in order.

        Everything that ranks at or before the *limit* leaves: the lowest rank a lane could
        still undercut (its last queued record's rank; nothing at all while an empty lane may
        still send older records), raised to what has waited the window and to what is late
        already. Catch-up records have a limit of their own, which empty live lanes do not
        lower: what they send later is live data. Each lane's part is a sorted run; one sort
        merges the runs.
        """
        out = self._pop_once(now)
        # A live record that left may have been all that held a catch-up record back (it
        # ranks after it): look once more while catch-up records wait. What a second look
        # releases ranks after what the first did.
        while out and self._held and self._catch_up_queued():
            more = self._pop_once(now)
            if not more:
                break
            out += more
        return out

    def _catch_up_queued(self) -> bool:
        """Whether a lane holds catch-up records (a lane's come before its live ones)."""
        return self._catch_up_batches > 0 and any(
            lane.queue and not lane.queue[0][2] for lane in self._lanes.values()
        )

    def _pop_once(self, now: float) -> Batch:
        if self._unannounced or not self._held or self._holding(now):
            return []
        indexed = self._indexed()
        limits = self._indexed_limits(now) if indexed else self._limits(now)
        self._changed = False
        if limits is None:
            self._changed = True
            return []
        runs = []
        high_water = self._high_water  # what was sent before: the measure of late for all
        live_key, exact_key = limits[0][0], limits[1][0]
        if indexed:
            candidates = self._index.ready(limits[0])
        else:
            candidates = []
            for lane in self._lanes.values():
                if lane.queue:
                    _, _, live, keys, _ = lane.queue[0]
                    if keys[lane.position + 1] <= (live_key if live else exact_key):
                        candidates.append(lane)  # else nothing behind its head may leave
        index = self._index
        for lane in candidates:
            catch_up = lane.catch_up
            keys, records, taken, late = lane.take(
                limits, high_water, self.late_policy == "drop", self.completed
            )
            if taken or indexed:
                index.head_changed(lane)
            self._catch_up_batches -= catch_up - lane.catch_up
            self._held -= taken
            if late:
                self._count_late(lane.name, late)
            if records:
                runs.append((lane.source, lane.order, keys, records))
                self._high_water = max(self._high_water, lane.key)
            if lane.ended and not lane.queue:
                self._forget_if_done(lane)
        index.compact(self._lanes.values())
        if not runs:
            return []
        if len(runs) == 1:
            out = runs[0][3]
        elif len(runs) <= SMALL_RUNS and self._held_out(runs) <= SMALL_MERGE:
            out = merge_small(runs)
        else:
            # Runs in rank order, then one stable sort by key alone: equal keys keep that
            # order (config order, then lane age), and no tuple is built per record.
            runs.sort(key=_LANE_RANK)
            all_keys: list[int] = []
            all_records: Batch = []
            for _, _, keys, records in runs:
                all_keys += keys
                all_records += records
            order = sorted(range(len(all_keys)), key=all_keys.__getitem__)
            out = list(map(all_records.__getitem__, order))
        self._prune(now)
        self._note_hold()
        return out

    @staticmethod
    def _held_out(runs: list[tuple[int, int, list[int], Batch]]) -> int:
        """Records in ``runs``."""
        total = 0
        for run in runs:
            total += len(run[3])
        return total

    def _holding(self, now: float) -> bool:
        """Whether nothing may leave at ``now`` without looking at the lanes: a source is
        open, no record has waited the window yet, and nothing else changed since the last
        look (a catch-up lane or a late record would have)."""
        return bool(self._open) and self.window > 0 and not self._changed and now < self._hold_until

    def _note_hold(self) -> None:
        """After a look (at every lane, or through the index): until when an open source
        holds everything back."""
        if not self._open or self.window <= 0:
            return
        if self._catching_up:
            self._changed = True  # a catch-up lane: every change may release records
            return
        self._hold_until = self._first_live_read() + self.window

    def _first_live_read(self) -> float:
        """When the oldest live record held was read (inf: none is held)."""
        if self.indexed and self._index.in_order:
            return self._index.first_live_read()
        return min(
            (
                next((read_at for _, read_at, live, _, _ in lane.queue if live), math.inf)
                for lane in self._lanes.values()
                if lane.queue
            ),
            default=math.inf,
        )

    def _prune(self, now: float) -> None:
        """Forget live lanes that are empty and idle: their state no longer matters (a lane
        seen again starts afresh), and peers that come and go must not grow the table."""
        if now < self._pruned_at + PRUNE_INTERVAL:
            return
        self._pruned_at = now
        quiet = [
            key
            for key, lane in self._lanes.items()
            if lane.live and not lane.queue and now >= lane.last_read + self.idle_timeout
        ]
        for key in quiet:
            del self._lanes[key]

    def next_deadline(self, now: float) -> float | None:
        """When held records may leave without new input (call it after ``pop_ready``): the
        oldest one's window, or a quiet lane going idle. None: only input can release them."""
        if self._unannounced or not self._held:
            return None
        if self._open and self.window > 0 and not self._changed:
            # An open source holds every live record its window, whatever the lanes do.
            return None if self._hold_until == math.inf else self._hold_until
        # One pass over the lanes: the soonest an empty lane that holds others back goes idle.
        window, idle = self.window, self.idle_timeout
        idle_at, blocked = math.inf, False
        for lane in self._lanes.values():
            if blocks(lane, now, window, idle):
                if not lane.live:
                    return None  # exact catch-up: wait for that lane's data, however long
                blocked = True
                idle_at = min(idle_at, lane.last_read + idle)
        deadline = self._first_live_read() + window  # catch-up records never expire
        if deadline == math.inf and not blocked:
            return None
        return min(deadline, idle_at)

    def merge_delay(self, now: float) -> float:
        """How long the oldest held record has waited, in seconds."""
        return now - self._oldest_read() if self._held else 0.0

    # --- inside -----------------------------------------------------------------------------

    def _lane(self, source: str, origin: str, live: bool, now: float) -> Lane:
        lane = self._lanes.get((source, origin))
        if lane is None:
            self._seen += 1
            lane = Lane(self._ranks[source], source, origin, self._seen, live, last_read=now)
            self._lanes[(source, origin)] = lane
            if not live:
                self._catching_up.add(lane)
        return lane

    def _forget_if_done(self, lane: Lane) -> None:
        if lane.ended and not lane.queue:
            self._lanes.pop((lane.name, lane.origin), None)

    def _oldest_read(self) -> float:
        return min(lane.queue[0][1] for lane in self._lanes.values() if lane.queue)

    @property
    def catching_up(self) -> bool:
        """Whether a lane still reads existing data or holds records of it (an exact merge)."""
        return bool(self._catching_up) or self._catch_up_batches > 0

    def _indexed(self) -> bool:
        """Whether a look may use the index: every lane is live (no lane has catch-up records
        or still reads existing data: their exact merge needs every lane) and a window applies.
        Then an open source holds every live record back (no lane's bound matters, only what
        has waited and what is late); else the lowest bound of the lanes that may still send
        is found by a quick pass (``live_bound``), not by ``scan_limits``' full look."""
        return (
            self.indexed
            and self.window > 0
            and not self._catching_up
            and not self._catch_up_batches
            and self._index.in_order
        )

    def _indexed_limits(self, now: float) -> Limits:
        """``_limits`` where ``_indexed``: the same limit, from the index (what has waited,
        what is late) and, with no source open, the lanes' lowest bound."""
        # While a source is open, a lane not heard from yet may send something older.
        lanes = self._lanes.values()
        bound = BOTTOM if self._open else live_bound(lanes, now, self.idle_timeout)
        return self._index.limits(now, self.window, self._early, self._high_water, bound)

    def _limits(self, now: float) -> Limits | None:
        """The highest rank that may leave now, for live records and for catch-up records;
        None when nothing may (``flow.lane.scan_limits``: a look at every lane)."""
        return scan_limits(
            self._lanes.values(), now, self.window, self.idle_timeout,
            bool(self._open), self._early, self._high_water,
        )  # fmt: skip

    def _count_late(self, source: str, count: int) -> None:
        counts = self.stats.late
        counts[source] = counts.get(source, 0) + count
        if self.late_policy == "drop":
            drops = self.stats.dropped_late
            drops[source] = drops.get(source, 0) + count


def merge_small(runs: list[tuple[int, int, list[int], Batch]]) -> Batch:
    """What ``_pop_once``'s sort gives for a few runs of a few records (a live step over
    several files): every record ranked by (key, source rank, lane order), a record of the
    same lane and key after the one before it. Each record is inserted from the end, ints
    compared in parallel lists: no key function called, no tuple built per record (a sort
    with a key function of a few records cost more than the rest of a live release)."""
    keys_out: list[int] = []
    sources: list[int] = []
    orders: list[int] = []
    out: Batch = []
    for source, order, keys, records in runs:
        for index in range(len(records)):
            key = keys[index]
            at = len(out)
            while at > 0:
                before = keys_out[at - 1]
                if before < key:
                    break
                if before == key:
                    before_source = sources[at - 1]
                    if before_source < source or (
                        before_source == source and orders[at - 1] <= order
                    ):
                        break  # ties: config order, then lane age, then the lane's own order
                at -= 1
            keys_out.insert(at, key)
            sources.insert(at, source)
            orders.insert(at, order)
            out.insert(at, records[index])
    return out


def number_records(records: Batch, last: int) -> int:
    """Give ``records`` their ``seq``, in the order they leave, after ``last``; the last seq
    given. Here, compiled, rather than in the merge's loop: it touches every record."""
    for record in records:
        last += 1
        record.seq = last
    return last
