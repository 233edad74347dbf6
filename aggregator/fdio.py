"""Whole reads and writes on a blocking file descriptor.

A read or write may do less than asked: a pipe write blocked on a full pipe returns short
when the process is stopped and continued (``kill -STOP``, a debugger or profiler attaching,
a frozen container). These go on until it is all done; Python's buffered writer, on 3.11,
lost the rest of a reply that way.
"""

import os


def write_all(fd: int, data: bytes) -> None:
    """Every byte of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_exact(fd: int, size: int) -> bytearray | None:
    """``size`` bytes from ``fd``; None if it ends first (the writer closed it)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        count = os.readv(fd, [view[done:]])
        if count == 0:
            return None
        done += count
    return buffer
