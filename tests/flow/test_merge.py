"""The merge's async shell with real channels: completion-order fan-in, seq, bounded memory."""

import asyncio

from aggregator.flow.channel import Budget, Channel
from aggregator.flow.chunk import Announce, SourceItem
from aggregator.flow.gathering import Gathering
from aggregator.flow.merge import DRAIN, Merge, Output
from aggregator.flow.ordering import OrderingCore
from aggregator.record.record import Batch, Record
from aggregator.sources.lanes import LaneOutlet
from tests.conftest import wait_until


def records(source: str, start: int, count: int) -> Batch:
    return [Record(start + n, source, source, f"{source}{start + n}") for n in range(count)]


async def collect(channel: Channel[Batch], into: list[Record]) -> None:
    while True:
        try:
            into.extend(await channel.get())
        except Exception:
            return


async def test_budget_gives_credit_back_and_waits_when_spent() -> None:
    """take() waits only once nothing is left; give() wakes it."""
    budget = Budget(10)
    await budget.take(25)  # a big chunk may overdraw what is left
    waiter = asyncio.create_task(budget.take(1), name="test:take")
    await asyncio.sleep(0)
    assert not waiter.done()
    budget.give(20)
    async with asyncio.timeout(2):
        await waiter


async def test_a_lane_running_ahead_stops_reading() -> None:
    """Exact catch-up: while a slower lane sends nothing, a fast lane's reader waits on its
    budget instead of filling memory; once the slow lane ends, everything flows, in order."""
    fast_in, slow_in = Channel[SourceItem](4), Channel[SourceItem](4)
    sink: Channel[Batch] = Channel(4)
    core = OrderingCore(window=0.25, idle_timeout=1.0)
    merge = Merge([("fast", fast_in), ("slow", slow_in)], [Output("out", sink)], core)
    out: list[Record] = []
    await fast_in.put(Announce(["fast"], live=False))
    await slow_in.put(Announce(["slow"], live=False))
    outlet = LaneOutlet(fast_in, "fast", budget=1000)

    async def fast_reader() -> None:
        for start in range(0, 50_000, 500):
            await outlet.send(records("fast", start, 500), live=False)
        await outlet.send([], live=False, final=True)

    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        group.create_task(merge.run(), name="test:merge")
        group.create_task(collect(sink, out), name="test:sink")
        reader = group.create_task(fast_reader(), name="test:fast")
        while core.held < 1000:
            await asyncio.sleep(0.01)
        for _ in range(20):  # it stays stopped: nothing can leave before `slow` says something
            await asyncio.sleep(0.005)
            assert not reader.done()
            assert core.held <= 1500 and not out
        slow_in.close()  # the slow lane ends with nothing: the fast one may flow
        await reader
        fast_in.close()
    assert [r.line for r in out] == [f"fast{n}" for n in range(50_000)]
    assert [r.seq for r in out] == list(range(1, 50_001))


async def test_a_channel_holding_more_than_a_drain_is_read_to_its_end() -> None:
    """More chunks waiting in one channel than the merge takes at a time (``DRAIN``), put
    before the merge starts and closed: every record leaves, in order, and the merge ends."""
    count = DRAIN * 2 + 5
    many: Channel[SourceItem] = Channel(count + 2)
    sink: Channel[Batch] = Channel(count + 2)
    core = OrderingCore(window=0.0, idle_timeout=1.0)
    merge = Merge([("many", many)], [Output("out", sink)], core)
    outlet = LaneOutlet(many, "many", budget=count + 1)
    await many.put(Announce(["many"], live=False))
    for start in range(count):
        await outlet.send(records("many", start, 1), live=False)
    await outlet.send([], live=False, final=True)
    many.close()
    out: list[Record] = []
    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        group.create_task(merge.run(), name="test:merge")
        group.create_task(collect(sink, out), name="test:sink")
    assert [r.line for r in out] == [f"many{n}" for n in range(count)]


