"""The stdout sink: the merged stream on standard output, flushed per batch.

When the reader is slow (``| less``) the writes wait, and so does the pipeline: nothing is
dropped. When the reader has gone (``| head``) the sink ends quietly.
"""

import asyncio
import contextlib
import logging
import os
import stat
from typing import Protocol

from aggregator.config import StdoutSinkConfig
from aggregator.fdio import write_all
from aggregator.flow.channel import Channel, EndOfStream
from aggregator.flow.record import Batch
from aggregator.sinks import Sink, SinkContext
from aggregator.sinks.encoded import FilteredEncoder, needs_of

log = logging.getLogger(__name__)

PIPE_HIGH_WATER = 256 * 1024


class ByteWriter(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class _PipeFlow(asyncio.BaseProtocol):
    """Flow control for a write pipe: pause while the transport's buffer is full."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.lost: Exception | None = None

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or BrokenPipeError("the reader has gone")
        self.writable.set()


class PipeWriter:
    """Writes to a pipe or socket through the event loop, waiting while the reader is behind."""

    def __init__(self, transport: asyncio.WriteTransport, flow: _PipeFlow, fd: int) -> None:
        self._transport = transport
        self._flow = flow
        self._fd = fd

    @classmethod
    async def open(cls, fd: int) -> "PipeWriter":
        loop = asyncio.get_running_loop()
        # The transport owns this file object; closing it leaves fd 1 open (closefd=False).
        pipe = open(fd, "wb", buffering=0, closefd=False)  # noqa: ASYNC230, SIM115
        transport, flow = await loop.connect_write_pipe(_PipeFlow, pipe)
        transport.set_write_buffer_limits(high=PIPE_HIGH_WATER)
        return cls(transport, flow, fd)

    async def write(self, data: bytes) -> None:
        if self._flow.lost is not None:
            raise self._flow.lost
        self._transport.write(data)
        await self._flow.writable.wait()
        if self._flow.lost is not None:
            raise self._flow.lost

    async def close(self) -> None:
        """Flush what is buffered, then give the fd back in blocking mode (the shell shares it)."""
        if self._flow.lost is None and self._transport.get_write_buffer_size():
            self._transport.set_write_buffer_limits(high=0)
            self._flow.writable.clear()
            await self._flow.writable.wait()
        self._transport.close()
        with contextlib.suppress(OSError):
            os.set_blocking(self._fd, True)


class ThreadWriter:
    """Writes to a regular file or a terminal in a worker thread, so the loop never blocks."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(write_all, self._fd, data)

    async def close(self) -> None:
        """Nothing is buffered: every write went to the fd."""


async def open_writer(fd: int) -> ByteWriter:
    """The right writer for ``fd``: through the loop for pipes and sockets, else a thread."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return await PipeWriter.open(fd)
    return ThreadWriter(fd)


class StdoutSink(Sink):
    """Writes the stream to fd 1 in the sink's format; colours only on a terminal."""

    def __init__(
        self, name: str, config: StdoutSinkConfig, context: SinkContext, fd: int = 1
    ) -> None:
        self.name = name
        self.config = config
        self.fd = fd
        self.records_out = 0
        self.delivered_seq = 0  # the last seq written (checkpoints wait for it)
        self.gone = False  # the reader closed stdout: nothing more is delivered here
        self.needs = needs_of(config.format, config.filter)
        colour = os.isatty(fd) and "NO_COLOR" not in os.environ
        self._encode = FilteredEncoder(config.filter, config.format, context.source_names, colour)

    async def run(self, inp: Channel[Batch]) -> None:
        writer = await open_writer(self.fd)
        try:
            while True:
                try:
                    batch = await inp.get()
                except EndOfStream:
                    return
                encoded = self._encode(batch)
                if encoded is not None:
                    await writer.write(encoded[0])
                    self.records_out += encoded[1]
                self.delivered_seq = batch[-1].seq
        except (BrokenPipeError, ConnectionResetError):
            log.debug("stdout was closed by its reader")
            self.gone = True
            inp.close()
        finally:
            await writer.close()
