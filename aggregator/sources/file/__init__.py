"""The file source: globs in, one tailer per matching file, lines out (like ``tail -F``).

The parts, each with one job: ``discover`` says which paths match now; a ``FileTailer`` follows
one open file (position, truncation); ``FileSource`` rescans for new files, owns one task per
followed path, and handles rotation; ``Watcher`` (watch.py) wakes them when files change.

Rotation: when the path names another file (rename and create, delete and recreate, a symlink
flipped), the old file is read on in a task of its own until it has been quiet for
``rotate_wait``, since its writer may not have reopened yet; the new one is read from its start.
A file truncated in place (copytruncate) is read again from 0, past the NUL bytes a writer
without O_APPEND leaves where the old content was. A file deleted and not recreated is closed
after ``rotate_wait``.
"""

import asyncio
import glob
import logging
import os
import stat as stat_module
import time
from collections.abc import Container, Iterable
from enum import Enum
from pathlib import Path

import aiofiles.os

from aggregator.config import FileSourceConfig
from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.checkpoints import HEAD_BYTES, Position, head_hash, identity_key, read_head
from aggregator.flow.chunk import Announce, Chunk, SourceItem
from aggregator.flow.filters import NamePathMatcher
from aggregator.flow.record import Batch
from aggregator.parse.decode import Decoding, LaneDecoder
from aggregator.sources import LaneOutlet
from aggregator.sources.file.watch import Watcher

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
"""Bytes per catch-up read: large enough that catch-up moves in big batches, one thread hop each."""
SMALL_READ = 64 * 1024
"""Up to this much new data is read on the event loop: a live append is in the page cache, so
the read takes about a microsecond, where a hop to a thread takes a few hundred."""

_pread_in_thread = aiofiles.os.wrap(os.pread)
_open_in_thread = aiofiles.os.wrap(os.open)  # an open can block on a slow filesystem

TAIL_CHECK = 16
"""The last bytes read are remembered and checked before each read: a file truncated and
written again past the position (copytruncate, then a quick writer) shows as changed bytes
there, where comparing sizes would see nothing."""

RESCAN_INTERVAL = 1.0
"""Seconds between rescans of the globs without inotify."""
WATCHED_RESCAN_INTERVAL = 30.0
"""With inotify, a new file in a watched directory triggers a rescan at once; when every
pattern's directory is watched (and none has ``**``), this slow rescan is only a safety net."""
POLL_MIN, POLL_MAX = 0.01, 0.25
"""Unwatched files: seconds between looks at a quiet file, backing off while it stays quiet."""
ROTATED_POLL = 0.05
"""Seconds between looks at a rotated-away file (its new name is not watched)."""


