"""The ordering core: exact merge of existing data, bounded wait for live data, late records."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.flow.chunk import Announce, Chunk
from aggregator.flow.ordering import SMALL_MERGE, OrderingCore, merge_small
from aggregator.record.record import Record


def recs(source: str, *stamps: int, origin: str = "") -> list[Record]:
    return [Record(ts, source, origin or source, f"{source}{i}") for i, ts in enumerate(stamps)]


def lines(batch: list[Record]) -> list[str]:
    return [record.line for record in batch]


def make_core(sources: int, **settings: object) -> OrderingCore:
    """A core merging the sources "0", "1", … in that order."""
    core = OrderingCore(**settings)  # type: ignore[arg-type]
    for index in range(sources):
        core.add_source(str(index))
    return core


def exact_core(sources: int) -> OrderingCore:
    return make_core(sources, window=0.25, idle_timeout=1.0)


def live_core(window: float = 0.25) -> OrderingCore:
    """A core whose two sources have each announced one live lane, "a" and "b", at 0.0."""
    core = make_core(2, window=window, idle_timeout=1.0)
    core.announce("0", Announce(["a"], live=True), 0.0)
    core.announce("1", Announce(["b"], live=True), 0.0)
    return core


def test_catch_up_is_an_exact_stable_merge() -> None:
    """Existing data merges by ts; ties go to the source first in the config."""
    core = exact_core(2)
    core.announce("0", Announce(["a"], live=False), 0.0)
    core.announce("1", Announce(["b"], live=False), 0.0)
    core.push("0", Chunk("a", recs("a", 1, 3, 5), live=False), 0.0)
    assert core.pop_ready(0.0) == []  # b may still hold something older
    core.push("1", Chunk("b", recs("b", 1, 2, 6), live=False, final=True), 0.0)
    out = core.pop_ready(0.0)
    assert lines(out) == ["a0", "b0", "b1", "a1", "a2"]  # a's 5 < b's 6; then a may send more
    core.push("0", Chunk("a", [], live=False, final=True), 99.0)
    assert lines(core.pop_ready(99.0)) == ["b2"]
    assert core.held == 0 and not any(r.late for r in out)


@pytest.mark.parametrize("live", [False, True], ids=["catch-up", "live"])
def test_ties_go_by_config_order_when_the_later_source_comes_first(live: bool) -> None:
    """On equal ts the source first in the config leaves first, even when the later source
    announced its lane, and sent its record, before the earlier one did (SPEC §5)."""
    core = make_core(2, window=5.0, idle_timeout=1.0)
    core.announce("1", Announce(["b"], live=live), 0.0)
    core.push("1", Chunk("b", recs("b", 7), live=live), 0.0)
    core.announce("0", Announce(["a"], live=live), 0.1)
    core.push("0", Chunk("a", recs("a", 7), live=live), 0.2)
    core.end_source("0")
    core.end_source("1")
    assert lines(core.pop_ready(0.3)) == ["a0", "b0"]


def test_nothing_leaves_before_every_source_announced() -> None:
    """A source that has not said what it reads holds the merge."""
    core = exact_core(2)
    core.push("0", Chunk("a", recs("a", 1)), 0.0)
    assert core.pop_ready(10.0) == []
    core.announce("1", Announce([], live=True), 10.0)
    assert lines(core.pop_ready(10.0)) == ["a0"]


def test_a_record_older_than_its_predecessor_keeps_its_place() -> None:
    """A lane never reorders; the merge uses the lane's running maximum."""
    core = exact_core(2)
    core.push("0", Chunk("a", recs("a", 10, 2), live=False, final=True), 0.0)
    core.push("1", Chunk("b", recs("b", 5, 11), live=False, final=True), 0.0)
    assert lines(core.pop_ready(0.0)) == ["b0", "a0", "a1", "b1"]


