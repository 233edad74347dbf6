"""One lane of the ordering core (``aggregator.flow.ordering``): its queued batches, the keys
they rank by, and what leaves of them under a limit; and when a time is late at all. And the
two ways the core finds its limit: a look at every lane (``scan_limits``), and, for an open
source's live lanes, an index kept as the lanes change (``LaneIndex``).

A lane's records never reorder: each batch is queued with its *running keys* (the running
maximum of ``ts`` along the lane), so a record older than its predecessor keeps its place
right behind it. What leaves is a prefix of the queue, cut where the keys pass the limit the
core computed; ties with the limit go by source and lane rank. Pure, like the core.
"""

import math
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from itertools import compress

from aggregator.record.record import Batch, Record

Rank = tuple[int, int, int]
"""(key, source rank, lane order): what a record ranks by among all lanes."""
Limits = tuple[Rank, Rank]
"""The highest rank that may leave: for live records, and for catch-up records."""
TOP: Rank = (2**63, 2**63, 2**63)
BOTTOM: Rank = (-(2**63), -1, -1)

SECOND, MILLISECOND = 1_000_000, 1_000


def precision_of(ts: int) -> int:
    """How exact a time is, in µs, as far as its value tells: a whole second is taken to be
    known to the second (CLF, syslog, ISO 8601 without a fraction), a whole millisecond to
    the millisecond, anything else to the microsecond. A finer time that happens to fall on
    a whole second (one in a thousand of a millisecond clock's) is treated as coarse: at
    worst, it is not flagged late by less than a second."""
    if ts % SECOND == 0:
        return SECOND
    return MILLISECOND if ts % MILLISECOND == 0 else 1


def rank_below(a: Rank, b: Rank) -> bool:
    """``a < b``, field by field: compiled, no tuple is built or compared as an object (a
    look at every lane compares ranks for each live line)."""
    if a[0] != b[0]:
        return a[0] < b[0]
    if a[1] != b[1]:
        return a[1] < b[1]
    return a[2] < b[2]


def within_precision(key: int, high_water: int) -> bool:
    """Whether a record ranked ``key`` is not late beside ``high_water``, the newest time
    already sent: it is not older than that by its whole precision. A record stamped
    ``10:00:05`` may have happened at ``10:00:05.999``: after ``10:00:05.500`` was sent it
    is in its place, not late; after ``10:00:06`` it is late."""
    return key + precision_of(key) > high_water


@dataclass(eq=False, slots=True)
class Lane:
    source: int  # the source's rank: the order sources were added (config order)
    name: str  # the source's name
    origin: str
    order: int  # tie-break among lanes of one source: the order they were first seen
    live: bool
    last_read: float
    # (records, read at, live, running keys, position): keys[i + 1] is the key of records[i],
    # keys[0] the key before the batch, computed once when queued since it never changes;
    # position is the chunk's, handed back once the batch has left (see ``take``).
    queue: deque[tuple[Batch, float, bool, list[int], object | None]] = field(default_factory=deque)
    position: int = 0  # index of the head record in the first batch
    key: int = -(2**63)  # running maximum ts, up to the last record sent
    tail_key: int = -(2**63)  # running maximum ts, up to the last record queued
    ended: bool = False
    on_release: Callable[[int], None] | None = None  # the reader's credit comes back here
    bounded: bool = False  # a watermark came: even empty, the lane holds back only below it
    pushed: int = 0  # batches queued so far: a batch's number is its count then, less one
    popped: int = 0  # batches that have wholly left: those numbered below this
    catch_up: int = 0  # catch-up batches queued
    head_serial: int = 0  # the serial of this lane's one valid entry in ``LaneIndex.heads``

    def queue_batch(
        self, records: Batch, read_at: float, live: bool, keys: list[int], position: object | None
    ) -> int:
        """Queue a batch behind the others; its number."""
        self.queue.append((records, read_at, live, keys, position))
        self.pushed += 1
        if not live:
            self.catch_up += 1
        return self.pushed - 1

    def bound(self) -> Rank:
        """The rank of the lane's last queued record: anything it sends later ranks after it."""
        return (self.tail_key, self.source, self.order)

    def first_live(self) -> Rank | None:
        """The rank of the lane's first queued live record (None: none is queued): a catch-up
        record of another lane that ranks after it must not leave before it, or it would be
        late."""
        if not self.catch_up:  # every batch queued is live: the head is the first
            if not self.queue:
                return None
            return (self.queue[0][3][self.position + 1], self.source, self.order)
        start = self.position
        for _, _, live, keys, _ in self.queue:
            if live:
                return (keys[start + 1], self.source, self.order)
            start = 0
        return None

    def take(
        self,
        limits: Limits,
        high_water: int,
        drop_late: bool,
        completed: list[tuple[Record, object]],
    ) -> tuple[list[int], Batch, int, int]:
        """The records that rank within their limit (live or catch-up), their keys, how many
        left the queue and how many of those were late (flagged, or with ``drop_late``
        dropped). Each batch that
        wholly left and has a position adds (its last record, position) to ``completed``."""
        keys_out: list[int] = []
        records_out: Batch = []
        taken = late_count = 0
        while self.queue:
            batch, _, live, keys, position = self.queue[0]
            limit_key, limit_source, limit_order = limits[0] if live else limits[1]
            # On a key equal to the limit's, config order and lane age decide.
            ties_pass = self.source < limit_source or (
                self.source == limit_source and self.order <= limit_order
            )
            start = self.position
            last = keys[-1]
            if last < limit_key or (ties_pass and last == limit_key):
                cut = len(batch)  # all of it, as the search below would find (a live line's)
            else:
                cut = (bisect_right if ties_pass else bisect_left)(keys, limit_key, start + 1) - 1
                if cut <= start:
                    break
            if start == 0 and cut == len(batch):  # the whole batch: no copies
                part_keys, part = keys[1:], batch
            else:
                part_keys = keys[start + 1 : cut + 1]
                part = batch[start:cut]
            taken += cut - start
            self.key = part_keys[-1]
            if live and part_keys[0] < high_water:
                below = bisect_left(part_keys, high_water)  # candidates: keys under the mark
                late = [not within_precision(key, high_water) for key in part_keys[:below]]
                count = sum(late)
                if count:
                    late_count += count
                    if drop_late:
                        kept = [*(not flag for flag in late), *([True] * (len(part) - below))]
                        part_keys = list(compress(part_keys, kept))
                        part = list(compress(part, kept))
                    else:
                        for record, flag in zip(part, late, strict=False):
                            record.late = flag
            keys_out += part_keys
            records_out += part
            if cut < len(batch):
                self.position = cut
                break
            self.queue.popleft()
            self.popped += 1
            if not live:
                self.catch_up -= 1
            self.position = 0
            if position is not None:
                completed.append((batch[-1], position))
        if self.on_release is not None and taken:
            self.on_release(taken)
        return keys_out, records_out, taken, late_count


