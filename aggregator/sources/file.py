"""The file source: globs in, one tailer per matching file, lines out (like ``tail -F``).

The parts, each with one job: ``discover`` says which paths match now; a ``FileTailer`` follows
one file (position, partial line, truncation, replacement); ``FileSource`` rescans for new files
and owns one task per tailer.
"""

import asyncio
import glob
import logging
import os
from pathlib import Path

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedReader

from aggregator.channel import Channel, ChannelClosed
from aggregator.chunk import Announce, Chunk, SourceItem
from aggregator.config import FileSourceConfig
from aggregator.decode import Decoding, LaneDecoder
from aggregator.filters import NamePathMatcher
from aggregator.record import Batch
from aggregator.sources import LaneOutlet

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
"""Bytes per read: large enough that catch-up moves in big batches through one thread hop."""

RESCAN_INTERVAL = 1.0
POLL_MIN, POLL_MAX = 0.01, 0.25
"""Seconds between looks at a quiet file: short after data, backing off while it stays quiet."""


def discover(patterns: list[str], exclude: NamePathMatcher) -> list[Path]:
    """The regular files that match ``patterns`` (``**`` allowed) and no ``exclude`` pattern."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        for name in sorted(glob.glob(os.path.expanduser(pattern), recursive=True)):
            path = Path(name)
            if exclude and exclude.matches(path.name, str(path)):
                continue
            if path.is_file():
                found.setdefault(path)
    return list(found)


class FileTailer:
    """Follows one file from a position: reads what was appended, splits it into lines.

    A file that shrank was truncated: it is read again from 0. A path that now names another
    file was replaced (rotation by rename, delete and recreate): the old file is read to its end
    first, then the new one from 0.
    """

    def __init__(self, path: Path, decoder: LaneDecoder) -> None:
        self.path = path
        self.origin = str(path)
        self.position = 0
        self.decoder = decoder
        self._file: AsyncBufferedReader | None = None
        self._inode: tuple[int, int] | None = None

    async def open(self, at_end: bool) -> None:
        """Open the file, at its end or its start."""
        self._file = await aiofiles.open(self.path, "rb")
        stat = os.fstat(self._file.fileno())
        self._inode = (stat.st_dev, stat.st_ino)
        self.position = stat.st_size if at_end else 0
        await self._file.seek(self.position)

    async def close(self) -> None:
        if self._file is not None:
            await self._file.close()
            self._file = None

    async def read(self) -> Batch | None:
        """Records from what was appended; None when nothing was (the caller backs off)."""
        assert self._file is not None
        data = await self._file.read(READ_CHUNK)
        if data:
            self.position += len(data)
            return self.decoder.feed(data)
        size = os.fstat(self._file.fileno()).st_size
        if size < self.position:
            log.info("%s: truncated, reading again from the start", self.path)
            self.position = 0
            await self._file.seek(0)
            return []
        if self._replaced():
            log.info("%s: replaced by a new file, following the new one", self.path)
            final = self.decoder.flush()
            await self.close()
            await self.open(at_end=False)
            return final
        return None

    def _replaced(self) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return False  # gone for now; keep the old file until something appears
        return (stat.st_dev, stat.st_ino) != self._inode


class FileSource:
    """Follows every file that matches the source's globs, the new ones too."""

    def __init__(self, name: str, config: FileSourceConfig, *, follow: bool = True) -> None:
        self.name = name
        self.config = config
        self.follow = follow and config.follow
        self._exclude = NamePathMatcher(config.exclude)
        self._decoding = Decoding(name, config)
        self._tailed: set[Path] = set()

    async def close(self) -> None:
        """Nothing to release."""

    async def open(self) -> None:
        """Nothing to bind: a glob that matches nothing yet is fine, files may come later."""

    async def run(self, out: Channel[SourceItem]) -> None:
        at_end = self.config.start_at == "end" and self.follow
        first = discover(self.config.paths, self._exclude)
        # Existing content read from the start is catch-up data, merged exactly.
        await out.put(Announce([str(path) for path in first], live=at_end))
        async with asyncio.TaskGroup() as group:
            while True:
                for path in first:
                    if path not in self._tailed:
                        self._tailed.add(path)
                        group.create_task(
                            self._tail(path, at_end, out), name=f"tail:{self.name}:{path}"
                        )
                if not self.follow:
                    break
                await asyncio.sleep(RESCAN_INTERVAL)
                # Files that appear later are new: read from their start, as live data.
                first, at_end = discover(self.config.paths, self._exclude), False

    async def _tail(self, path: Path, at_end: bool, out: Channel[SourceItem]) -> None:
        tailer = FileTailer(path, self._decoding.lane(str(path)))
        try:
            await tailer.open(at_end)
        except OSError as error:
            log.warning("%s: cannot open: %s", path, error.strerror or error)
            self._tailed.discard(path)
            await out.put(Chunk(str(path), [], live=True, final=True))
            return
        try:
            await self._follow(tailer, LaneOutlet(out, tailer.origin), live=at_end)
        except ChannelClosed:
            pass
        finally:
            await tailer.close()

    async def _follow(self, tailer: FileTailer, outlet: LaneOutlet, live: bool) -> None:
        """Read until the end (``--no-follow``) or forever; at the first end the lane is live."""
        pause = POLL_MIN
        while True:
            records = await tailer.read()
            if records is None:
                if not self.follow:
                    await outlet.send(tailer.decoder.flush(), live=False, final=True)
                    return
                if not live:
                    live = True
                    await outlet.send([], live=True)
                expired = tailer.decoder.expire()  # a multiline record that waited its timeout
                if expired:
                    await outlet.send(expired, live=live)
                await asyncio.sleep(pause)
                pause = min(pause * 2, POLL_MAX)
                continue
            pause = POLL_MIN
            if records:
                await outlet.send(records, live=live)
