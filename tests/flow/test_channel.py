"""The bounded channel between stages."""

import asyncio

import pytest

from aggregator.flow.channel import Channel, ChannelClosed, EndOfStream


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
