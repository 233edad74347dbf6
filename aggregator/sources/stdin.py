"""The stdin source: lines from standard input until EOF; the partial last line is kept."""

import asyncio
import os
import stat
from collections.abc import AsyncIterator

import aiofiles

from aggregator.channel import Channel
from aggregator.chunk import Announce, SourceItem
from aggregator.config import StdinSourceConfig
from aggregator.decode import RecordMaker
from aggregator.lines import LineSplitter
from aggregator.sources import LaneOutlet

READ_CHUNK = 256 * 1024
ORIGIN = "stdin"


async def _wait_readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not ready.done():  # it may fire again before remove_reader, or after a cancel
            ready.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def read_chunks(fd: int) -> AsyncIterator[bytes]:
    """The bytes of ``fd`` until EOF, without blocking the event loop.

    Pipes and terminals are watched by the loop and read once readable, so a read never blocks
    and the fd's blocking mode (shared with the shell) is left alone. Regular files cannot be
    watched that way; they are read through aiofiles' threads.
    """
    if stat.S_ISREG(os.fstat(fd).st_mode):
        async with aiofiles.open(fd, "rb", closefd=False) as file:
            while chunk := await file.read(READ_CHUNK):
                yield chunk
        return
    while True:
        await _wait_readable(fd)
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            return
        yield chunk


class StdinSource:
    """Reads standard input (fd 0) to its end."""

    def __init__(self, name: str, config: StdinSourceConfig, fd: int = 0) -> None:
        self.name = name
        self.config = config
        self.fd = fd
        self._maker = RecordMaker(name)

    async def open(self) -> None:
        """Nothing to bind."""

    async def run(self, out: Channel[SourceItem]) -> None:
        # Redirected from a file, stdin is existing data (merged exactly); a pipe is live.
        live = not stat.S_ISREG(os.fstat(self.fd).st_mode)
        await out.put(Announce([ORIGIN], live=live))
        splitter = LineSplitter(self.config.max_line_bytes)
        outlet = LaneOutlet(out, ORIGIN)
        async for chunk in read_chunks(self.fd):
            lines = splitter.feed(chunk)
            if lines.text:
                await outlet.send(self._maker.make(ORIGIN, lines), live=live)
        await outlet.send(self._maker.make(ORIGIN, splitter.flush()), live=live, final=True)