async def test_a_put_while_the_merge_waits_is_merged_in_the_put() -> None:
    """A live chunk put while the merge waits (its outputs with room) leaves in the put itself,
    numbered, before the loop turns; with its output full it is left to the merge's task, and
    every record still leaves once, in order."""
    src: Channel[SourceItem] = Channel(8)
    out: Channel[Batch] = Channel(1)
    merge = Merge([("a", src)], [Output("out", out)], OrderingCore(window=0.0, idle_timeout=1.0))
    outlet = LaneOutlet(src, "a")
    task = asyncio.create_task(merge.run(), name="test:merge")
    try:
        await src.put(Announce(["a"], live=True))
        await outlet.send(records("a", 0, 1))
        await wait_until(lambda: len(out) == 1 and merge._waiter is not None, "the merge waits")
        assert [r.seq for r in out.get_nowait() or []] == [1]
        turns: list[bool] = []
        asyncio.get_running_loop().call_soon(turns.append, True)
        await outlet.send(records("a", 1, 1))
        assert not turns and len(out) == 1  # merged and handed on in the put
        await outlet.send(records("a", 2, 2))  # the output is full: the task sends it
        got = [r.seq for r in out.get_nowait() or []]
        async with asyncio.timeout(10):
            got += [r.seq for r in await out.get()]
        assert got == [2, 3, 4]
        src.close()
        async with asyncio.timeout(10):
            await task
    finally:
        task.cancel()


async def test_a_catch_up_put_is_left_to_the_merge_task() -> None:
    """A catch-up chunk put while the merge waits is not merged in the put (the source's turn
    goes on to read and parse: bench/README.md, "Session 10 (s10catchup)"): it leaves once the
    merge's task runs, and once the lane is live a put is merged in the put again."""
    src: Channel[SourceItem] = Channel(8)
    out: Channel[Batch] = Channel(4)
    core = OrderingCore(window=0.0, idle_timeout=1.0)
    merge = Merge([("a", src)], [Output("out", out)], core)
    outlet = LaneOutlet(src, "a")
    task = asyncio.create_task(merge.run(), name="test:merge")
    try:
        await src.put(Announce(["a"], live=False))
        await outlet.send(records("a", 0, 1), live=False)
        await wait_until(lambda: len(out) == 1 and merge._waiter is not None, "the merge waits")
        assert core.catching_up
        await outlet.send(records("a", 1, 2), live=False)
        assert len(out) == 1  # not in the put: the merge's task takes it
        await wait_until(lambda: len(out) == 2 and merge._waiter is not None, "merged")
        await outlet.send(records("a", 3, 1))  # the lane goes live
        await wait_until(lambda: len(out) == 3 and merge._waiter is not None, "merged")
        assert not core.catching_up
        await outlet.send(records("a", 4, 1))
        assert len(out) == 4  # live: merged and handed on in the put
        got = []
        while (batch := out.get_nowait()) is not None:
            got += [r.seq for r in batch]
        assert got == [1, 2, 3, 4, 5]
        src.close()
        async with asyncio.timeout(10):
            await task
    finally:
        task.cancel()


async def test_puts_gathered_in_one_callback_leave_as_one_batch() -> None:
    """Puts into several inputs made within ``Gathering`` (inotify's callback: one line in each
    of two files) are merged once, after the last: one batch out, in time order, numbered,
    before the loop turns; outside a gathering, each put is merged in itself."""
    a: Channel[SourceItem] = Channel(8)
    b: Channel[SourceItem] = Channel(8)
    out: Channel[Batch] = Channel(8)
    core = OrderingCore(window=0.0, idle_timeout=1.0)
    merge = Merge([("a", a), ("b", b)], [Output("out", out)], core)
    outlets = LaneOutlet(a, "a"), LaneOutlet(b, "b")
    task = asyncio.create_task(merge.run(), name="test:merge")
    try:
        await a.put(Announce(["a"], live=True))
        await b.put(Announce(["b"], live=True))
        await wait_until(lambda: merge._waiter is not None and not core.catching_up, "it waits")
        turns: list[bool] = []
        asyncio.get_running_loop().call_soon(turns.append, True)
        with Gathering():
            outlets[1].send_now(records("b", 20, 1))
            outlets[0].send_now(records("a", 10, 1))
            assert len(out) == 0  # not yet: after the last put
        assert not turns and len(out) == 1
        assert [(r.line, r.seq) for r in out.get_nowait() or []] == [("a10", 1), ("b20", 2)]
        outlets[0].send_now(records("a", 30, 1))
        outlets[1].send_now(records("b", 40, 1))
        assert not turns and len(out) == 2  # each in its own put
        with Gathering():  # a gathering again: its puts ask for a step of their own
            outlets[0].send_now(records("a", 60, 1))
            outlets[1].send_now(records("b", 50, 1))
            assert len(out) == 2
        assert not turns and len(out) == 3
        a.close()
        b.close()
        async with asyncio.timeout(10):
            await task
    finally:
        task.cancel()