def blocks(lane: Lane, now: float, window: float, idle_timeout: float) -> bool:
    """Whether an empty lane may still send something older than what waits elsewhere."""
    if lane.ended or lane.queue:
        return False
    if not lane.live:
        return True  # still reading existing data: wait for it, however long
    return window > 0 and now < lane.last_read + idle_timeout


def scan_limits(
    lanes: Collection[Lane],
    now: float,
    window: float,
    idle_timeout: float,
    held_open: bool,
    early: float,
    high_water: int,
) -> Limits | None:
    """The highest rank that may leave now, for live records and for catch-up records (None
    when nothing may), from a look at every lane: ``held_open``, a source open to lanes not
    heard from yet holds every live record its window less ``early``; ``high_water``, the
    largest key sent so far (what ranks below it is late and leaves at once)."""
    limit = TOP
    exact = TOP  # catch-up records wait only for lanes still reading existing data
    for lane in lanes:
        if lane.ended:
            continue
        if lane.queue:
            bound = lane.bound()
            if not lane.live:
                if rank_below(bound, exact):
                    exact = bound
            elif (held := lane.first_live()) is not None and rank_below(held, exact):
                exact = held  # a live lane sends no more catch-up, but what
                # it holds is older than what ranks after it
            if lane.live and window == 0:
                continue  # arrival order: a live lane holds nobody back
        elif blocks(lane, now, window, idle_timeout):
            if not lane.live:
                return None  # an empty lane still reads existing data: wait for it
            bound = lane.bound() if lane.bounded else BOTTOM
        else:
            continue
        if rank_below(bound, limit):
            limit = bound
    if held_open and window > 0:
        limit = BOTTOM  # a lane not heard from yet may send something older
    # Live records that have waited the window go, and everything that ranks before them.
    # Existing data never expires: no window applies to it.
    for lane in lanes:
        expired_key = None
        for _, read_at, live, keys, _ in lane.queue:
            if not live or read_at + window - early > now:  # as in next_deadline
                break
            expired_key = keys[-1]
        if expired_key is not None:
            forced = (expired_key, lane.source, lane.order)
            if rank_below(limit, forced):
                limit = forced
    # Late records go at once: they are out of order whatever they wait for.
    late = (high_water - 1, TOP[1], TOP[2])
    if rank_below(limit, late):
        limit = late
    if rank_below(exact, limit):
        exact = limit
    bottom = exact[0] == BOTTOM[0] and exact[1] == BOTTOM[1] and exact[2] == BOTTOM[2]
    return None if bottom else (limit, exact)


