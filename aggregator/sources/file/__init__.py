"""The file source: globs in, one tailer per matching file, lines out (like ``tail -F``).

The parts, each with one job: ``discovery`` says which paths match now; ``identity`` knows a
file whatever its name; a ``FileTailer`` (tailer.py) reads one open file from a position;
``resume`` finds where an earlier run stopped; ``readers`` sees that each file is read by one
reader at a time, whatever names it has; ``Watcher`` (watch.py) is a source's share of the
process's one inotify instance, and wakes tailers and the rescan when files change; a
``Follower`` (follow.py) reads one followed file at each change until it ends, rotates or goes;
``held_back`` keeps track of files rotated away while their reader waits on slow sinks;
``FileSource`` here rescans for new files, owns one task per followed path, and follows each
through rotation. Compressed files (rotated copies) are not read: said once, and skipped.

Rotation: when the path names another file (rename and create, delete and recreate, a symlink
flipped), the old file is read on in a task of its own until it has been quiet for
``rotate_wait``, since its writer may not have reopened yet; the new one is read from its start.
A file truncated in place (copytruncate) is read again from 0, past the NUL bytes a writer
without O_APPEND leaves where the old content was, and its copy from where the reader was. A
file deleted and not recreated is closed after ``rotate_wait``.
"""

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import FileSourceConfig
from aggregator.errors import InputMissing
from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.chunk import Announce, Chunk, SourceItem
from aggregator.parse.decode import Decoding
from aggregator.record.filters import NamePathMatcher
from aggregator.sources import SourceContext
from aggregator.sources.file.discovery import (
    discover,
    fixed_prefix,
    missing_paths,
    split_compressed,
    unmatched_globs,
    why_missing,
)
from aggregator.sources.file.follow import Follower, Outcome
from aggregator.sources.file.held_back import note_replacements
from aggregator.sources.file.identity import Position
from aggregator.sources.file.readers import Readers, watch_stalls
from aggregator.sources.file.resume import resumable, rotated_while_stopped
from aggregator.sources.file.rotated import RotatedFiles
from aggregator.sources.file.state import note_opened, own_positions, take_state
from aggregator.sources.file.tailer import FileTailer
from aggregator.sources.lanes import LaneOutlet
from aggregator.telemetry.metrics import Counters
from aggregator.telemetry.stalls import StallWatch

if TYPE_CHECKING:
    from aggregator.sources.file.watch import Watcher

log = logging.getLogger(__name__)

RESCAN_INTERVAL = 1.0
"""Seconds between rescans of the globs without inotify."""
WATCHED_RESCAN_INTERVAL = 30.0
"""With inotify, a new file in a watched directory triggers a rescan at once; when every
pattern's directory is watched (and none has ``**``), this slow rescan is only a safety net."""


