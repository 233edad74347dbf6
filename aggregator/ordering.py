"""The ordering core: per-lane FIFOs in, one stream ordered by event time out. Pure: no I/O,
no clock of its own (the caller passes ``now``, monotonic seconds), so it is tested directly.

A lane is one origin of one source (a file, a connection). Its records never reorder. The core
merges lanes by each lane's *key*: the running maximum of ``ts`` along the lane, so a record
older than its predecessor keeps its place right behind it. Ties go to the lower source index
(config order), then to the lane seen first.

Catch-up lanes (existing data) are merged exactly, like ``sort -m -s``: a record leaves only
once every lane that could still send an older one has a record waiting or has ended. Live
records wait at most ``window`` seconds after they were read; a live lane silent for
``idle_timeout`` does not hold others back. A live record that comes after newer records were
sent is late: flagged (``late_policy="emit"``) or dropped (``"drop"``), counted either way.
"""

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aggregator.chunk import Announce, Chunk
from aggregator.record import Batch

LatePolicy = Literal["emit", "drop"]


@dataclass(eq=False, slots=True)
class _Lane:
    source: int
    origin: str
    order: int  # tie-break among lanes of one source: the order they were first seen
    live: bool
    last_read: float
    queue: deque[tuple[Batch, float, bool]] = field(default_factory=deque)  # records, read at, live
    position: int = 0  # index of the head record in the first batch
    key: int = -(2**63)  # running maximum ts, up to the last record sent
    ended: bool = False
    on_release: Callable[[int], None] | None = None  # the reader's credit comes back here

    def rank(self) -> tuple[int, int, int, "_Lane"]:
        """Where the lane's head stands in the merge: its key, then config order, then age."""
        head = self.queue[0][0][self.position]
        return (max(self.key, head.ts), self.source, self.order, self)


@dataclass(slots=True)
class OrderingStats:
    """Counters for /metrics: records sent late (and dropped late) per source index."""

    late: dict[int, int] = field(default_factory=dict)
    dropped_late: dict[int, int] = field(default_factory=dict)


