"""Change notification for the file sources: inotify on Linux, polling elsewhere.

One inotify instance per process (per event loop: ``SharedInotify`` in inotify.py, on the C
library's calls in inotify_calls.py) serves every file source: a source's ``Watcher`` asks it
to watch the directories its files are in and to wake it for the paths it follows. Events are
read in the loop's reader callback, without a task of their own, and go to the watchers of that
path only: with eight sources on one directory a line is dispatched once, not eight times. A path is
resolved when it is watched, not on each wake. A change to a file wakes that file's tailer at
once (instead of at its next poll); a file created or moved into a watched directory wakes the
rescans of the sources watching it. When the kernel's event queue overflows, everyone is woken:
a rescan and a read find what the lost events were about. Without inotify (another OS, or no
instances or watches left), watching says False and the callers poll.
"""

import asyncio
import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.sources.file.inotify import SharedInotify

log = logging.getLogger(__name__)


class Changed(asyncio.Event):
    """Set whenever a followed path changes (or may have); ``names`` counts the changes that
    may have given the path to another file or taken it away (a rename, a deletion, a
    creation), so that a wake for an append need not look at the path."""

    def __init__(self) -> None:
        super().__init__()
        self.names = 0
        self.reader: Callable[[], bool] | None = None
        """While its follower waits with nothing else to do (``wait_reading``): reads what
        was appended, in inotify's callback; False where it could not (the follower is woken)."""

    def moved(self) -> None:
        self.names += 1
        self.set()

    def appended(self) -> None:
        """The file was written to: read here if its follower waits idle, else wake it."""
        reader = self.reader
        if reader is None or self.is_set() or not reader():
            self.set()

    async def wait_reading(self, reader: Callable[[], bool]) -> None:
        """``wait``, while ``reader`` reads appends where it can (``appended``): a live line
        then costs no wake of the follower's task (bench/README.md, "Session 11 (s11live)")."""
        self.reader = reader
        try:
            await self.wait()
        finally:
            self.reader = None


def _key(path: Path | str) -> str:
    """A path as the events spell it: absolute."""
    return os.path.abspath(path)


_INSTANCES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedInotify]" = (
    weakref.WeakKeyDictionary()
)
_warned = False


def _instance() -> "SharedInotify | None":
    """The running loop's inotify instance, made on first use; None without inotify."""
    global _warned
    loop = asyncio.get_running_loop()
    instance = _INSTANCES.get(loop)
    if instance is None:
        try:
            from aggregator.sources.file.inotify import SharedInotify
        except ImportError:  # no inotify in the C library: not Linux
            return None
        try:
            instance = _INSTANCES[loop] = SharedInotify(loop)
        except OSError as error:  # no instances left
            if not _warned:
                log.warning("inotify is not available (%s): polling files instead", error)
                _warned = True
            return None
    return instance


class Watcher:
    """One source's view of the shared inotify instance: wakes its tailers and its rescan
    when files change, and lets go of everything it watched once closed."""

    def __init__(self) -> None:
        self.rescan = asyncio.Event()
        self._inotify = _instance()
        if self._inotify is not None:
            self._inotify.watchers.add(self)
        self._changed: dict[Path, Changed] = {}
        self._subscribed: dict[Path, list[str]] = {}  # path → the keys its event is under
        self._directories_of: dict[Path, frozenset[str]] = {}  # path → directories it needs
        self._directories: set[str] = set()  # what this source asked to watch
        self._closed = False
        self.added = 0
        """Directories watched so far, counted each time one is watched anew (after it was
        made, or made again): files may have been made in it before."""

    def watch(self, path: Path) -> Changed:
        """The event set whenever ``path`` changes (or may have). For a symlink, changes to its
        target are reported in the target's directory: that is watched too. Call it again after
        a rotation, so that a flipped symlink's new target is watched."""
        event = self._changed.setdefault(path, Changed())
        key = _key(path)
        keys = [key]
        target = os.path.realpath(key)
        if target != key:
            keys.append(target)
        for old in self._subscribed.pop(path, []):
            if self._inotify is not None:
                self._inotify.unsubscribe(old, event)
        self._subscribed[path] = keys
        directories = frozenset(os.path.dirname(k) for k in keys)
        self._directories_of[path] = directories
        if self._inotify is not None and not self._closed:
            for k in keys:
                self._inotify.subscribe(k, event)
            for directory in directories:
                self._watch(directory)
        return event

    def is_watched(self, path: Path) -> bool:
        """Whether changes to ``path`` (as last given to ``watch``) are reported, else it must
        be polled: its directory and its target's are watched now."""
        if self._inotify is None:
            return False
        directories = self._directories_of.get(path)
        return directories is not None and self._inotify.directories.keys() >= directories

    def forget(self, path: Path) -> None:
        """``path`` is no longer followed: its event is set no more."""
        event = self._changed.pop(path, None)
        self._directories_of.pop(path, None)
        for key in self._subscribed.pop(path, []):
            if self._inotify is not None and event is not None:
                self._inotify.unsubscribe(key, event)

    def watch_directory(self, directory: Path) -> bool:
        """Report files created in (or moved into) ``directory``; idempotent. Whether it is
        watched (it may not exist yet, or the kernel's watches may have run out)."""
        return self._watch(_key(directory))

    def _watch(self, directory: str) -> bool:
        if self._inotify is None or self._closed:
            return False
        if directory in self._directories and directory in self._inotify.directories:
            return True
        if not self._inotify.watch_directory(directory, self):
            return False
        self._directories.add(directory)
        self.added += 1
        return True

    def close(self) -> None:
        """Let go of every watch and path of this source (it ended, or a reload removed it);
        the instance is closed with the last source."""
        if self._closed:
            return
        self._closed = True
        for path in list(self._changed):
            self.forget(path)
        inotify = self._inotify
        if inotify is None:
            return
        for directory in self._directories:
            inotify.release_directory(directory, self)
        self._directories.clear()
        inotify.watchers.discard(self)
        if not inotify.watchers and _INSTANCES.get(inotify.loop) is inotify:
            del _INSTANCES[inotify.loop]
            inotify.close()
