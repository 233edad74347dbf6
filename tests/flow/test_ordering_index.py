"""The ordering core's lane index (``flow.lane.LaneIndex``) against a look at every lane: the
same records leave, in the same order, at the same calls, whatever the lanes do."""

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.flow.chunk import Announce, Chunk
from aggregator.flow.ordering import OrderingCore
from aggregator.record.record import Record

ORIGINS = ["a", "b", "c", "d", "e"]


@dataclass
class Push:
    source: str
    origin: str
    stamps: list[int]
    live: bool
    final: bool
    watermark: int | None


@dataclass
class Pop:
    pass


@dataclass
class Announced:
    source: str
    origins: list[str]
    live: bool


@dataclass
class End:
    source: str


sources = st.sampled_from(["0", "0", "0", "1"])  # mostly the open one (when it is)
pushes = st.builds(
    Push,
    sources,
    st.sampled_from(ORIGINS),
    st.lists(st.integers(0, 60), max_size=5),
    st.integers(0, 14).map(lambda n: n > 0),  # mostly live: where the index is used
    st.integers(0, 19).map(lambda n: n == 0),
    st.none() | st.none() | st.integers(0, 60),
)
operations = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.001, 0.01, 0.03, 0.1, 0.3]),  # seconds since the last one
        st.one_of(
            *[pushes] * 12,
            *[st.just(Pop())] * 5,
            st.builds(
                Announced,
                sources,
                st.lists(st.sampled_from(ORIGINS), max_size=2),
                st.integers(0, 3).map(lambda n: n > 0),
            ),
            st.builds(End, sources),
        ),
    ),
    min_size=10,
    max_size=100,
)


def run(indexed: bool, opened: bool, window: float, steps: list[tuple[float, object]]) -> list:
    """What leaves, per pop, with the state a caller sees."""
    core = OrderingCore(window, idle_timeout=0.5)
    core.indexed = indexed
    core.add_source("0")
    core.add_source("1")
    core.announce("0", Announce([], live=True, open=opened), 0.0)
    core.announce("1", Announce([], live=True), 0.0)
    now, seen, serial = 0.0, [], 0
    ended: set[str] = set()
    for step, (dt, op) in enumerate(steps):
        now += dt
        if isinstance(op, Push) and op.source not in ended:
            records = []
            for ts in op.stamps:
                serial += 1
                records.append(Record(ts, op.source, op.origin, f"r{serial}"))
            chunk = Chunk(op.origin, records, op.live, op.final, None, step, op.watermark)
            core.push(op.source, chunk, now)
        elif isinstance(op, Announced) and op.source not in ended:
            core.announce(op.source, Announce(op.origins, live=op.live), now)
        elif isinstance(op, End):
            core.end_source(op.source)
            ended.add(op.source)
        out = core.pop_ready(now) if isinstance(op, Pop) or step % 3 == 0 else []
        completed = sorted((record.line, position) for record, position in core.completed)
        core.completed.clear()
        seen.append(([(r.line, r.late) for r in out], core.held, core.next_deadline(now),
                     completed, dict(core.stats.late)))  # fmt: skip
    return seen


@settings(max_examples=400, deadline=None)
@given(operations, st.integers(0, 3).map(lambda n: n > 0), st.sampled_from([0.0, 0.05, 0.25]))
def test_the_index_releases_what_a_look_at_every_lane_does(
    steps: list[tuple[float, object]], opened: bool, window: float
) -> None:
    """Open or not, live and catch-up lanes, late records, watermarks, ends: the indexed core
    and the reference (every lane looked at) give the same output at every call."""
    assert run(True, opened, window, steps) == run(False, opened, window, steps)