class OrderingCore:
    """Merges the lanes of ``sources`` sources into one event-time ordered stream."""

    def __init__(
        self,
        sources: int,
        window: float,
        idle_timeout: float,
        late_policy: LatePolicy = "emit",
    ) -> None:
        self.window = window
        self.idle_timeout = idle_timeout
        self.late_policy = late_policy
        self.stats = OrderingStats()
        self._lanes: dict[tuple[int, str], _Lane] = {}
        self._unannounced = set(range(sources))
        self._high_water = -(2**63)  # the largest key sent so far
        self._held = 0
        self._seen = 0

    # --- input ------------------------------------------------------------------------------

    def announce(self, source: int, item: Announce, now: float) -> None:
        """Register the lanes ``source`` is about to read."""
        self._unannounced.discard(source)
        for origin in item.origins:
            self._lane(source, origin, item.live, now)

    def push(self, source: int, chunk: Chunk, now: float) -> None:
        """Queue ``chunk``'s records behind what its lane already holds."""
        self._unannounced.discard(source)
        lane = self._lane(source, chunk.origin, chunk.live, now)
        lane.last_read = now
        lane.live = lane.live or chunk.live
        if chunk.on_release is not None:
            lane.on_release = chunk.on_release
        if chunk.records:
            lane.queue.append((chunk.records, now, chunk.live))
            self._held += len(chunk.records)
        if chunk.final:
            lane.ended = True
            self._forget_if_done(lane)

    def end_source(self, source: int) -> None:
        """``source`` will send nothing more: its lanes end once drained."""
        self._unannounced.discard(source)
        for lane in [lane for lane in self._lanes.values() if lane.source == source]:
            lane.ended = True
            self._forget_if_done(lane)

    # --- output -----------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Records waiting in the core."""
        return self._held

    @property
    def finished(self) -> bool:
        """True when every source has ended and nothing is held."""
        return not self._lanes and not self._unannounced

    def pop_ready(self, now: float) -> Batch:
        """The records that may leave at ``now``, in order."""
        if self._unannounced or not self._held:
            return []
        heap = [lane.rank() for lane in self._lanes.values() if lane.queue]
        heapq.heapify(heap)
        blockers = self._blockers(now)
        out: Batch = []
        while heap:
            lane = heap[0][3]
            if blockers and not self._may_pass(blockers, lane, now):
                break
            # Release a run from this lane while it stays ahead of the next best lane.
            runner_up = min(heap[1:3]) if len(heap) > 1 else None
            self._release_run(lane, runner_up, out)
            if lane.queue:
                heapq.heapreplace(heap, lane.rank())
                continue
            heapq.heappop(heap)
            if lane.ended:
                self._forget_if_done(lane)
            elif self._blocks(lane, now):
                blockers.append(lane)
        return out

    def next_deadline(self, now: float) -> float | None:
        """When held records may leave at the latest without new input; None: only on input."""
        if self._unannounced or not self._held:
            return None
        blockers = self._blockers(now)
        if not blockers:
            return now
        if any(not lane.live for lane in blockers):
            return None  # exact catch-up: wait for that lane's data, however long
        idle_at = min(lane.last_read + self.idle_timeout for lane in blockers)
        return min(self._oldest_read() + self.window, idle_at)

    def merge_delay(self, now: float) -> float:
        """How long the oldest held record has waited, in seconds."""
        return now - self._oldest_read() if self._held else 0.0

    # --- inside -----------------------------------------------------------------------------

    def _lane(self, source: int, origin: str, live: bool, now: float) -> _Lane:
        lane = self._lanes.get((source, origin))
        if lane is None:
            self._seen += 1
            lane = _Lane(source, origin, self._seen, live, last_read=now)
            self._lanes[(source, origin)] = lane
        return lane

    def _forget_if_done(self, lane: _Lane) -> None:
        if lane.ended and not lane.queue:
            self._lanes.pop((lane.source, lane.origin), None)

    def _blocks(self, lane: _Lane, now: float) -> bool:
        """Whether an empty lane may still send something older than what waits elsewhere."""
        if lane.ended or lane.queue:
            return False
        if not lane.live:
            return True  # still reading existing data: wait for it, however long
        return self.window > 0 and now < lane.last_read + self.idle_timeout

    def _blockers(self, now: float) -> list[_Lane]:
        return [lane for lane in self._lanes.values() if self._blocks(lane, now)]

    def _may_pass(self, blockers: list[_Lane], lane: _Lane, now: float) -> bool:
        """Whether the lane's head may leave although ``blockers`` have nothing waiting.

        Never ahead of a lane still catching up. Otherwise once the oldest record waiting
        anywhere has waited the window: it may rank behind this head, and it must not wait
        longer. A record that is late already (older than what was sent) goes at once.
        """
        if lane.rank()[0] < self._high_water:
            return True
        if any(not blocker.live for blocker in blockers):
            return False
        # The same sum as in next_deadline, so that waking at the deadline releases.
        return now >= self._oldest_read() + self.window

    def _oldest_read(self) -> float:
        return min(lane.queue[0][1] for lane in self._lanes.values() if lane.queue)

    def _release_run(
        self, lane: _Lane, runner_up: tuple[int, int, int, _Lane] | None, out: Batch
    ) -> None:
        """Send the lane's head records while they rank before ``runner_up``'s head."""
        limit = runner_up[0] if runner_up is not None else None
        # On a key equal to the runner-up's, config order and lane age decide.
        ties_pass = runner_up is None or (lane.source, lane.order) < runner_up[1:3]
        append = out.append
        key = lane.key
        while lane.queue:
            batch, _, live = lane.queue[0]
            position = start = lane.position
            size = len(batch)
            while position < size:
                record = batch[position]
                record_key = record.ts if record.ts > key else key
                if limit is not None and (
                    record_key > limit or (record_key == limit and not ties_pass)
                ):
                    break
                key = record_key
                position += 1
                if key < self._high_water and live:
                    self._count_late(lane.source)
                    if self.late_policy == "drop":
                        continue
                    record.late = True
                elif key > self._high_water:
                    self._high_water = key
                append(record)
            self._held -= position - start
            if lane.on_release is not None:
                lane.on_release(position - start)
            lane.key = key
            if position < size:
                lane.position = position
                return
            lane.queue.popleft()
            lane.position = 0

    def _count_late(self, source: int) -> None:
        counts = self.stats.late
        counts[source] = counts.get(source, 0) + 1
        if self.late_policy == "drop":
            drops = self.stats.dropped_late
            drops[source] = drops.get(source, 0) + 1
