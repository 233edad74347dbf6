"""The stdin source: lines from standard input until EOF; the partial last line is kept."""

import asyncio
import os
import stat

import aiofiles

from aggregator.config import StdinSourceConfig
from aggregator.flow.channel import Channel
from aggregator.flow.chunk import Announce, SourceItem
from aggregator.parse.decode import Decoding
from aggregator.sources import SourceContext
from aggregator.sources.lanes import LaneOutlet, pump
from aggregator.telemetry.metrics import Counters

READ_CHUNK = 256 * 1024
ORIGIN = "stdin"


async def read_when_readable(fd: int) -> bytes:
    """Up to READ_CHUNK bytes of a pipe or terminal, once it is readable; b"" at EOF.

    The loop watches the fd, so the read never blocks and the fd's blocking mode (shared with
    the shell) is left alone. Cancel-safe: a cancel while waiting reads nothing.
    """
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
    return os.read(fd, READ_CHUNK)


class StdinSource:
    """Reads standard input (fd 0) to its end."""

    def __init__(
        self, name: str, config: StdinSourceConfig, context: SourceContext, fd: int = 0
    ) -> None:
        self.name = name
        self.config = config
        self.fd = fd
        # Redirected from a file, stdin can be large: its reads are parsed like a file's.
        self.decoding = Decoding(name, config, context.needs, context.parse_pool, context.judged)

    async def close(self) -> None:
        """Nothing to release."""

    async def open(self) -> None:
        """Nothing to bind."""

    def counters(self) -> Counters:
        return {"lines_truncated": self.decoding.truncated_lines}

    async def run(self, out: Channel[SourceItem]) -> None:
        # Redirected from a file, stdin is existing data (merged exactly); a pipe is live.
        regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
        await out.put(Announce([ORIGIN], live=not regular))
        decoder = self.decoding.lane(ORIGIN)
        outlet = LaneOutlet(out, ORIGIN)
        if not regular:
            await pump(lambda: read_when_readable(self.fd), decoder, outlet, live=True)
            return
        # Regular files cannot be watched by the loop; aiofiles reads them in its threads.
        async with aiofiles.open(self.fd, "rb", closefd=False) as file:
            await pump(
                lambda: file.read(READ_CHUNK), decoder, outlet, live=False, cancel_safe=False
            )