def random_steps(seed: int, count: int) -> list[tuple[float, object]]:
    """Many lanes of the open source, live, with now and then a late record, a watermark, a
    lane that ends, a catch-up lane: mostly the case the index is for."""
    rng = random.Random(seed)
    steps: list[tuple[float, object]] = []
    origins = [f"n{i}" for i in range(rng.choice([3, 20, 100]))]
    ts = 0
    for _ in range(count):
        dt = rng.choice([0.0, 0.002, 0.01, 0.05])
        roll = rng.random()
        if roll < 0.3:
            op: object = Pop()
        elif roll < 0.31:
            op = Announced("1", [rng.choice(origins)], live=rng.random() < 0.5)
        elif roll < 0.312:
            op = End(rng.choice(["0", "1"]))
        else:
            ts += rng.randint(0, 3)
            stamps = sorted(max(0, ts - rng.choice([0, 0, 0, 0, 0, 1, 5, 40])) for _ in
                            range(rng.randint(0, 4)))  # fmt: skip
            source = "0" if rng.random() < 0.9 else "1"
            op = Push(source, rng.choice(origins), stamps, rng.random() < 0.97,
                      rng.random() < 0.02, ts if rng.random() < 0.1 else None)  # fmt: skip
        steps.append((dt, op))
    return steps


def test_the_index_agrees_with_every_lane_over_long_runs() -> None:
    """Long runs of many open lanes (what a central sees): the same output, call by call."""
    for seed in range(60):
        steps = random_steps(seed, 400)
        window = (0.05, 0.25)[seed % 2]
        assert run(True, True, window, steps) == run(False, True, window, steps), seed


def test_the_index_agrees_with_every_lane_when_no_source_is_open() -> None:
    """Long runs of many live lanes of sources that are not open (files followed: the lanes'
    lowest bound found by ``live_bound``, the rest by the index): the same output, call by
    call, as a look at every lane."""
    for seed in range(60):
        steps = random_steps(seed, 400)
        window = (0.05, 0.25)[seed % 2]
        assert run(True, False, window, steps) == run(False, False, window, steps), seed


def test_live_files_are_merged_through_the_index() -> None:
    """Eight live lanes of a source that is not open (``tail`` of eight files): a look uses
    the index, and a record leaves once every lane holds a later one."""
    core = OrderingCore(0.25, idle_timeout=10.0)
    core.add_source("files")
    origins = [f"f{lane}" for lane in range(8)]
    core.announce("files", Announce(origins, live=True), 0.0)
    for lane, origin in enumerate(origins):
        core.push("files", Chunk(origin, [Record(lane, "files", origin, "x")]), lane / 1000)
    assert core._indexed()
    assert [record.ts for record in core.pop_ready(0.01)] == [0]
    assert core.pop_ready(0.01) == []  # f0 is empty, not idle: it may send something older
    core.push("files", Chunk("f0", [Record(8, "files", "f0", "x")]), 0.011)
    assert [record.ts for record in core.pop_ready(0.011)] == [1]


def test_a_look_releases_only_from_the_lanes_whose_records_may_leave() -> None:
    """At 1,000 open lanes, a look takes from the lanes whose records have waited the window
    (the index's heap gives them), not from every lane."""
    core = OrderingCore(0.25, idle_timeout=10.0)
    core.add_source("bus")
    core.announce("bus", Announce([], live=True, open=True), 0.0)
    for lane in range(1000):
        core.push("bus", Chunk(f"n{lane}", [Record(lane, "bus", "o", "x")]), lane / 1000)
    assert core.pop_ready(0.3) != []  # the first ~60 have waited the window (less a tenth)
    ready = core._index.ready((10**9, 0, 0))  # every lane still holding records
    assert 900 < len(ready) < 1000 and core.held == len(ready)


def test_the_index_stays_small_when_records_leave_at_once() -> None:
    """A live lane whose records leave as they come (window 0, nothing held between calls):
    the index keeps no entry per batch that has left."""
    core = OrderingCore(0.0, idle_timeout=1.0)
    core.add_source("tcp")
    core.announce("tcp", Announce(["peer"], live=True), 0.0)
    for step in range(5000):
        core.push("tcp", Chunk("peer", [Record(step, "tcp", "peer", "x")]), step / 1000)
        assert len(core.pop_ready(step / 1000)) == 1
    assert len(core._index.reads) <= 2 and len(core._index.heads) <= 70
