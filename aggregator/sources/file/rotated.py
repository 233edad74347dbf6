"""Files rotated away: read on where they are now until quiet, under their old name's lane.

A file renamed while followed is read on for ``rotate_wait`` (its writer may not have reopened
yet); one rotated while the program was stopped is read from its saved offset to its end; the
copy copytruncate made is read from where the original had been read to; files that came and
went at a path while its reader was held back are read late, or counted as lost (``held_back``).
"""

import asyncio
import logging
import time
from collections.abc import Container, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.chunk import SourceItem
from aggregator.parse.decode import Decoding
from aggregator.sources.file.held_back import open_successors
from aggregator.sources.file.identity import Position, files_by_identity
from aggregator.sources.file.readers import Readers, keep_copied
from aggregator.sources.file.resume import find_copy
from aggregator.sources.file.tailer import FileTailer
from aggregator.sources.lanes import LaneOutlet

if TYPE_CHECKING:
    from aggregator.flow.checkpoints import Checkpointer

log = logging.getLogger(__name__)

ROTATED_POLL = 0.05
"""Seconds between looks at a rotated-away file (its new name is not watched)."""


class RotatedFiles:
    """Reads the files of one source that were rotated away, each in a task of its own."""

    def __init__(
        self,
        name: str,
        readers: Readers,
        decoding: Decoding,
        rotate_wait: float,
        checkpoints: "Checkpointer[Position] | None",
        tailed: Container[str],
    ) -> None:
        self.name = name
        self._readers = readers
        self.decoding = decoding
        self.rotate_wait = rotate_wait
        self._checkpoints = checkpoints
        self._tailed = tailed  # the paths the source follows, as its globs name them
        self.group: asyncio.TaskGroup | None = None
        """Where the reading tasks run (the source's, once it runs)."""
        self.files_lost = 0  # rotated away and deleted before they were read
        self.bytes_lost = 0

    def _start(self, reading: Coroutine[Any, Any, None], name: str) -> None:
        assert self.group is not None
        self.group.create_task(reading, name=name)

    async def read_successors(
        self,
        path: Path,
        previous: FileTailer,
        current: str,
        outlet: LaneOutlet,
    ) -> None:
        """After a rotation, read the files that were at ``path`` between ``previous`` and the
        ``current`` one, or count and report them as lost (``held_back``)."""
        found, lost = await open_successors(path, previous, current, self._tailed, self.decoding)
        for size in lost:
            self.files_lost += 1
            self.bytes_lost += size
            log.warning("%s: a file that was there was rotated away and deleted before it "
                        "could be read: %d bytes lost", path, size)  # fmt: skip
        for tailer in found:
            if tailer.key in {other.key for other in self._readers.open}:
                await tailer.close()  # read already, under another name
                continue
            log.info("%s: reading %s, rotated away before it was read", path, tailer.path)
            self._readers.hold(tailer)
            self._start(self.drain(tailer, outlet), f"rotated:{self.name}:{tailer.path}")

    def keep_copied(self, tailer: FileTailer) -> None:
        """See ``readers.keep_copied``."""
        if self._checkpoints is not None:
            keep_copied(self._checkpoints, tailer)

    async def read_rotated(self, path: Path, position: Position, out: Channel[SourceItem]) -> None:
        """Read a file rotated away while stopped from its saved offset to its end."""
        origin = str(path)
        outlet = LaneOutlet(out, origin)
        try:
            claimed = await self._readers.claim(
                lambda: FileTailer(path, self.decoding.lane(origin)), resume=position, fresh=False
            )
        except OSError as error:
            log.warning("%s: cannot open: %s", path, error.strerror or error)
            claimed = None
        if claimed is None:  # or read under another name
            await outlet.send([], final=True)
            return
        log.info("%s: rotated while stopped; reading what was not read yet", path)
        await self.drain(claimed[0], outlet, live=False, final=True)

    async def read_copy(self, tailer: FileTailer, copied: Position, outlet: LaneOutlet) -> None:
        """A file was truncated in place (copytruncate): read the rest of what it held before
        (past where it was read to, ``copied``) in its copy, if that is in its directory and no
        glob of the source follows it (then its own reader does)."""
        directory = tailer.path.parent
        files = await asyncio.to_thread(files_by_identity, directory)
        copy = await asyncio.to_thread(find_copy, files, copied, {tailer.key})
        if copy is None:
            return
        path = Path(copy.path)
        try:
            claimed = await self._readers.claim(
                lambda: FileTailer(path, self.decoding.lane(tailer.origin)), fresh=False
            )
        except OSError:
            claimed = None
        if claimed is not None:
            log.info("%s: truncated; reading the rest of its old content in %s", tailer.path,
                     path)  # fmt: skip
            self.keep_copied(claimed[0])
            await self.drain(claimed[0], outlet)

    async def drain(
        self, tailer: FileTailer, outlet: LaneOutlet, live: bool = True, final: bool = False
    ) -> None:
        """Read a rotated-away file on until it has been quiet for ``rotate_wait``, then give
        its partial last line and close it. ``final`` ends its lane (one of its own)."""
        quiet_since = time.monotonic()
        try:
            while True:
                read = await tailer.read()
                if read.records:
                    await outlet.send(read.records, live=live, position=tailer.checkpoint())
                    quiet_since = time.monotonic()
                elif not read.moved:
                    if not live or time.monotonic() - quiet_since >= self.rotate_wait:
                        break  # existing data: read to its end, no need to wait
                    await asyncio.sleep(ROTATED_POLL)
            await outlet.send(tailer.flush(), live=live, final=final)
        except ChannelClosed:
            pass
        finally:
            self._readers.release(tailer)
            await tailer.close()
