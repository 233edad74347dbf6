"""One reader per file, whatever names it has: which ``FileTailer`` reads which file, and
where the next reader of a file goes on.

A file is read by one tailer at a time, known by its identity (``identity.py``), not its
path. A path that names a file already being read — a rotated file found under its new name by
a glob that also matches the rotated names, a symlink and its target — waits until that reader
lets go (a rotated file is read on for ``rotate_wait``), then goes on where it stopped: never
from 0 again. A file that begins like one truncated in place is the copy copytruncate made: it
is read from where the original had been read to when it was truncated. One that begins like a
file still being read, not truncated yet, waits for that.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn

from aggregator.sources.file.identity import COPY_HEAD_BYTES, Position, identity_key
from aggregator.sources.file.tailer import FileTailer
from aggregator.telemetry.stalls import Progress, StallWatch

if TYPE_CHECKING:
    from aggregator.flow.checkpoints import Checkpointer

log = logging.getLogger(__name__)

KEPT = 4096
"""Positions of files let go (and of content truncated away) kept, the oldest forgotten first:
what bounds the memory of a source that sees thousands of files come and go."""
SETTLE = 0.2
"""Seconds a file that may be a copy being written must keep its size before it is judged."""
RECHECK = 1.0
"""Seconds a path waiting for another reader looks again anyway (it may name another file)."""


class Readers:
    """The files a source reads now, by identity, and where their readers let go."""

    def __init__(self) -> None:
        self.open: set[FileTailer] = set()
        """Followed and rotated-away files being read (some suspended: closed while quiet)."""
        self._by_key: dict[str, FileTailer] = {}
        self._let_go: dict[str, Position] = {}  # where readers stopped, by identity
        self._copied: deque[Position] = deque(maxlen=KEPT)  # content truncated away
        self._changed = asyncio.Event()

    def hold(self, tailer: FileTailer) -> None:
        """``tailer`` reads its file from now on (the file is open, so its identity known)."""
        self.open.add(tailer)
        self._by_key[tailer.key] = tailer

    def release(self, tailer: FileTailer) -> None:
        """``tailer`` stops reading (before it is closed): a reader of the same file found
        under another name goes on from its position (unless the file was deleted)."""
        self.open.discard(tailer)
        if self._by_key.get(tailer.key) is tailer:
            del self._by_key[tailer.key]
            position = tailer.checkpoint()
            if position is not None and not tailer.deleted():
                self._let_go.pop(tailer.key, None)
                self._let_go[tailer.key] = position
                if len(self._let_go) > KEPT:
                    del self._let_go[next(iter(self._let_go))]
        self._wake()

    def truncated(self, position: Position) -> None:
        """A file was truncated in place after being read to ``position``: a file beginning
        with the same bytes, found from now on, is its copy and is read from there."""
        self._copied.append(position)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def claim(
        self,
        make: Callable[[], FileTailer],
        at_end: bool = False,
        resume: Position | None = None,
        last_lines: int = 0,
        *,
        fresh: bool = True,
        waiting: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[FileTailer, bool] | None:
        """Open a file (``make()``'s, by its path) for this reader and hold it; also whether
        it goes on from an earlier position (``resume``, or where another reader let go).

        A file another reader has (or, when ``fresh``, a copy of a file not truncated yet) is
        waited for: ``waiting`` is called once first; without it, None. ``OSError`` if the
        file cannot be opened."""
        waited = False
        while True:
            tailer = make()
            resumed = await tailer.open(at_end, resume, last_lines)
            if fresh:
                await self._settle(tailer)
            if tailer.key not in self._by_key and not (fresh and self._copy_of_open(tailer)):
                if not resumed and (earlier := self._earlier(tailer)) is not None:
                    resumed = tailer.resume_at(earlier)
                self.hold(tailer)
                return tailer, resumed
            changed = self._changed  # before any await: a change meanwhile is not missed
            await tailer.close()
            if waiting is None:
                return None
            if not waited:
                waited = True
                await waiting()
            while not changed.is_set() and self._still_waiting(tailer):
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK):
                        await changed.wait()

    def _still_waiting(self, tailer: FileTailer) -> bool:
        """Whether the path still names the file another reader has, or the copy of one
        (a stat, not an open: a symlink and its target may wait on each other for long)."""
        try:
            key = identity_key(tailer.path.stat())
        except OSError:
            return False
        return key == tailer.key and (key in self._by_key or self._copy_of_open(tailer))

    def _earlier(self, tailer: FileTailer) -> Position | None:
        """Where an earlier reader of this file, or of the file it is a copy of, stopped."""
        position = self._let_go.pop(tailer.key, None)
        if position is not None:
            return position
        size = tailer.size() or 0
        for copied in reversed(self._copied):
            if (
                copied.key != tailer.key
                and copied.is_copied_in(tailer.head)
                and size >= copied.offset
            ):
                tailer.continues = copied
                return copied.moved(tailer.key, tailer.origin)
        return None

    async def _settle(self, tailer: FileTailer) -> None:
        """While the file may be a copy being made, until its first bytes say (or it keeps
        its size for ``SETTLE``; ``10 * SETTLE`` at most)."""
        size, since, start = -1, time.monotonic(), time.monotonic()
        while self._may_be_a_copy_being_made(tailer):
            now = time.monotonic()
            if now - since >= SETTLE or now - start >= 10 * SETTLE:
                return
            await asyncio.sleep(SETTLE / 8)
            if (current := tailer.size()) != size:
                size, since = current or 0, time.monotonic()
            tailer.refresh_head()

    def _may_be_a_copy_being_made(self, tailer: FileTailer) -> bool:
        """Whether the file is too short to tell yet and begins like a file being read: a
        copy may have been caught just created (copytruncate), before its first bytes."""
        head = tailer.head
        if len(head) >= COPY_HEAD_BYTES:
            return False
        return any(
            other.key != tailer.key
            and len(other.head) >= COPY_HEAD_BYTES
            and other.head.startswith(head)
            and other.path.parent == tailer.path.parent
            for other in self.open
        )

    def _copy_of_open(self, tailer: FileTailer) -> bool:
        """Whether the file begins like another one being read (it is its copy, made just
        before that one is truncated: read once the truncation is seen, from there)."""
        head = tailer.head
        for other in self.open:
            common = min(len(head), len(other.head))
            if (
                other.key != tailer.key
                and common >= COPY_HEAD_BYTES
                and head[:common] == other.head[:common]
            ):
                return True
        return False


def keep_copied(checkpointer: "Checkpointer[Position]", tailer: FileTailer) -> None:
    """A copy read from where its original was read to (``tailer.continues``) may have nothing
    more, and so no records to carry its position to the checkpoint: a restart would read it
    from 0. Its position goes after every position already handed back by the merge (those of
    the original's last records, as a rule: they were sent before the truncation was seen)."""
    if tailer.continues is not None and (position := tailer.checkpoint()) is not None:
        checkpointer.add([(0, position)])


async def watch_stalls(source: str, readers: Readers, watch: StallWatch) -> NoReturn:
    """Name the files that grow while their reader does not move (SPEC §8), and why."""
    while True:
        await asyncio.sleep(min(1.0, watch.stall_after / 4))
        seen = []
        for tailer in list(readers.open):
            size = tailer.size()
            if size is not None:
                held = tailer.sending_since is not None
                seen.append(Progress(tailer.origin, tailer.position, size > tailer.position, held))
        for change in watch.observe(time.monotonic(), seen):
            if change.reason is None:
                log.info("source %s: %s: reading again", source, change.what)
            else:
                log.warning("source %s: %s has grown for %gs while its reader has not moved: %s",
                            source, change.what, watch.stall_after, change.reason)  # fmt: skip