def test_live_records_wait_at_most_the_window() -> None:
    """A live record waits for an active quiet lane, but only for the window."""
    core = live_core()
    core.push("0", Chunk("a", recs("a", 100)), 0.1)
    assert core.pop_ready(0.1) == []
    assert core.next_deadline(0.1) == 0.35
    assert lines(core.pop_ready(0.35)) == ["a0"]


def test_merge_delay_is_the_oldest_wait() -> None:
    """merge_delay (for /metrics) is how long the oldest held record has waited."""
    core = live_core()
    assert core.merge_delay(1.0) == 0.0
    core.push("0", Chunk("a", recs("a", 100)), 0.1)
    assert core.pop_ready(0.1) == []
    assert core.merge_delay(0.3) == pytest.approx(0.2)


def test_an_idle_lane_does_not_hold_the_merge() -> None:
    """A live lane silent for idle_timeout is not waited for."""
    core = live_core(window=5.0)
    core.push("0", Chunk("a", recs("a", 100)), 1.5)
    assert lines(core.pop_ready(1.5)) == ["a0"]


def test_late_records_are_flagged_or_dropped() -> None:
    """A live record older than what was sent is late: flagged and counted, or dropped."""
    for policy in ("emit", "drop"):
        core = make_core(2, window=0.0, idle_timeout=1.0, late_policy=policy)
        core.announce("0", Announce([], live=True), 0.0)
        core.announce("1", Announce([], live=True), 0.0)
        core.push("0", Chunk("a", recs("a", 100)), 0.0)
        assert lines(core.pop_ready(0.0)) == ["a0"]
        core.push("1", Chunk("b", recs("b", 50, 150)), 0.0)
        out = core.pop_ready(0.0)
        assert core.stats.late == {"1": 1}
        if policy == "emit":
            assert [(r.line, r.late) for r in out] == [("b0", True), ("b1", False)]
        else:
            assert lines(out) == ["b1"] and core.stats.dropped_late == {"1": 1}


def test_zero_window_is_arrival_order() -> None:
    """order_window = 0s sends live records as they come."""
    core = live_core(window=0.0)
    core.push("0", Chunk("a", recs("a", 100)), 0.0)
    assert lines(core.pop_ready(0.0)) == ["a0"]


# --- properties ------------------------------------------------------------------------------

lanes_strategy = st.lists(
    st.lists(st.integers(min_value=0, max_value=50), max_size=12), min_size=1, max_size=4
)


def running_max_keys(stamps: list[int]) -> list[int]:
    keys, top = [], -1
    for ts in stamps:
        top = max(top, ts)
        keys.append(top)
    return keys