def discover(
    patterns: list[str], exclude: NamePathMatcher, known: Container[str] = frozenset()
) -> list[Path]:
    """The regular files that match ``patterns`` (``**`` allowed) and no ``exclude`` pattern,
    but those in ``known`` (names as the glob gives them): with thousands of files followed, a
    rescan then costs a glob, not a stat per file."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        pattern = os.path.normpath(os.path.expanduser(pattern))  # as Path will spell it
        for name in sorted(glob.glob(pattern, recursive=True)):
            if name in known:
                continue
            path = Path(name)
            if exclude and exclude.matches(path.name, str(path)):
                continue
            if path.is_file():
                found.setdefault(path)
    return list(found)


def files_by_identity(directory: Path) -> dict[str, Path]:
    """The regular files in ``directory`` by identity ("DEV:INODE"): where a file known by its
    identity went when it was renamed. Empty when the directory cannot be read."""
    found: dict[str, Path] = {}
    try:
        entries = list(directory.iterdir())
    except OSError:
        return found
    for entry in entries:
        try:
            stat = entry.stat()
        except OSError:
            continue
        if stat_module.S_ISREG(stat.st_mode):
            found.setdefault(identity_key(stat), entry)
    return found


class FileTailer:
    """Reads one open file from a position onwards."""

    def __init__(self, path: Path, decoder: LaneDecoder) -> None:
        self.path = path
        self.origin = str(path)
        self.position = 0
        self.decoder = decoder
        self._fd: int | None = None
        self._key = ""  # the open file's identity ("DEV:INODE"), once opened
        self._head = b""
        self._tail = b""  # the last bytes read, just before ``position``
        self._skip_nul = False

    async def open(self, at_end: bool, resume: Position | None = None) -> bool:
        """Open the file at its end or its start, or, when ``resume`` is a saved position of
        this inode, where it says: from its offset if the first bytes are still the same and
        the file no shorter, else from 0 (truncated and rewritten, or a new file on a reused
        inode: either way all of it is unread). True when a saved position applied."""
        # A bare descriptor: reads are positional (pread), and a file object would be waste.
        fd = self._fd = await _open_in_thread(self.path, os.O_RDONLY | os.O_CLOEXEC)
        stat = os.fstat(fd)
        self._key = identity_key(stat)
        self._head = read_head(fd)
        resumed = resume is not None and resume.key == self._key
        if resume is not None and resumed:
            same = resume.matches(self._head) and resume.offset <= stat.st_size
            if not same:
                log.info("%s: changed while stopped, reading it from the start", self.path)
            self.position = resume.offset if same else 0
        else:
            self.position = stat.st_size if at_end else 0
        start = max(0, self.position - TAIL_CHECK)
        self._tail = os.pread(fd, self.position - start, start)
        return resumed

    @property
    def suspended(self) -> bool:
        """Closed while quiet (``suspend``); ``reopen`` before reading."""
        return self._fd is None and bool(self._key)

    async def suspend(self) -> None:
        """Close the descriptor of a quiet file; its position and identity are kept."""
        await self.close()

    async def reopen(self) -> bool:
        """Open a suspended file again, by its identity: at its path or, renamed meanwhile,
        under another name in its directory. False when it is nowhere (deleted)."""
        key = self._key
        assert key
        candidate: Path | None = self.path
        try:
            if identity_key(self.path.stat()) != key:
                candidate = None
        except OSError:
            candidate = None
        if candidate is None:  # renamed meanwhile: only then is the directory looked through
            candidate = files_by_identity(self.path.parent).get(key)
        if candidate is None:
            return False
        try:
            self._fd = await _open_in_thread(candidate, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        if identity_key(os.fstat(self._fd)) == key:
            return True
        await self.close()  # replaced between the look and the open
        return False

    def checkpoint(self) -> Position | None:
        """Where a restart should resume: just past the last complete line given out. None
        while a multiline record is held (its start is not known here)."""
        if not self._key or self.decoder.holds_record:
            return None
        return Position(
            self._key,
            self.origin,
            self.position - self.decoder.pending_bytes,
            len(self._head),
            head_hash(self._head),
        )

    async def close(self) -> None:
        """Close the descriptor (closing a file already read from takes microseconds)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def read(self) -> Batch | None:
        """Records from what was appended; None when nothing was (the caller waits)."""
        assert self._fd is not None
        fd = self._fd
        available = os.fstat(fd).st_size - self.position
        if available < 0 or self._rewritten(fd):
            log.info("%s: truncated, reading again from the start", self.path)
            self.position = 0
            self._tail = b""
            self._head = b""  # the identity's first bytes are new too: read again as it refills
            self._skip_nul = True
            return []
        if available == 0:
            return None
        if available <= SMALL_READ:
            data = os.pread(fd, available, self.position)
        else:
            data = await _pread_in_thread(fd, READ_CHUNK, self.position)
        if data:
            self.position += len(data)
            tail = data if len(data) >= TAIL_CHECK else self._tail + data
            self._tail = tail[-TAIL_CHECK:]
            if len(self._head) < HEAD_BYTES:  # the identity grows with a small file
                self._head = read_head(fd)
            if self._skip_nul:
                stripped = data.lstrip(b"\x00")
                self._skip_nul = not stripped
                data = stripped
            return await self.decoder.decode(data) if data else []
        return None

    def _rewritten(self, fd: int) -> bool:
        """Whether the bytes just before the position are no longer those read there."""
        if not self._tail:
            return False
        return os.pread(fd, len(self._tail), self.position - len(self._tail)) != self._tail

    def size(self) -> int | None:
        """The open file's size now; None once closed."""
        return os.fstat(self._fd).st_size if self._fd is not None else None

    def replaced(self) -> bool:
        """Whether the path now names another file (rotation, recreation, a symlink flip)."""
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return identity_key(stat) != self._key

    def missing(self) -> bool:
        return not self.path.exists()


