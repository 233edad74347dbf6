"""Writing bytes to a file descriptor without blocking the event loop: pipes and sockets through
the loop with flow control, regular files and terminals in a thread. The stdout sink and
``aggregator connect`` both write stdout this way."""

import asyncio
import contextlib
import os
import stat
from typing import Protocol

from aggregator.fdio import write_all

PIPE_HIGH_WATER = 256 * 1024


class ByteWriter(Protocol):
    gone: asyncio.Event
    """Set when the reader has gone (the other end of a pipe or socket closed), also while
    nothing is being written: ``| head`` ends a quiet follow at once."""

    async def write(self, data: bytes) -> None: ...

    def can_write_now(self) -> bool:
        """Whether ``write_now`` would take bytes without blocking or waiting."""
        ...

    def write_now(self, data: bytes) -> None:
        """Write ``data`` at once (after ``can_write_now`` said True): a live batch without
        a task's wake."""
        ...

    async def close(self) -> None: ...


class _PipeFlow(asyncio.BaseProtocol):
    """Flow control for a write pipe: pause while the transport's buffer is full."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.lost: Exception | None = None
        self.gone = asyncio.Event()
        self.ready = True
        """Neither paused nor lost: ``PipeWriter.can_write_now``, one attribute a batch."""

    def pause_writing(self) -> None:
        self.writable.clear()
        self.ready = False

    def resume_writing(self) -> None:
        self.writable.set()
        self.ready = self.lost is None

    def connection_lost(self, exc: Exception | None) -> None:
        # Also called while nothing is written: for pipes and sockets, asyncio watches the
        # write end for being readable, which on Linux (epoll: EPOLLERR) is how the read end
        # closing shows.
        self.lost = exc or BrokenPipeError("the reader has gone")
        self.ready = False
        self.writable.set()
        self.gone.set()


class PipeWriter:
    """Writes to a pipe or socket through the event loop, waiting while the reader is behind."""

    def __init__(self, transport: asyncio.WriteTransport, flow: _PipeFlow, fd: int) -> None:
        self._transport = transport
        self._flow = flow
        self._fd = fd
        self.gone = flow.gone

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

    def can_write_now(self) -> bool:
        return self._flow.ready

    def write_now(self, data: bytes) -> None:
        """The transport writes at once what the pipe takes, and buffers the rest (pausing
        when over its high water: ``can_write_now`` says False then)."""
        self._transport.write(data)

    async def close(self) -> None:
        """Flush what is buffered, then give the fd back in blocking mode (the shell shares it)."""
        if self._flow.lost is None and self._transport.get_write_buffer_size():
            self._transport.set_write_buffer_limits(high=0)
            self._flow.writable.clear()
            self._flow.ready = False
            await self._flow.writable.wait()
        self._transport.close()
        with contextlib.suppress(OSError):
            os.set_blocking(self._fd, True)


DIRECT_WRITE = 64 * 1024
"""Up to this much is written to a regular file (or /dev/null) on the event loop: the page
cache takes it at once, for far less than a hop to a thread and back (a live line's cost)."""


class ThreadWriter:
    """Writes to a regular file or a terminal in a worker thread, so the loop never blocks;
    ``direct`` bytes or fewer on the loop (0: never; a terminal can block: Ctrl-S)."""

    def __init__(self, fd: int, direct: int = 0) -> None:
        self._fd = fd
        self._direct = direct
        self.gone = asyncio.Event()  # a file or terminal has no reader to go away

    async def write(self, data: bytes) -> None:
        if len(data) <= self._direct:
            write_all(self._fd, data)
            return
        # write_all may take several writes: one thread hop for all of them (asyncio's own).
        await asyncio.to_thread(write_all, self._fd, data)

    def can_write_now(self) -> bool:
        return False  # the batch's size is not known yet: ``write`` decides

    def write_now(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Nothing is buffered: every write went to the fd."""


async def open_writer(fd: int) -> ByteWriter:
    """The right writer for ``fd``: through the loop for pipes and sockets, else a thread
    (small writes to a regular file or a device other than a terminal on the loop)."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return await PipeWriter.open(fd)
    direct = stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd))
    return ThreadWriter(fd, DIRECT_WRITE if direct else 0)


def colour_wanted(fd: int) -> bool:
    """Whether text written to ``fd`` is coloured: on a terminal, unless ``NO_COLOR`` is set."""
    return os.isatty(fd) and "NO_COLOR" not in os.environ