@given(
    lanes_strategy,
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=30),
)
def test_catch_up_merge_properties(lanes: list[list[int]], schedule: list[tuple[int, int]]) -> None:
    """Existing data, fed in any chunking: nothing lost or repeated, each lane's order kept,
    ordered by the lanes' running-maximum keys, nothing late."""
    core = exact_core(len(lanes))
    records = [recs(str(index), *stamps) for index, stamps in enumerate(lanes)]
    for index in range(len(lanes)):
        core.announce(str(index), Announce([str(index)], live=False), 0.0)
    cursors = [0] * len(lanes)
    out: list[Record] = []
    now = 0.0
    for lane, size in schedule:
        index = lane % len(lanes)
        chunk = records[index][cursors[index] : cursors[index] + size]
        cursors[index] += len(chunk)
        core.push(str(index), Chunk(str(index), chunk, live=False), now)
        now += 1.0  # far past the window: existing data must wait all the same
        out += core.pop_ready(now)
    for index, batch in enumerate(records):
        core.push(
            str(index), Chunk(str(index), batch[cursors[index] :], live=False, final=True), now
        )
        now += 1.0
        out += core.pop_ready(now)
    assert core.held == 0
    assert sorted(map(id, out)) == sorted(id(r) for batch in records for r in batch)
    keys = {
        id(r): key
        for batch in records
        for r, key in zip(batch, running_max_keys([x.ts for x in batch]), strict=True)
    }
    assert [keys[id(r)] for r in out] == sorted(keys[id(r)] for r in out)
    for batch in records:
        assert [r for r in out if batch and r.source == batch[0].source] == batch
    assert not any(r.late for r in out)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # lane
            st.integers(0, 300),  # milliseconds until this arrival
            st.lists(st.integers(0, 1000), min_size=1, max_size=3),  # ts of the records
        ),
        max_size=25,
    ),
    st.sampled_from([0.0, 0.05, 0.25]),
    st.booleans(),
)
def test_live_merge_properties(
    arrivals: list[tuple[int, int, list[int]]], window: float, is_open: bool
) -> None:
    """Live data: nothing lost, lanes keep their order, output ordered except records flagged
    late, and no record held longer than the window (clock injected), whether or not a source
    is open to unknown lanes. The times are odd microseconds, exact to the microsecond (coarse
    ones: test_coarse_times.py)."""
    core = make_core(3, window=window, idle_timeout=0.5)
    for index in range(3):
        core.announce(str(index), Announce([str(index)], live=True, open=is_open), 0.0)
    now = 0.0
    read_at: dict[int, float] = {}
    sent: list[tuple[Record, float]] = []
    pushed: list[Record] = []

    def advance_to(moment: float) -> None:
        nonlocal now
        while True:
            deadline = core.next_deadline(now)
            if deadline is None or deadline > moment:
                break
            now = max(now, deadline)
            released = core.pop_ready(now)
            sent.extend((record, now) for record in released)
            assert released or core.next_deadline(now) != deadline, "woke at a deadline for nothing"
        now = moment

    for lane, wait_ms, stamps in arrivals:
        advance_to(now + wait_ms / 1000)
        batch = recs(str(lane), *(2 * ts + 1 for ts in stamps))
        pushed += batch
        for record in batch:
            read_at[id(record)] = now
        core.push(str(lane), Chunk(str(lane), batch), now)
        sent.extend((record, now) for record in core.pop_ready(now))
    advance_to(now + 10.0)
    for index in range(3):
        core.end_source(str(index))
    sent.extend((record, now) for record in core.pop_ready(now))

    assert sorted(id(r) for r, _ in sent) == sorted(map(id, pushed))
    for record, when in sent:
        assert when - read_at[id(record)] <= window + 1e-9, record
    keys: dict[int, int] = {}
    for lane in "012":
        mine = [r for r in pushed if r.source == lane]
        keys.update(zip(map(id, mine), running_max_keys([r.ts for r in mine]), strict=True))
    on_time = [keys[id(record)] for record, _ in sent if not record.late]
    assert on_time == sorted(on_time)
    for lane in "012":
        assert [r for r, _ in sent if r.source == lane] == [r for r in pushed if r.source == lane]


def test_idle_live_lanes_are_forgotten() -> None:
    """Peers that come and go (UDP senders) do not grow the core's table of lanes."""
    core = make_core(1, window=0.0, idle_timeout=1.0)
    core.announce("0", Announce([], live=True), 0.0)
    for peer in range(100):
        core.push("0", Chunk(f"peer-{peer}", recs("a", peer)), 0.0)
        assert len(core.pop_ready(0.0)) == 1
    assert len(core._lanes) == 100
    core.push("0", Chunk("peer-new", recs("a", 500)), 5.0)
    assert lines(core.pop_ready(5.0)) == ["a0"]
    assert list(core._lanes) == [("0", "peer-new")]


def test_a_watermark_lets_records_below_it_go() -> None:
    """A remote lane's watermark: its sender has sent everything up to it, so an empty lane
    holds back only what is above it; a watermark alone is not a sign of life."""
    core = make_core(1, window=0.25, idle_timeout=1.0)
    core.announce("0", Announce(["n1.app", "n1.db"], live=True), 0.0)
    core.push("0", Chunk("n1.app", recs("app", 10, 20, 30)), 0.0)
    assert core.pop_ready(0.01) == []  # n1.db, quiet and unbounded, may still send older
    core.push("0", Chunk("n1.db", [], watermark=20), 0.02)
    assert lines(core.pop_ready(0.02)) == ["app0", "app1"]  # up to the watermark, not past it
    assert lines(core.pop_ready(0.3)) == ["app2"]  # the rest after the window, as before
    core.push("0", Chunk("n1.app", recs("app", 40)), 1.5)
    assert lines(core.pop_ready(1.5)) == ["app0"]  # n1.db idle since 0.0: it holds nobody back