class Outcome(Enum):
    """Why following a file stopped."""

    ENDED = "ended"  # read through (--no-follow)
    REPLACED = "replaced"  # the path names another file now
    GONE = "gone"  # deleted, and not recreated within rotate_wait


class FileSource:
    """Follows every file that matches the source's globs, the new ones too."""

    def __init__(self, name: str, config: FileSourceConfig, *, follow: bool = True) -> None:
        self.name = name
        self.config = config
        self.follow = follow and config.follow
        self.rotations = 0
        self._open: set[FileTailer] = set()  # followed and rotated-away files, open now
        self._exclude = NamePathMatcher(config.exclude)
        self.decoding = Decoding(name, config)
        self._tailed: set[str] = set()  # the paths followed, as the glob names them
        # Paths that could not be opened (permission, out of descriptors): warned about once,
        # retried at each rescan, and opened as they would have been the first time.
        self._unopened: dict[Path, bool] = {}
        self.checkpoints: dict[str, Position] = {}
        """Positions saved by an earlier run, by file identity (set by the pipeline)."""
        self._resume: dict[Path, Position] = {}
        self._watcher: Watcher | None = None
        self._group: asyncio.TaskGroup | None = None

    def counters(self) -> dict[str, object]:
        """For /metrics: files open, rotations seen, lines truncated, unread bytes per file."""
        unread: dict[str, int] = {}
        for tailer in list(self._open):
            size = tailer.size()
            if size is not None:
                unread[tailer.origin] = unread.get(tailer.origin, 0) + max(
                    0, size - tailer.position
                )
        return {
            "files_open": sum(not tailer.suspended for tailer in self._open),
            "rotations": self.rotations,
            "lines_truncated": self.decoding.truncated_lines,
            "unread_bytes": unread,
        }

    async def open(self) -> None:
        """Nothing to bind: a glob that matches nothing yet is fine, files may come later."""

    async def close(self) -> None:
        """Nothing to release."""

    async def run(self, out: Channel[SourceItem]) -> None:
        at_end = self.config.start_at == "end" and self.follow
        found = discover(self.config.paths, self._exclude)
        rotated: dict[Path, Position] = {}
        if self.checkpoints:
            self._resume = await asyncio.to_thread(self._resumable, found)
            rotated = await asyncio.to_thread(self._rotated_while_stopped, self._resume.values())
        # Existing content read from the start (or from a checkpoint) is catch-up data, merged
        # exactly.
        await out.put(
            Announce(
                [str(path) for path in found if path not in self._resume],
                live=at_end,
                resumed=[str(path) for path in [*self._resume, *rotated]],
            )
        )
        async with asyncio.TaskGroup() as group:
            self._group = group
            if self.follow:
                self._watcher = Watcher()
                group.create_task(self._watcher.run(), name=f"watch:{self.name}")
            for path, position in rotated.items():
                group.create_task(
                    self._read_rotated(path, position, out), name=f"rotated:{self.name}:{path}"
                )
            while True:
                for path in found:
                    if str(path) not in self._tailed:
                        self._tailed.add(str(path))
                        path_at_end = self._unopened.get(path, at_end)
                        group.create_task(
                            self._tail(path, path_at_end, out), name=f"tail:{self.name}:{path}"
                        )
                if not self.follow:
                    break
                await self._wait_for_rescan()
                # Files that appear later are new: read from their start, as live data.
                found, at_end = discover(self.config.paths, self._exclude, self._tailed), False

    def _all_watched(self) -> bool:
        """Whether inotify reports every new file the globs could match: each pattern's
        directory is watched (a missing one is tried again here) and none has ``**``."""
        assert self._watcher is not None
        watched = [self._watcher.watch_directory(_fixed_prefix(p)) for p in self.config.paths]
        return all(watched) and not any("**" in pattern for pattern in self.config.paths)

    def _resumable(self, paths: list[Path]) -> dict[Path, Position]:
        """The files a saved position applies to (by inode; ``FileTailer.open`` checks the rest)."""
        resume = {}
        for path in paths:
            try:
                position = self.checkpoints.get(identity_key(path.stat()))
            except OSError:
                continue
            if position is not None:
                resume[path] = position
        return resume

    def _rotated_while_stopped(self, resumed: Iterable[Position]) -> dict[Path, Position]:
        """Saved positions of files renamed while the program was stopped, by their new path:
        the same inode in the directory they were in, with something not read yet (past the
        offset, or anything if the first bytes changed: ``FileTailer.open`` reads it from 0)."""
        taken = {position.key for position in resumed}
        indexes: dict[Path, dict[str, Path]] = {}  # each directory is listed once
        found: dict[Path, Position] = {}
        for position in self.checkpoints.values():
            if position.key in taken:
                continue
            directory = Path(position.path).parent
            if directory not in indexes:
                indexes[directory] = files_by_identity(directory)
            candidate = indexes[directory].get(position.key)
            if candidate is None:
                continue
            try:
                with candidate.open("rb") as file:
                    same = position.matches(read_head(file.fileno()))
                    size = os.fstat(file.fileno()).st_size
            except OSError:
                continue
            if not same or size > position.offset:
                found[candidate] = position
        return found

    async def _read_rotated(self, path: Path, position: Position, out: Channel[SourceItem]) -> None:
        """Read a file rotated away while stopped from its saved offset to its end."""
        origin = str(path)
        outlet = LaneOutlet(out, origin)
        tailer = FileTailer(path, self.decoding.lane(origin))
        try:
            await tailer.open(at_end=False, resume=position)
        except OSError as error:
            log.warning("%s: cannot open: %s", path, error.strerror or error)
            await outlet.send([], final=True)
            return
        log.info("%s: rotated while stopped; reading what was not read yet", path)
        self._open.add(tailer)
        await self._drain_rotated(tailer, outlet, live=False, final=True)

    async def _wait_for_rescan(self) -> None:
        assert self._watcher is not None
        rescan = self._watcher.rescan
        interval = WATCHED_RESCAN_INTERVAL if self._all_watched() else RESCAN_INTERVAL
        try:
            async with asyncio.timeout(interval):
                await rescan.wait()
        except TimeoutError:
            pass
        rescan.clear()

    async def _tail(self, path: Path, at_end: bool, out: Channel[SourceItem]) -> None:
        origin = str(path)
        outlet = LaneOutlet(out, origin)
        tailer = FileTailer(path, self.decoding.lane(origin))
        try:
            resumed = await tailer.open(at_end, self._resume.get(path))
        except OSError as error:
            if path not in self._unopened:
                log.warning("%s: cannot open: %s; retrying", path, error.strerror or error)
            self._unopened[path] = at_end
            self._tailed.discard(str(path))
            await out.put(Chunk(origin, [], live=True, final=True))
            return
        self._resume.pop(path, None)
        self._open.add(tailer)
        if self._unopened.pop(path, None) is not None:
            log.info("%s: opened now", path)
        changed = self._watcher.watch(path) if self._watcher is not None else None
        live = at_end and not resumed
        try:
            while True:
                outcome = await self._follow(tailer, outlet, live, changed)
                live = True
                if outcome is Outcome.ENDED:
                    return
                if outcome is Outcome.GONE:
                    log.info("%s: deleted; stopped following it", path)
                    await outlet.send(tailer.decoder.flush())
                    self._tailed.discard(str(path))
                    return
                self.rotations += 1
                log.info("%s: rotated; reading the old file on for %gs", path,
                         self.config.rotate_wait)  # fmt: skip
                assert self._group is not None
                if not tailer.suspended or await tailer.reopen():
                    self._group.create_task(
                        self._drain_rotated(tailer, outlet), name=f"rotated:{self.name}:{path}"
                    )
                else:
                    self._open.discard(tailer)  # closed while quiet, and gone since
                tailer = FileTailer(path, self.decoding.lane(origin))
                try:
                    await tailer.open(at_end=False)
                except OSError:  # gone again before we could open it: rediscovered later
                    self._tailed.discard(str(path))
                    return
                self._open.add(tailer)
                if self._watcher is not None:
                    changed = self._watcher.watch(path)  # a flipped symlink's new target
        except ChannelClosed:
            pass
        finally:
            await tailer.close()
            self._open.discard(tailer)
            if self._watcher is not None:
                self._watcher.forget(path)

    async def _follow(
        self, tailer: FileTailer, outlet: LaneOutlet, live: bool, changed: asyncio.Event | None
    ) -> Outcome:
        """Read until the end (``--no-follow``), a rotation, or a deletion."""
        pause = POLL_MIN
        missing_since: float | None = None
        last_data = time.monotonic()
        while True:
            if changed is not None:
                changed.clear()  # before reading: a change after this wakes the wait below
            records = await tailer.read()
            if records is not None:
                pause, missing_since, last_data = POLL_MIN, None, time.monotonic()
                if records:
                    await outlet.send(records, live=live, position=tailer.checkpoint())
                continue
            if not self.follow:
                final = tailer.decoder.flush()
                await outlet.send(final, live=False, final=True, position=tailer.checkpoint())
                return Outcome.ENDED
            if not live:  # read through what existed: from now on the lane is live
                live = True
                await outlet.send([], live=True)
            expired = tailer.decoder.expire()  # a multiline record that waited its timeout
            if expired:
                await outlet.send(expired, live=live, position=tailer.checkpoint())
            if tailer.replaced():
                return Outcome.REPLACED
            if tailer.missing():
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since >= self.config.rotate_wait:
                    return Outcome.GONE
            deadlines = [tailer.decoder.deadline]
            if missing_since is not None:  # nothing may ever change again: bound the wait
                deadlines.append(missing_since + self.config.rotate_wait)
            watched = self._watcher is not None and self._watcher.is_watched(tailer.path)
            close_idle = self.config.close_idle
            if watched and close_idle and not tailer.suspended:
                if time.monotonic() - last_data >= close_idle:
                    await tailer.suspend()  # a change wakes it: no descriptor needed meanwhile
                else:
                    deadlines.append(last_data + close_idle)  # wake to close it
            deadline = min((d for d in deadlines if d is not None), default=None)
            await self._wait_for_change(changed if watched else None, pause, deadline)
            if tailer.suspended and not await tailer.reopen():
                log.info("%s: deleted while closed; stopped following it", tailer.path)
                return Outcome.GONE
            pause = min(pause * 2, POLL_MAX)

    async def _wait_for_change(
        self, changed: asyncio.Event | None, pause: float, deadline: float | None
    ) -> None:
        """Until the file changes (``changed``: it is watched) or, unwatched, a poll's pause
        ends; a multiline record's deadline cuts either short."""
        wait = None if changed is not None else pause
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            wait = left if wait is None else min(wait, left)
        if changed is None:
            await asyncio.sleep(wait or 0.0)
            return
        try:
            async with asyncio.timeout(wait):
                await changed.wait()
        except TimeoutError:
            pass

    async def _drain_rotated(
        self, tailer: FileTailer, outlet: LaneOutlet, live: bool = True, final: bool = False
    ) -> None:
        """Read a rotated-away file on until it has been quiet for ``rotate_wait``, then give
        its partial last line and close it. ``final`` ends its lane (one of its own)."""
        quiet_since = time.monotonic()
        try:
            while True:
                records = await tailer.read()
                if records:
                    await outlet.send(records, live=live, position=tailer.checkpoint())
                    quiet_since = time.monotonic()
                elif records is None:
                    if not live or time.monotonic() - quiet_since >= self.config.rotate_wait:
                        break  # existing data: read to its end, no need to wait
                    await asyncio.sleep(ROTATED_POLL)
            await outlet.send(tailer.decoder.flush(), live=live, final=final)
        except ChannelClosed:
            pass
        finally:
            await tailer.close()
            self._open.discard(tailer)


def _fixed_prefix(pattern: str) -> Path:
    """The directory part of a glob before its first wildcard: what can be watched."""
    parts = []
    for part in Path(os.path.expanduser(pattern)).parts[:-1]:
        if any(char in part for char in "*?["):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")