def live_bound(lanes: Collection[Lane], now: float, idle_timeout: float) -> Rank:
    """``scan_limits``' lowest bound where every lane not ended is live and a window applies
    (no source open): the lowest rank a lane could still undercut, BOTTOM as soon as an empty
    lane that is not idle has no bound, TOP when no lane holds anything back. One pass,
    ranks compared field by field on the lanes themselves: no tuple built per lane (a live
    line over many files makes a look)."""
    lowest: Lane | None = None
    for lane in lanes:
        if lane.ended:
            continue
        if not lane.queue:
            if now >= lane.last_read + idle_timeout:
                continue  # idle: holds nobody back (``blocks``)
            if not lane.bounded:
                return BOTTOM
        if lowest is None or _lane_below(lane, lowest):
            lowest = lane
    return TOP if lowest is None else lowest.bound()


def _lane_below(a: Lane, b: Lane) -> bool:
    """``rank_below(a.bound(), b.bound())``, without building either."""
    if a.tail_key != b.tail_key:
        return a.tail_key < b.tail_key
    if a.source != b.source:
        return a.source < b.source
    return a.order < b.order


class LaneIndex:
    """What the core would otherwise find by a look at every lane, kept as lanes change: a heap
    of each queued lane's head rank (which lanes may release under a limit), and the live
    batches in the order they were read (which have waited their window; the oldest one held).
    A look then costs the lanes it releases, times log(lanes), not every lane. Entries go stale
    (a head that moved, a batch that left) and are skipped where they are found."""

    def __init__(self) -> None:
        self.heads: list[tuple[int, int, int, int, Lane]] = []
        self.serial = 0
        self.reads: deque[tuple[float, int, Lane, int]] = deque()
        """(read at, batch number, lane, the batch's last key) of each live batch queued."""
        self.in_order = True
        """Batches were queued in the order of their read times (a clock that went back: no)."""

    def head_changed(self, lane: Lane) -> None:
        """The lane's head moved (records left, or it was empty and got some)."""
        if not lane.queue:
            lane.head_serial = 0
            return
        self.serial += 1
        lane.head_serial = self.serial
        key = lane.queue[0][3][lane.position + 1]
        heappush(self.heads, (key, lane.source, lane.order, self.serial, lane))

    def queued(self, lane: Lane, number: int, read_at: float, live: bool, last_key: int) -> None:
        """A batch was queued (``Lane.queue_batch``)."""
        if len(lane.queue) == 1:
            self.head_changed(lane)
        if live:
            reads = self.reads
            while reads:  # the head read once a turn: each read of it unpacks the tuple
                head = reads[0]
                if head[1] >= head[2].popped:
                    break
                reads.popleft()  # left already: kept bounded when nobody asks for the oldest
            if reads and read_at < reads[-1][0]:
                self.in_order = False
            reads.append((read_at, number, lane, last_key))

    def ready(self, limit: Rank) -> list[Lane]:
        """The lanes whose head ranks at or before ``limit``, taken off the heap (give each
        back to ``head_changed`` once records left it)."""
        heads, out = self.heads, []
        key, source, order = limit
        while heads:
            head = heads[0]
            if head[0] > key or (head[0] == key and (head[1], head[2]) > (source, order)):
                break
            heappop(heads)
            lane = head[4]
            if head[3] == lane.head_serial:
                lane.head_serial = 0
                out.append(lane)
        return out

    def expired(self, now: float, window: float, early: float, limit: Rank) -> Rank:
        """``limit`` raised to the rank of every live batch that has waited ``window`` less
        ``early`` by ``now`` (they leave in this look, with all that ranks before them)."""
        reads = self.reads
        while reads:
            read_at, number, lane, last_key = reads[0]
            if number >= lane.popped:  # still queued
                if read_at + window - early > now:  # as in scan_limits
                    break
                forced = (last_key, lane.source, lane.order)
                if rank_below(limit, forced):
                    limit = forced
            reads.popleft()
        return limit

    def limits(
        self, now: float, window: float, early: float, high_water: int, bound: Rank = BOTTOM
    ) -> Limits:
        """``scan_limits`` with no catch-up lane or record: ``bound`` (the lanes' lowest, from
        ``live_bound``; BOTTOM while a source is open) raised to what has waited its window
        less ``early`` and to what is late beside ``high_water``."""
        limit = self.expired(now, window, early, bound)
        late = (high_water - 1, TOP[1], TOP[2])
        if rank_below(limit, late):
            limit = late
        return (limit, limit)

    def first_live_read(self) -> float:
        """When the oldest live batch still queued was read (inf: none is)."""
        reads = self.reads
        while reads:  # the head read once a turn (compiled, each read unpacks the tuple)
            head = reads[0]
            if head[1] >= head[2].popped:
                return head[0]
            reads.popleft()
        return math.inf

    def compact(self, lanes: Collection[Lane]) -> None:
        """Drop stale heads once they outnumber the lanes."""
        if len(self.heads) > 2 * len(lanes) + 64:
            self.heads = [h for h in self.heads if h[3] == h[4].head_serial]
            heapify(self.heads)