def test_catch_up_does_not_wait_for_a_lane_that_went_live() -> None:
    """What files hold at start leaves at once: a lane that has read through its existing data
    (an empty live chunk ends its catch-up) does not hold other lanes' catch-up records back
    until it goes idle; only a lane still reading existing data does."""
    core = make_core(1, window=0.25, idle_timeout=1.0)
    core.announce("0", Announce(["a", "b", "c"], live=False), 0.0)
    core.push("0", Chunk("a", recs("a", 1), live=False), 0.01)
    core.push("0", Chunk("a", [], live=True), 0.01)
    assert core.pop_ready(0.01) == []  # b and c still read what they hold
    core.push("0", Chunk("c", recs("c", 3), live=False), 0.02)
    core.push("0", Chunk("c", [], live=True), 0.02)
    assert core.pop_ready(0.02) == []  # b still reads
    core.push("0", Chunk("b", recs("b", 2), live=False), 0.03)
    assert lines(core.pop_ready(0.03)) == ["a0", "b0"]  # c's 3: b may still have a 2.5
    core.push("0", Chunk("b", [], live=True), 0.03)
    assert lines(core.pop_ready(0.03)) == ["c0"]  # long before a, b, c go idle (1.0)
    assert core.held == 0


def test_live_records_still_wait_for_a_live_lane() -> None:
    """Only catch-up records pass an empty live lane: a live record waits the window for it."""
    core = make_core(1, window=0.25, idle_timeout=1.0)
    core.announce("0", Announce(["a", "b"], live=False), 0.0)
    core.push("0", Chunk("a", [], live=True), 0.0)
    core.push("0", Chunk("b", [], live=True), 0.0)
    core.push("0", Chunk("b", recs("b", 5)), 0.1)
    assert core.pop_ready(0.1) == []
    assert core.next_deadline(0.1) == pytest.approx(0.35)
    assert lines(core.pop_ready(0.35)) == ["b0"]


def test_an_open_source_holds_live_records_the_window() -> None:
    """A source open to lanes not heard from yet (remote nodes) holds every live record back
    for the window even when every known lane has one waiting, so a node that speaks a
    little later is merged in order; catch-up records do not wait for unknown lanes."""
    core = make_core(1, window=3.0, idle_timeout=1.0)
    core.announce("0", Announce(["n0.app"], live=False, open=True), 0.0)
    core.push("0", Chunk("n0.app", recs("app", 7), live=False), 0.0)
    core.push("0", Chunk("n0.app", [], live=True), 0.0)
    assert lines(core.pop_ready(0.0)) == ["app0"]  # the backlog: exact, at once
    core.push("0", Chunk("n1.app", recs("app", 20)), 0.1)
    assert core.pop_ready(0.1) == []  # the only lane with data, but an unknown one may speak
    assert core.next_deadline(0.1) == pytest.approx(3.1)  # n0's idle (1.0) changes nothing
    core.push("0", Chunk("n2.app", recs("app", 10)), 0.11)  # 10 ms later, an older record
    assert core.pop_ready(2.0) == []  # n0 idle, n1 and n2 known: still the window
    assert core.next_deadline(2.0) == pytest.approx(3.1)
    out = core.pop_ready(3.1)
    assert [r.ts for r in out] == [10, 20]
    assert not any(r.late for r in out)
    core.push("0", Chunk("n1.app", recs("app", 30)), 3.2)
    core.push("0", Chunk("n2.app", recs("app", 31)), 3.4)  # waits 0.2 s of its 0.3 s window
    assert [r.ts for r in core.pop_ready(6.2)] == [30, 31]  # in a group: one look, not two
    core.end_source("0")
    core.push("0", Chunk("n1.app", recs("app", 30)), 4.0)
    assert lines(core.pop_ready(4.0)) == ["app0"]  # ended: nothing unknown to wait for


