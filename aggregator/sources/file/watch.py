"""Change notification for the file source: inotify on Linux, polling elsewhere.

One ``Watcher`` per file source watches the directories its files are in. A change to a file
wakes that file's tailer at once (instead of at its next poll); a file created or moved into a
watched directory wakes the source's rescan. When the kernel's event queue overflows, everyone
is woken: a rescan and a read find what the lost events were about. Without inotify (another
OS, or no watches left), ``available`` is False and the callers poll as before.
"""

import asyncio
import contextlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

try:
    from asyncinotify import Inotify, Mask, Watch
except ImportError:  # not Linux
    Inotify = None  # type: ignore[assignment, misc]

_DIRECTORY_EVENTS = (
    "MODIFY", "CLOSE_WRITE", "CREATE", "MOVED_TO", "MOVED_FROM", "DELETE", "ATTRIB",
)  # fmt: skip


class Watcher:
    """Wakes tailers and the rescan when files change."""

    def __init__(self) -> None:
        self.rescan = asyncio.Event()
        self._changed: dict[Path, asyncio.Event] = {}
        self._directories: dict[Path, Watch] = {}
        self._inotify: Inotify | None = None
        if Inotify is not None:
            try:
                self._inotify = Inotify()
            except OSError as error:
                log.warning("inotify is not available (%s): polling files instead", error)

    def watch(self, path: Path) -> asyncio.Event:
        """The event set whenever ``path`` changes (or may have). For a symlink, changes to its
        target are reported in the target's directory: that is watched too. Call it again after
        a rotation, so that a flipped symlink's new target is watched."""
        path = path.absolute()
        event = self._changed.setdefault(path, asyncio.Event())
        self.watch_directory(path.parent)
        target = path.resolve()
        if target != path:
            self._changed[target] = event
            self.watch_directory(target.parent)
        return event

    def is_watched(self, path: Path) -> bool:
        """Whether changes to ``path`` are reported (else it must be polled)."""
        path = path.absolute()
        return path.parent in self._directories and path.resolve().parent in self._directories

    def forget(self, path: Path) -> None:
        path = path.absolute()
        event = self._changed.pop(path, None)
        for key in [key for key, value in self._changed.items() if value is event]:
            del self._changed[key]

    def watch_directory(self, directory: Path) -> bool:
        """Report files created in (or moved into) ``directory``; idempotent. Whether it is
        watched (it may not exist yet, or the kernel's watches may have run out)."""
        directory = directory.absolute()
        if self._inotify is None:
            return False
        if directory in self._directories:
            return True
        mask = Mask(0)
        for name in _DIRECTORY_EVENTS:
            mask |= Mask[name]
        try:
            self._directories[directory] = self._inotify.add_watch(directory, mask | Mask.ONLYDIR)
        except OSError as error:  # not there (yet), no permission, or out of watches
            log.debug("cannot watch %s: %s", directory, error)
            return False
        return True

    async def run(self) -> None:
        """Dispatch events until cancelled."""
        if self._inotify is None:
            return
        try:
            async for event in self._inotify:
                if event.mask & Mask.Q_OVERFLOW:
                    self._wake_all()
                    continue
                if event.mask & Mask.IGNORED and event.watch is not None:
                    self._directories.pop(event.watch.path.absolute(), None)
                    continue
                if event.mask & (Mask.CREATE | Mask.MOVED_TO | Mask.DELETE | Mask.MOVED_FROM):
                    self.rescan.set()
                path = event.path
                changed = self._changed.get(path.absolute()) if path is not None else None
                if changed is not None:
                    changed.set()
        finally:
            with contextlib.suppress(OSError):
                self._inotify.close()

    def _wake_all(self) -> None:
        self.rescan.set()
        for event in self._changed.values():
            event.set()
