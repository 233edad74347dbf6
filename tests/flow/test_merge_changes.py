"""Inputs and outputs that come and go while the merge runs (a reload, issue #28)."""

import asyncio

import pytest

from aggregator.flow.channel import Channel, ChannelClosed, EndOfStream
from aggregator.flow.chunk import Announce, Chunk, SourceItem
from aggregator.flow.merge import Merge, Output
from aggregator.flow.ordering import OrderingCore
from aggregator.record.record import Batch, Record


def records(source: str, start: int, count: int) -> Batch:
    return [Record(start + n, source, source, f"{source}{start + n}") for n in range(count)]


async def collect(channel: Channel[Batch], into: list[Record]) -> None:
    while True:
        try:
            into.extend(await channel.get())
        except EndOfStream:
            return


async def until(condition: object) -> None:
    async with asyncio.timeout(5):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_an_input_added_and_one_gone_while_running() -> None:
    """A source added while the merge runs is merged; one that ends is ``gone`` once the last
    of its records has left, and may then come back under its name as a new source."""
    first: Channel[SourceItem] = Channel(4)
    sink: Channel[Batch] = Channel(4)
    core = OrderingCore(window=0.0, idle_timeout=1.0)
    merge = Merge([("a", first)], [Output("out", sink)], core)
    out: list[Record] = []
    await first.put(Announce([], live=True))
    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        group.create_task(merge.run(), name="test:merge")
        group.create_task(collect(sink, out), name="test:sink")
        await first.put(Chunk("a", records("a", 0, 3)))
        added: Channel[SourceItem] = Channel(4)
        merge.add_input("b", added)
        await added.put(Announce([], live=True))
        await added.put(Chunk("b", records("b", 10, 2)))
        await until(lambda: len(out) == 5)
        merge.holds += 1  # a reload replacing "a": the merge must not end meanwhile
        first.close()
        added.close()
        assert await merge.gone("a") == 5
        again: Channel[SourceItem] = Channel(4)
        merge.add_input("a", again)
        await again.put(Announce([], live=True))
        await again.put(Chunk("a", records("a", 20, 1), final=True))
        again.close()
        merge.holds -= 1
        merge.wake()
    assert [r.line for r in out] == ["a0", "a1", "a2", "b10", "b11", "a20"]
    assert [r.seq for r in out] == [1, 2, 3, 4, 5, 6]
    assert merge.records_in == {"a": 4, "b": 2}


async def test_outputs_change_between_two_batches() -> None:
    """A replaced output gets every batch up to the change, its successor every one after:
    none is lost or sent to both; a removed output's channel is closed."""
    inp: Channel[SourceItem] = Channel(4)
    old, other = Channel[Batch](64), Channel[Batch](64)
    core = OrderingCore(window=0.0, idle_timeout=1.0)
    merge = Merge([("a", inp)], [Output("out", old), Output("other", other)], core)
    await inp.put(Announce([], live=True))
    new: Channel[Batch] = Channel(64)
    before: list[Record] = []
    after: list[Record] = []
    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        group.create_task(merge.run(), name="test:merge")

        async def feed(first: int, last: int) -> None:
            for start in range(first, last, 5):
                await inp.put(Chunk("a", records("a", start, 5)))
                await asyncio.sleep(0)

        feeding = group.create_task(feed(0, 50), name="test:feed")
        await until(lambda: merge.seq >= 20)
        switched = await merge.change_outputs(["out", "other"], [Output("out", new)])
        await feeding
        await feed(50, 100)
        inp.close()
        group.create_task(collect(old, before), name="test:old")
        group.create_task(collect(new, after), name="test:new")
    assert before and after
    assert before[-1].seq == switched
    assert [r.seq for r in before + after] == list(range(1, 101))
    with pytest.raises(ChannelClosed):  # the removed output's channel was closed
        await other.put([])
