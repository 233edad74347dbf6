"""The process's inotify instance on one event loop, shared by the file sources'
``Watcher``s (watch.py): watches by directory, counted and removed with the last source using
them, and the events, read in the loop's reader callback and dispatched by path.

The instance is opened and watches added and removed by the C library's calls
(``inotify_calls``); the events are read from its descriptor here, as the kernel's structs
(``struct``), with no object made per event but the name (bench/README.md, "The live line").
"""

import asyncio
import contextlib
import logging
import os
import sys
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aggregator.flow.gathering import Gathering
from aggregator.sources.file import inotify_calls as calls

if TYPE_CHECKING:
    from aggregator.sources.file.watch import Changed, Watcher

log = logging.getLogger(__name__)

DIRECTORY_EVENTS = (
    calls.MODIFY | calls.CLOSE_WRITE | calls.CREATE | calls.MOVED_TO | calls.MOVED_FROM
    | calls.DELETE | calls.ATTRIB
)  # fmt: skip
NAME_EVENTS = calls.CREATE | calls.MOVED_TO | calls.DELETE | calls.MOVED_FROM
"""Events that change which files a directory holds: the sources watching it rescan."""
LOOK_EVENTS = NAME_EVENTS | calls.ATTRIB
"""Events after which a file's path may name another file, or none: its follower looks."""
IGNORED, OVERFLOW = calls.IGNORED, calls.Q_OVERFLOW
NONBLOCKING = calls.CLOEXEC | calls.NONBLOCK
"""The reader callback reads without waiting; the descriptor is not inherited by children."""
EVENTS_A_READ = 64
"""Room for this many events with a full-length name (17 KB) in one read."""
EVENT = calls.EVENT
READ_SIZE = (EVENT.size + calls.NAME_MAX + 1) * EVENTS_A_READ
FS_ENCODING, FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
"""A name as ``os.fsdecode`` decodes it, without its Python-level call per event."""


class SharedInotify:
    """One inotify instance: its directories (absolute, as ``str``) and who uses them, and the
    events set for each followed path."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.fd = calls.init(NONBLOCKING)
        self._closed = weakref.finalize(self, os.close, self.fd)  # at the latest when dropped
        self.loop = loop
        self.watchers: set[Watcher] = set()
        self.directories: dict[str, int] = {}  # while watched: its watch descriptor
        self._prefixes: dict[int, list[str]] = {}  # watch descriptor → its directories, "/"-ended
        self._users: dict[str, set[Watcher]] = {}  # directory → the watchers using it
        self._paths: dict[str, list[Changed]] = {}  # path → the events it sets
        loop.add_reader(self.fd, self._read)

    def watch_directory(self, directory: str, watcher: "Watcher") -> bool:
        if directory not in self.directories:
            try:
                wd = calls.add_watch(self.fd, directory, DIRECTORY_EVENTS | calls.ONLYDIR)
            except OSError as error:  # not there (yet), no permission, or out of watches
                log.debug("cannot watch %s: %s", directory, error.strerror)
                return False
            self.directories[directory] = wd
            self._prefixes.setdefault(wd, []).append(os.path.join(directory, ""))
        self._users.setdefault(directory, set()).add(watcher)
        return True

    def release_directory(self, directory: str, watcher: "Watcher") -> None:
        users = self._users.get(directory)
        if users is None:
            return
        users.discard(watcher)
        if users:
            return
        del self._users[directory]
        wd = self.directories.pop(directory, None)
        if wd is None:
            return
        prefixes = self._prefixes.get(wd, [])
        with contextlib.suppress(ValueError):
            prefixes.remove(os.path.join(directory, ""))
        if not prefixes:  # no other spelling of that directory is watched
            self._prefixes.pop(wd, None)
            with contextlib.suppress(OSError):  # gone already: its IGNORED is on its way
                calls.rm_watch(self.fd, wd)

    def subscribe(self, path: str, event: "Changed") -> None:
        self._paths.setdefault(path, []).append(event)

    def unsubscribe(self, path: str, event: "Changed") -> None:
        events = self._paths.get(path)
        if events is not None:
            with contextlib.suppress(ValueError):
                events.remove(event)
            if not events:
                del self._paths[path]

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        self._closed()

    def _read(self) -> None:
        """The loop's reader callback: one read of the events, dispatched (while more are
        queued the loop calls again, after its other work: the appends are read here, so a
        writer faster than that must not keep the loop in this callback). Each file's
        appends are read once a read, in one gathering of puts (``flow.gathering``):
        the merge takes all the files' new lines in one step, and writes them as one batch."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as error:  # not expected: poll from now on
            log.warning("inotify failed (%s): polling files instead", error)
            self._lose_all()
            return
        with Gathering():
            for changed in self._dispatch(data):
                changed.appended()

    def _dispatch(self, data: bytes) -> "Iterable[Changed]":
        """Act on the events in ``data``; the followed files written to, each once."""
        paths, prefixes, users = self._paths, self._prefixes, self._users
        unpack, header = EVENT.unpack_from, EVENT.size
        appended: dict[int, Changed] = {}
        end, offset = len(data), 0
        while offset < end:
            wd, mask, _, length = unpack(data, offset)
            start = offset + header
            offset = start + length
            if mask & OVERFLOW:
                self._wake_all()
                continue
            name = data[start:offset].rstrip(b"\0") if length else b""
            for prefix in prefixes.get(wd, ()):
                if mask & IGNORED:  # the directory is gone (or unwatched): poll it
                    self._lost(wd)
                    break
                if mask & NAME_EVENTS:
                    for watcher in users.get(prefix[:-1] or "/", ()):
                        watcher.rescan.set()
                if name:
                    for changed in paths.get(prefix + name.decode(FS_ENCODING, FS_ERRORS), ()):
                        if mask & LOOK_EVENTS:
                            changed.moved()
                        else:
                            appended.setdefault(id(changed), changed)
        return appended.values()

    def _lost(self, wd: int) -> None:
        """A directory no longer watched: its watchers poll, and rescan to watch it again."""
        for prefix in self._prefixes.pop(wd, []):
            directory = prefix[:-1] or "/"
            self.directories.pop(directory, None)
            for watcher in self._users.get(directory, ()):
                watcher.rescan.set()
        for events in self._paths.values():
            for changed in events:
                changed.moved()  # a tailer waiting on it sees it is polled now

    def _lose_all(self) -> None:
        self.loop.remove_reader(self.fd)
        self.directories.clear()
        self._prefixes.clear()
        self._wake_all()

    def _wake_all(self) -> None:
        for watcher in self.watchers:
            watcher.rescan.set()
        for events in self._paths.values():
            for changed in events:
                changed.moved()
