"""The bounded channel between stages."""

import asyncio

import pytest

from aggregator.flow.channel import Budget, Channel, ChannelClosed, EndOfStream


async def test_fifo_and_end_of_stream() -> None:
    """Items come out in order; after close the rest drains, then EndOfStream."""
    channel = Channel[int](4)
    for item in (1, 2, 3):
        await channel.put(item)
    channel.close()
    assert [await channel.get() for _ in range(3)] == [1, 2, 3]
    with pytest.raises(EndOfStream):
        await channel.get()
    with pytest.raises(ChannelClosed):
        await channel.put(4)


async def test_put_waits_while_full() -> None:
    """A full channel holds the writer back until the reader takes something."""
    channel = Channel[int](1)
    await channel.put(1)
    writer = asyncio.create_task(channel.put(2), name="test:writer")
    await asyncio.sleep(0)
    assert not writer.done()
    assert await channel.get() == 1
    async with asyncio.timeout(2):
        await writer
    assert await channel.get() == 2


async def test_close_wakes_a_waiting_writer_and_reader() -> None:
    """Closing ends both sides' waits."""
    full = Channel[int](1)
    await full.put(1)
    writer = asyncio.create_task(full.put(2), name="test:writer")
    empty = Channel[int](1)
    reader = asyncio.create_task(empty.get(), name="test:reader")
    await asyncio.sleep(0)
    full.close()
    empty.close()
    async with asyncio.timeout(2):
        with pytest.raises(ChannelClosed):
            await writer
        with pytest.raises(EndOfStream):
            await reader


async def test_a_listener_hears_each_put_and_the_close() -> None:
    """``listen``: called after every put and on closing, until replaced by None; ``ended``
    only once closed and drained."""
    channel = Channel[int](4)
    heard: list[int] = []
    channel.listen(lambda: heard.append(len(channel)))
    await channel.put(1)
    await channel.put(2)
    channel.close()
    assert heard == [1, 2, 2]
    assert not channel.ended
    assert channel.get_nowait() == 1
    assert channel.get_nowait() == 2
    assert channel.ended
    channel.listen(None)
    channel.close()
    assert heard == [1, 2, 2]


async def test_waiters_are_woken_by_the_calls_that_do_not_wait() -> None:
    """The events are set only for a waiter (a live line's put and take set none): a reader
    waiting in ``get`` is woken by ``put_nowait``, writers waiting in ``put`` by
    ``get_nowait``, each in turn, and a reader cancelled while waiting leaves no waiter."""
    channel = Channel[int](1)
    reader = asyncio.create_task(channel.get(), name="test:reader")
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    reader = asyncio.create_task(channel.get(), name="test:reader")
    await asyncio.sleep(0)
    channel.put_nowait(1)
    async with asyncio.timeout(2):
        assert await reader == 1
    channel.put_nowait(2)
    writers = [asyncio.create_task(channel.put(n), name=f"test:writer{n}") for n in (3, 4)]
    await asyncio.sleep(0)
    taken = [channel.get_nowait()]
    async with asyncio.timeout(2):
        while len(taken) < 3:
            await asyncio.sleep(0)
            if len(channel):
                taken.append(channel.get_nowait())
        await asyncio.gather(*writers)
    assert taken == [2, 3, 4]


async def test_a_reader_out_of_credit_waits_for_it() -> None:
    """``Budget``: a ``take`` with no credit left waits until ``give`` brings some back, and
    only then (a give that leaves none does not wake it)."""
    budget = Budget(2)
    budget.take_now(3)
    taker = asyncio.create_task(budget.take(1), name="test:taker")
    await asyncio.sleep(0)
    budget.give(1)  # free 0: still none
    await asyncio.sleep(0)
    assert not taker.done()
    budget.give(2)
    async with asyncio.timeout(2):
        await taker
    assert budget.free == 1


async def test_get_many_takes_up_to_its_limit_and_wakes_a_writer() -> None:
    """``get_many``: the oldest items, at most the limit, none while empty; a writer waiting
    for room is woken."""
    channel = Channel[int](3)
    assert channel.get_many(2) == []
    for item in (1, 2, 3):
        channel.put_nowait(item)
    writer = asyncio.create_task(channel.put(4), name="test:writer")
    await asyncio.sleep(0)
    assert channel.get_many(2) == [1, 2]
    async with asyncio.timeout(2):
        await writer
    assert channel.get_many(5) == [3, 4]
    assert len(channel) == 0
