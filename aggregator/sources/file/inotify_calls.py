"""inotify's three calls, from the C library through ``ctypes``, and its masks as ints
(``<sys/inotify.h>``): what the file sources (``inotify.py``) and the config watch
(``aggregator.reload``) use of it. Events are read from the descriptor by the callers
(``os.read``) and parsed with ``EVENT``.

A library did this before (asyncinotify); its import cost every ``run -c`` about 30 M
instructions, more than this program's whole margin over ``import asyncio``:
``ctypes.util.find_library("c")`` runs ``ldconfig -p`` in a subprocess, and its masks are
``IntFlag`` enums (bench/README.md, "Session 14 (s14start)"). Importing this module raises
``ImportError`` where the C library has no inotify (another OS): the callers then poll.
"""

import ctypes
import os
import struct

ACCESS = 0x00000001
MODIFY = 0x00000002
ATTRIB = 0x00000004
CLOSE_WRITE = 0x00000008
CLOSE_NOWRITE = 0x00000010
OPEN = 0x00000020
MOVED_FROM = 0x00000040
MOVED_TO = 0x00000080
CREATE = 0x00000100
DELETE = 0x00000200
DELETE_SELF = 0x00000400
MOVE_SELF = 0x00000800
UNMOUNT = 0x00002000
Q_OVERFLOW = 0x00004000
IGNORED = 0x00008000
ONLYDIR = 0x01000000
"""Only watch the path if it is a directory (the watch is refused with ENOTDIR otherwise)."""

CLOEXEC = os.O_CLOEXEC
NONBLOCK = os.O_NONBLOCK
"""``inotify_init1``'s flags: ``IN_CLOEXEC`` and ``IN_NONBLOCK`` are these by definition."""

EVENT = struct.Struct("iIII")
"""``struct inotify_event`` without its name: wd, mask, cookie, len (of the name, padded)."""
NAME_MAX = 255

try:
    _libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter is linked with
    _init1 = _libc.inotify_init1
    _add_watch = _libc.inotify_add_watch
    _rm_watch = _libc.inotify_rm_watch
except (OSError, AttributeError) as error:  # no inotify here
    raise ImportError(f"inotify is not in the C library: {error}") from error
_init1.argtypes = (ctypes.c_int,)
_init1.restype = ctypes.c_int
_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
_add_watch.restype = ctypes.c_int
_rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)
_rm_watch.restype = ctypes.c_int


def _error(filename: str | None = None) -> OSError:
    number = ctypes.get_errno()
    if filename is None:
        return OSError(number, os.strerror(number))
    return OSError(number, os.strerror(number), filename)


def init(flags: int) -> int:
    """A new inotify instance's descriptor (``flags``: ``CLOEXEC``, ``NONBLOCK``); OSError when
    none can be made (the user's instances used up)."""
    fd: int = _init1(flags)
    if fd == -1:
        raise _error()
    return fd


def add_watch(fd: int, path: str, mask: int) -> int:
    """Watch ``path`` for the events in ``mask``; its watch descriptor (the same one again for
    a path watched already: the mask is replaced). OSError (with ``path`` as its filename) if
    the path cannot be watched: missing, not readable, not a directory with ``ONLYDIR``, or
    the user's watches used up."""
    wd: int = _add_watch(fd, os.fsencode(path), mask)
    if wd == -1:
        raise _error(path)
    return wd


def rm_watch(fd: int, wd: int) -> None:
    """Stop watch ``wd``: the kernel queues its ``IGNORED`` event. OSError (EINVAL) if it is
    not a watch of ``fd``: gone already with what it watched."""
    if _rm_watch(fd, wd) == -1:
        raise _error()