class FileSource:
    """Follows every file that matches the source's globs, the new ones too."""

    def __init__(self, name: str, config: FileSourceConfig, context: SourceContext) -> None:
        self.name = name
        self.config = config
        self.follow = config.follow
        self.rotations = 0
        self._readers = Readers()  # followed and rotated-away files, open now
        self._compressed: set[str] = set()  # paths matched, not read (said once)
        self._started = False  # discovery at start is over: what is found now is new
        self._exclude = NamePathMatcher(config.exclude)
        self.decoding = Decoding(name, config, context.needs, context.parse_pool, context.judged)
        self._positions = take_state(name, config, context)  # where to resume, what to save
        self._tailed: set[str] = set()  # the paths followed, as the glob names them
        # Paths that could not be opened (permission, out of descriptors): warned about once,
        # retried at each rescan, and opened as they would have been the first time.
        self._unopened: dict[Path, bool] = {}
        self._resume: dict[Path, Position] = {}
        # Paths (not globs) that did not exist: reported once, followed once they appear.
        self._missing: dict[Path, str] = {}
        self._current: dict[Path, FileTailer] = {}  # the file each followed path is read in
        self._watcher: Watcher | None = None
        self._group: asyncio.TaskGroup | None = None
        self._stalls = StallWatch(context.stall_after)
        self._rotated = RotatedFiles(name, self._readers, self.decoding, config.rotate_wait,
                                     self._positions, self._tailed)  # fmt: skip
        self._follower = Follower(name, config, self._readers, self._rotated,
                                  keeps_positions=self._positions is not None)  # fmt: skip

    def counters(self) -> Counters:
        """For /metrics: files open, rotations seen, lines truncated, unread bytes per file."""
        unread: dict[str, int] = {}
        for tailer in list(self._readers.open):
            if (size := tailer.size()) is not None:
                behind = max(0, size - tailer.position)
                unread[tailer.origin] = unread.get(tailer.origin, 0) + behind
        return {
            "files_open": sum(not tailer.suspended for tailer in self._readers.open),
            "rotations": self.rotations,
            "lines_truncated": self.decoding.truncated_lines,
            "unread_bytes": unread,
            "files_lost": self._rotated.files_lost,
            "bytes_lost": self._rotated.bytes_lost,
            "stalled": int(bool(self._stalls.stalled)),
        }

    @property
    def live_reads(self) -> int:
        """Appends read in inotify's callback, without a wake of their follower's task."""
        return self._follower.live_reads

    async def open(self) -> None:
        """Nothing to bind: a glob that matches nothing yet is fine, files may come later."""

    async def close(self) -> None:
        """Nothing to release."""

    async def run(self, out: Channel[SourceItem]) -> None:
        if self.follow:
            from aggregator.sources.file.watch import Watcher  # inotify: only to follow

            self._watcher = self._follower.watcher = Watcher()
            # Watched before the first look: a file made after this is reported, one made
            # before is found by that look.
            self._all_watched()
        try:
            await self._run(out)
        finally:  # ended, or removed by a reload: its watches and paths are let go
            if self._watcher is not None:
                self._watcher.close()

    async def _run(self, out: Channel[SourceItem]) -> None:
        # From the end (``last_lines`` before it, like ``tail -n``), or the whole files; without
        # following, the whole files unless last lines were asked for.
        last_lines = self.config.last_lines or 0
        at_end = self.config.start_at == "end" and (
            self.follow or self.config.last_lines is not None
        )
        found = await self._discover()
        self._note_missing(found)
        rotated: dict[Path, Position] = {}
        saved = own_positions(self.config, self._exclude, self._positions)
        if saved and self._positions is not None:
            self._resume = await asyncio.to_thread(resumable, found, saved)
            rotated = await asyncio.to_thread(rotated_while_stopped, saved, self._resume.values())
            for path in [path for path in rotated if path in found]:  # a copy the globs match
                self._resume[path] = rotated.pop(path)
            copies = [p for p in [*rotated.values(), *self._resume.values()] if p.key not in saved]
            self._positions.add([(0, position) for position in copies])  # see keep_copied
        # Existing content read from the start (or from a checkpoint), and the last lines, are
        # catch-up data, merged exactly.
        await out.put(
            Announce(
                [str(path) for path in found if path not in self._resume],
                live=at_end and not last_lines,
                resumed=[str(path) for path in [*self._resume, *rotated]],
            )
        )
        async with asyncio.TaskGroup() as group:
            self._group = self._rotated.group = self._follower.group = group
            if self.follow:
                group.create_task(note_replacements(self._current), name=f"held-back:{self.name}")
                group.create_task(
                    watch_stalls(self.name, self._readers, self._stalls), name=f"stalls:{self.name}"
                )
            for path, position in rotated.items():
                group.create_task(
                    self._rotated.read_rotated(path, position, out),
                    name=f"rotated:{self.name}:{path}",
                )
            while True:
                for path in found:
                    if str(path) not in self._tailed:
                        if self._missing.pop(path, None) is not None:
                            log.info("%s: appeared; following it", path)
                        self._tailed.add(str(path))
                        path_at_end = self._unopened.get(path, at_end)
                        group.create_task(
                            self._tail(path, path_at_end, out), name=f"tail:{self.name}:{path}"
                        )
                if not self.follow:
                    break
                self._started = True
                await self._wait_for_rescan()
                # Files that appear later are new: read from their start, as live data.
                found, at_end = await self._discover(), False
        if self._missing:
            raise InputMissing(", ".join(self._missing.values()))

    async def _discover(self) -> list[Path]:
        """The files to follow that are not followed yet; compressed ones are said once and
        left out (and forgotten once gone, so that a text file of that name is read)."""
        known = self._tailed | self._compressed  # a copy: tasks change these meanwhile
        still, found = await asyncio.to_thread(self._discover_in_thread, known)
        text, compressed = found
        self._compressed &= still
        for path, kind in compressed.items():
            log.warning("%s: compressed (%s), not read as text; skipped", path, kind)
            self._compressed.add(str(path))
        return text

    def _discover_in_thread(
        self, known: set[str]
    ) -> tuple[set[str], tuple[list[Path], dict[Path, str]]]:
        still = {name for name in self._compressed if Path(name).is_file()}
        found = discover(self.config.paths, self._exclude, known)
        return still, split_compressed(found)

    def _note_missing(self, found: list[Path]) -> None:
        """Report each path that is not a glob and is not a file (missing, or a directory),
        and each glob that matches no file, once (SPEC §2): followed, they are read once they
        appear; with ``--no-follow`` a missing path is an error, at the end."""
        self._missing = missing_paths(self.config.paths, found)
        for path, pattern in self._missing.items():
            why = why_missing(path, pattern)
            self._missing[path] = f"{pattern}: {why}"
            if self.follow:
                later = "" if path.is_dir() else "; following it once it appears"
                log.warning("%s: %s%s", pattern, why, later)
            else:
                log.error("%s: %s", pattern, why)
        for pattern in unmatched_globs(self.config.paths, self._exclude, set(found)):
            later = "; following it as files appear" if self.follow else ""
            log.warning("%s: no file matches%s", pattern, later)

    def _all_watched(self) -> bool:
        """Whether inotify reports every new file the globs could match: each pattern's
        directory is watched (a missing one is tried again here) and none has ``**``."""
        assert self._watcher is not None
        watched = [self._watcher.watch_directory(fixed_prefix(p)) for p in self.config.paths]
        return all(watched) and not any("**" in pattern for pattern in self.config.paths)

    async def _wait_for_rescan(self) -> None:
        """Until inotify reports a new file, or the next rescan is due: every
        ``RESCAN_INTERVAL`` while a path could not be opened or does not exist yet (inotify
        says nothing of a chmod that makes a file readable, nor of a directory still missing),
        or where not every pattern's directory is watched; else every
        ``WATCHED_RESCAN_INTERVAL``. Looked at again each ``RESCAN_INTERVAL``: a path fails
        to open in its own task, after this wait began. A directory watched only now (made
        after start, or made again) may hold files made before: rescanned at once."""
        assert self._watcher is not None
        rescan = self._watcher.rescan
        started = time.monotonic()
        while time.monotonic() - started < WATCHED_RESCAN_INTERVAL:
            try:
                async with asyncio.timeout(RESCAN_INTERVAL):
                    await rescan.wait()
                break
            except TimeoutError:
                added = self._watcher.added
                if not self._all_watched() or self._watcher.added != added:
                    break
                if self._unopened or self._missing:
                    break
        rescan.clear()

    def _untail(self, path: Path) -> None:
        """``path``'s reader stopped: a file made there is found by the next rescan. That is
        one now: the rescan the deletion woke may have looked while the path still counted as
        followed, and the next may be ``WATCHED_RESCAN_INTERVAL`` away."""
        self._tailed.discard(str(path))
        if self._watcher is not None:
            self._watcher.rescan.set()

    async def _tail(self, path: Path, at_end: bool, out: Channel[SourceItem]) -> None:
        origin = str(path)
        outlet = LaneOutlet(out, origin)

        def make() -> FileTailer:
            return FileTailer(path, self.decoding.lane(origin))

        async def waiting() -> None:  # read under another name: nothing of its own to wait for
            await outlet.send([], live=True)

        try:
            last_lines = (self.config.last_lines or 0) if at_end else 0
            resume = self._resume.get(path)
            claimed = await self._readers.claim(
                make, at_end, resume, last_lines, fresh=self._started, waiting=waiting
            )
        except OSError as error:
            if path not in self._unopened:
                log.warning("%s: cannot open: %s; retrying", path, error.strerror or error)
            self._unopened[path] = at_end
            self._tailed.discard(str(path))
            await out.put(Chunk(origin, [], live=True, final=True))
            return
        assert claimed is not None
        tailer: FileTailer | None = claimed[0]
        self._rotated.keep_copied(claimed[0])
        self._resume.pop(path, None)
        note_opened(self._positions, claimed[1], claimed[0].checkpoint())
        self._current[path] = claimed[0]
        if self._unopened.pop(path, None) is not None:
            log.info("%s: opened now", path)
        changed = self._watcher.watch(path) if self._watcher is not None else None
        live = at_end and not claimed[1] and not last_lines
        try:
            while tailer is not None:
                outcome = await self._follower.follow(tailer, outlet, live, changed)
                live = True
                if outcome is Outcome.ENDED:
                    return
                if outcome is Outcome.GONE:
                    log.info("%s: deleted; stopped following it", path)
                    await outlet.send(tailer.flush())
                    self._untail(path)
                    return
                self.rotations += 1
                log.info("%s: rotated; reading the old file on for %gs", path,
                         self.config.rotate_wait)  # fmt: skip
                assert self._group is not None
                previous, tailer = tailer, None
                if not previous.suspended or await previous.reopen():
                    self._group.create_task(
                        self._rotated.drain(previous, outlet), name=f"rotated:{self.name}:{path}"
                    )
                else:
                    self._readers.release(previous)  # closed while quiet, and gone since
                try:  # the new file, unless it is read under another name (then after that)
                    claimed = await self._readers.claim(make, waiting=waiting)
                except OSError:  # gone again before we could open it: rediscovered later
                    await self._rotated.read_successors(path, previous, "", outlet)
                    self._untail(path)
                    return
                assert claimed is not None
                tailer = claimed[0]
                self._rotated.keep_copied(tailer)
                self._current[path] = tailer
                await self._rotated.read_successors(path, previous, tailer.key, outlet)
                if self._watcher is not None:
                    changed = self._watcher.watch(path)  # a flipped symlink's new target
        except ChannelClosed:
            pass
        finally:
            if tailer is not None:
                self._readers.release(tailer)
                await tailer.close()
                if self._current.get(path) is tailer:
                    del self._current[path]
            if self._watcher is not None:
                self._watcher.forget(path)
