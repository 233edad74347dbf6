"""inotify's calls through the C library (``inotify_calls``): the instance's flags, a watch's
events and errors as the kernel gives them."""

import errno
import fcntl
import os
import select
from pathlib import Path

import pytest

from aggregator.sources.file import inotify_calls as calls
from aggregator.sources.file.inotify import NONBLOCKING, SharedInotify


def events(fd: int) -> list[tuple[int, int, str]]:
    """The events queued on ``fd`` (waiting up to a second for the first): wd, mask, name."""
    assert select.select([fd], [], [], 1.0)[0], "no event"
    data = os.read(fd, 4096)
    found, offset = [], 0
    while offset < len(data):
        wd, mask, _, length = calls.EVENT.unpack_from(data, offset)
        start = offset + calls.EVENT.size
        offset = start + length
        found.append((wd, mask, os.fsdecode(data[start:offset].rstrip(b"\0"))))
    return found


def test_the_shared_instance_is_non_blocking_and_not_inherited() -> None:
    """The file sources' instance: a read finds nothing without waiting, and a child
    process does not get the descriptor."""
    fd = calls.init(NONBLOCKING)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
        with pytest.raises(BlockingIOError):
            os.read(fd, 4096)
    finally:
        os.close(fd)
    fd = calls.init(0)
    try:
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
        assert not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        os.close(fd)


def test_a_watch_reports_its_directory_s_events_by_name(tmp_path: Path) -> None:
    """A created, written, renamed and deleted file, each with its mask and name; the watch
    removed, its IGNORED comes."""
    fd = calls.init(NONBLOCKING)
    try:
        mask = calls.CREATE | calls.MODIFY | calls.MOVED_FROM | calls.MOVED_TO | calls.DELETE
        wd = calls.add_watch(fd, str(tmp_path), mask | calls.ONLYDIR)
        assert calls.add_watch(fd, str(tmp_path), mask) == wd  # the same directory: the same wd
        path = tmp_path / "é.log"
        with path.open("w") as file:
            file.write("a line\n")
        path.rename(tmp_path / "b.log")
        (tmp_path / "b.log").unlink()
        seen = []
        while len(seen) < 5:
            seen += events(fd)
        assert seen == [
            (wd, calls.CREATE, "é.log"),
            (wd, calls.MODIFY, "é.log"),
            (wd, calls.MOVED_FROM, "é.log"),
            (wd, calls.MOVED_TO, "b.log"),
            (wd, calls.DELETE, "b.log"),
        ]
        calls.rm_watch(fd, wd)
        assert events(fd) == [(wd, calls.IGNORED, "")]
    finally:
        os.close(fd)


def test_errors_are_os_errors_with_the_kernel_s_number(tmp_path: Path) -> None:
    """A missing path, a file with ONLYDIR, a watch removed twice: OSError with errno and
    message (and the path, for a watch), as the callers catch and log them."""
    fd = calls.init(NONBLOCKING)
    try:
        missing = str(tmp_path / "missing")
        with pytest.raises(OSError) as raised:
            calls.add_watch(fd, missing, calls.CREATE)
        assert (raised.value.errno, raised.value.filename) == (errno.ENOENT, missing)
        assert raised.value.strerror == os.strerror(errno.ENOENT)
        (tmp_path / "file").write_text("")
        with pytest.raises(NotADirectoryError):
            calls.add_watch(fd, str(tmp_path / "file"), calls.CREATE | calls.ONLYDIR)
        assert calls.add_watch(fd, str(tmp_path / "file"), calls.MODIFY) > 0  # without ONLYDIR
        wd = calls.add_watch(fd, str(tmp_path), calls.CREATE)
        calls.rm_watch(fd, wd)
        with pytest.raises(OSError) as raised:
            calls.rm_watch(fd, wd)
        assert raised.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    with pytest.raises(OSError) as raised:
        calls.init(-1)  # flags it does not know
    assert raised.value.errno == errno.EINVAL


async def test_the_shared_instance_closes_its_descriptor_once() -> None:
    """``close`` closes the descriptor; dropped unclosed, it is closed all the same."""
    import asyncio
    import gc

    loop = asyncio.get_running_loop()
    shared = SharedInotify(loop)
    fd = shared.fd
    shared.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    shared.close()  # a second close does nothing (the number may name another file by now)
    dropped = SharedInotify(loop)
    fd = dropped.fd
    loop.remove_reader(fd)
    del dropped
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