def test_zero_window_ignores_unknown_lanes() -> None:
    """order_window = 0s: arrival order, an open source holds nothing back."""
    core = make_core(1, window=0.0, idle_timeout=1.0)
    core.announce("0", Announce([], live=True, open=True), 0.0)
    core.push("0", Chunk("n1.app", recs("app", 20)), 0.0)
    assert lines(core.pop_ready(0.0)) == ["app0"]


def test_a_catch_up_record_never_passes_a_live_record_held_in_another_lane() -> None:
    """A file that appears while running is read from its start (catch-up): its records wait
    behind a live record another lane holds that is older, so that one is never late; once the
    live record leaves, the catch-up record behind it leaves in the same turn."""
    core = make_core(3, window=60.0, idle_timeout=60.0)
    core.announce("0", Announce([], live=True), 0.0)
    core.announce("1", Announce(["b"], live=True), 0.0)
    core.announce("2", Announce(["c"], live=True), 0.0)
    core.push("1", Chunk("b", recs("b", 100)), 1.0)  # held: c, live and quiet, could undercut
    assert core.pop_ready(1.0) == []
    core.push("0", Chunk("a", recs("a", 100, 200), live=False), 2.0)
    core.push("0", Chunk("a", [], live=True), 2.0)  # a has read what it held at first
    assert lines(core.pop_ready(2.0)) == ["a0"]  # the tie: a before b (config order)
    core.push("2", Chunk("c", recs("c", 200)), 3.0)
    out = core.pop_ready(3.0)
    assert lines(out) == ["b0", "a1"] and not any(record.late for record in out)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(0, 5), min_size=1, max_size=6),
        min_size=2,
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_a_few_runs_merge_as_their_stable_sort_by_key(keys: list[list[int]], rng: object) -> None:
    """``merge_small`` (a live step's release over a few lanes) gives what the sort it stands
    in for gives: the runs in rank order (source, lane), then a stable sort by key, so equal
    keys keep config order, then lane age."""
    runs = []
    for index, run_keys in enumerate(keys):
        ordered = sorted(run_keys)  # running maxima never decrease
        batch = recs(f"s{index}", *ordered)
        runs.append((index % 3, index, ordered, batch))
    rng.shuffle(runs)  # type: ignore[attr-defined]
    ranked = sorted(runs, key=lambda run: (run[0], run[1]))
    all_keys = [key for run in ranked for key in run[2]]
    all_records = [record for run in ranked for record in run[3]]
    expected = [all_records[i] for i in sorted(range(len(all_keys)), key=all_keys.__getitem__)]
    assert merge_small(list(runs)) == expected


def test_a_live_step_over_many_lanes_uses_the_small_merge_and_keeps_ties_in_rank_order() -> None:
    """A release of one record in each of several live lanes (a step after one read of
    inotify's events) leaves in time order, ties in config order, then lane age; the same
    with more records than ``SMALL_MERGE`` (the sort)."""
    for per_lane in (1, SMALL_MERGE):
        core = make_core(2, window=0.0, idle_timeout=1.0)
        core.announce("0", Announce(["a", "b"], live=True), 0.0)
        core.announce("1", Announce(["c"], live=True), 0.0)
        core.push("1", Chunk("c", recs("c", *[10] * per_lane)), 1.0)
        core.push("0", Chunk("b", recs("b", *[10] * per_lane)), 1.0)
        core.push("0", Chunk("a", recs("a", *[11] * per_lane)), 1.0)
        out = lines(core.pop_ready(1.0))
        expected = [f"b{i}" for i in range(per_lane)] + [f"c{i}" for i in range(per_lane)]
        assert out == expected + [f"a{i}" for i in range(per_lane)]
