"""The stdout sink writes a batch put while it waits at once, in the putter's turn, when the
pipe has room (#27: a live line without a task's wake), and queues it when the pipe is full."""

import asyncio
import os

from aggregator.config import StdoutSinkConfig
from aggregator.flow.channel import Channel
from aggregator.record.record import Batch, Record
from aggregator.sinks import SinkContext
from aggregator.sinks.stdout import StdoutSink
from aggregator.sinks.writers import PipeWriter
from tests.conftest import wait_until


def batch(first: int, count: int, width: int = 10) -> Batch:
    records = [Record(n, "in", "in", f"{n:0{width}d}") for n in range(first, first + count)]
    for record in records:
        record.seq = record.ts + 1
    return records


def raw_sink(fd: int) -> StdoutSink:
    return StdoutSink("out", StdoutSinkConfig(type="stdout", format="raw"), SinkContext(["in"]), fd)


def read_all(fd: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


async def test_a_batch_put_while_the_sink_waits_is_written_in_the_put() -> None:
    """With room in the pipe, the put returns with the batch's line already in the pipe and
    the sink's ``delivered_seq`` past it: nothing queued, no turn of the loop needed."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    sink = raw_sink(write_end)
    inp: Channel[Batch] = Channel(4)
    task = asyncio.create_task(sink.run(inp), name="test:sink")
    try:
        await wait_until(lambda: sink._writer is not None, "the sink started")
        await asyncio.sleep(0)  # the sink is waiting for a batch now
        turns: list[bool] = []
        asyncio.get_running_loop().call_soon(turns.append, True)
        await inp.put(batch(0, 1))
        assert not turns  # the loop had no turn: the sink's task did not run
        assert len(inp) == 0 and sink.delivered_seq == 1 and sink.records_out == 1
        assert read_all(read_end) == b"0000000000\n"
        inp.close()
        async with asyncio.timeout(10):
            await task
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_a_full_pipe_queues_batches_and_loses_none() -> None:
    """A reader that does not read: the pipe and the transport fill, later batches wait in the
    channel (the putter is held back once it is full); once read, every line came, in order."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    sink = raw_sink(write_end)
    inp: Channel[Batch] = Channel(4)
    task = asyncio.create_task(sink.run(inp), name="test:sink")
    count, size = 400, 1000  # 400 batches of 1,000 11-byte lines: 4.4 MB, far over the pipe
    received = bytearray()

    async def put_all() -> None:
        for n in range(count):
            await inp.put(batch(n * size, size))
        inp.close()

    try:
        await wait_until(lambda: sink._writer is not None, "the sink started")
        putter = asyncio.create_task(put_all(), name="test:putter")
        await wait_until(lambda: len(inp) == inp.maxsize, "the channel filled: the pipe is full")
        assert not putter.done()
        async with asyncio.timeout(30):
            while not task.done() or not putter.done():
                received += read_all(read_end)
                await asyncio.sleep(0.001)
            await putter
            await task
        received += read_all(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    expected = b"".join(f"{n:010d}\n".encode() for n in range(count * size))
    assert bytes(received) == expected


async def test_the_pipe_writer_can_write_now_only_while_neither_paused_nor_gone() -> None:
    """``can_write_now`` (one flag, read for each batch written at once): False while the
    transport is over its high water, True again once it drained, False for good once the
    reader has gone."""
    read_end, write_end = os.pipe()
    writer = await PipeWriter.open(write_end)
    try:
        assert writer.can_write_now()
        writer._flow.pause_writing()
        assert not writer.can_write_now()
        writer._flow.resume_writing()
        assert writer.can_write_now()
        os.close(read_end)
        await wait_until(writer.gone.is_set, "the reader's end closed")
        assert not writer.can_write_now()
        writer._flow.resume_writing()
        assert not writer.can_write_now()
        await writer.close()
    finally:
        os.close(write_end)
