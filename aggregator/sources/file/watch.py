"""Change notification for the file sources: inotify on Linux, polling elsewhere.

One inotify instance per process (per event loop) serves every file source: a source's
``Watcher`` asks it to watch the directories its files are in and to wake it for the paths it
follows. Events are read in the loop's reader callback, without a task of their own, and go to
the watchers of that path only: with eight sources on one directory a line is dispatched once,
not eight times. A path is resolved when it is watched, not on each wake. A change to a file
wakes that file's tailer at once (instead of at its next poll); a file created or moved into a
watched directory wakes the rescans of the sources watching it. When the kernel's event queue
overflows, everyone is woken: a rescan and a read find what the lost events were about. Without
inotify (another OS, or no instances or watches left), watching says False and the callers poll.
"""

import asyncio
import contextlib
import ctypes
import logging
import os
import struct
import weakref
from pathlib import Path

log = logging.getLogger(__name__)

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_Q_OVERFLOW, IN_IGNORED, IN_ONLYDIR = 0x4000, 0x8000, 0x01000000
DIRECTORY_EVENTS = (
    IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB
)
NAME_EVENTS = IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM
"""Events that change which files a directory holds: the sources watching it rescan."""
LOOK_EVENTS = NAME_EVENTS | IN_ATTRIB
"""Events after which a file's path may name another file, or none: its follower looks."""
HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
READ_SIZE = 64 * 1024


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):  # not Linux
        return None
    return libc


_LIBC = _libc()


class Changed(asyncio.Event):
    """Set whenever a followed path changes (or may have); ``names`` counts the changes that
    may have given the path to another file or taken it away (a rename, a deletion, a
    creation), so that a wake for an append need not look at the path."""

    def __init__(self) -> None:
        super().__init__()
        self.names = 0

    def moved(self) -> None:
        self.names += 1
        self.set()


def _key(path: Path | str) -> bytes:
    """A path as the events spell it: absolute, as bytes."""
    return os.fsencode(os.path.abspath(path))


class _Inotify:
    """The process's inotify instance on one event loop: watches by directory, shared by the
    sources (counted, removed with the last of them), and the events, dispatched by path."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _LIBC is not None
        fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self.fd = fd
        self.loop = loop
        self.watchers: set[Watcher] = set()
        self.directories: dict[bytes, int] = {}  # directory → watch descriptor, while watched
        self._prefixes: dict[int, list[bytes]] = {}  # descriptor → its directories, "/"-ended
        self._users: dict[bytes, set[Watcher]] = {}  # directory → the watchers using it
        self._paths: dict[bytes, list[Changed]] = {}  # path → the events it sets
        loop.add_reader(fd, self._read)

    def watch_directory(self, directory: bytes, watcher: "Watcher") -> bool:
        if directory not in self.directories:
            wd = _LIBC.inotify_add_watch(self.fd, directory, DIRECTORY_EVENTS | IN_ONLYDIR)  # type: ignore[union-attr]
            if wd < 0:  # not there (yet), no permission, or out of watches
                log.debug("cannot watch %s: %s", os.fsdecode(directory),
                          os.strerror(ctypes.get_errno()))  # fmt: skip
                return False
            self.directories[directory] = wd
            self._prefixes.setdefault(wd, []).append(os.path.join(directory, b""))
        self._users.setdefault(directory, set()).add(watcher)
        return True

    def release_directory(self, directory: bytes, watcher: "Watcher") -> None:
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
            prefixes.remove(os.path.join(directory, b""))
        if not prefixes:  # no other spelling of that directory is watched
            self._prefixes.pop(wd, None)
            _LIBC.inotify_rm_watch(self.fd, wd)  # type: ignore[union-attr]

    def subscribe(self, path: bytes, event: Changed) -> None:
        self._paths.setdefault(path, []).append(event)

    def unsubscribe(self, path: bytes, event: Changed) -> None:
        events = self._paths.get(path)
        if events is not None:
            with contextlib.suppress(ValueError):
                events.remove(event)
            if not events:
                del self._paths[path]

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def _read(self) -> None:
        """The loop's reader callback: every event read now, dispatched."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as error:  # not expected: poll from now on
            log.warning("inotify failed (%s): polling files instead", error)
            self._lose_all()
            return
        offset, end = 0, len(data)
        paths, prefixes = self._paths, self._prefixes
        while offset < end:
            wd, mask, _, length = HEADER.unpack_from(data, offset)
            offset += HEADER.size
            name = data[offset : offset + length].rstrip(b"\0")
            offset += length
            if mask & IN_Q_OVERFLOW:
                self._wake_all()
                continue
            for prefix in prefixes.get(wd, ()):
                if mask & IN_IGNORED:  # the directory is gone (or unwatched): poll it
                    self._lost(wd)
                    break
                if mask & NAME_EVENTS:
                    for watcher in self._users.get(prefix[:-1] or b"/", ()):
                        watcher.rescan.set()
                if name:
                    for event in paths.get(prefix + name, ()):
                        if mask & LOOK_EVENTS:
                            event.moved()
                        else:
                            event.set()

    def _lost(self, wd: int) -> None:
        """A directory no longer watched: its watchers poll, and rescan to watch it again."""
        for prefix in self._prefixes.pop(wd, []):
            directory = prefix[:-1] or b"/"
            self.directories.pop(directory, None)
            for watcher in self._users.get(directory, ()):
                watcher.rescan.set()
        for events in self._paths.values():
            for event in events:
                event.moved()  # a tailer waiting on it sees it is polled now

    def _lose_all(self) -> None:
        self.loop.remove_reader(self.fd)
        self.directories.clear()
        self._prefixes.clear()
        self._wake_all()

    def _wake_all(self) -> None:
        for watcher in self.watchers:
            watcher.rescan.set()
        for events in self._paths.values():
            for event in events:
                event.moved()


_INSTANCES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inotify]" = (
    weakref.WeakKeyDictionary()
)
_warned = False


def _instance() -> _Inotify | None:
    """The running loop's inotify instance, made on first use; None without inotify."""
    global _warned
    if _LIBC is None:
        return None
    loop = asyncio.get_running_loop()
    instance = _INSTANCES.get(loop)
    if instance is None:
        try:
            instance = _INSTANCES[loop] = _Inotify(loop)
        except OSError as error:
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
        self._subscribed: dict[Path, list[bytes]] = {}  # path → the keys its event is under
        self._directories_of: dict[Path, frozenset[bytes]] = {}  # path → directories it needs
        self._directories: set[bytes] = set()  # what this source asked to watch
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
        target = os.fsencode(os.path.realpath(key))
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

    def _watch(self, directory: bytes) -> bool:
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
