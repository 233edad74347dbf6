"""The floor of a live line in asyncio (issue #27): the least an asyncio follower of files can
do for each line written. One inotify instance on the loop (``add_reader``); at each wake one
read of the events, one ``pread`` of each file written to, one ``write`` to stdout. No
framing, no order, no formats: what ``aggregator tail -n 0 --format raw`` cannot cost less
than while each line is its own wake. ``bench/live_cost.py --floor`` runs it beside the others.

    python3 bench/live_floor.py FILE... [--no-asyncio]

``--no-asyncio`` does the same in a blocking loop (no event loop at all): what the loop's own
wake costs is the difference.
"""

import asyncio
import ctypes
import os
import struct
import sys

IN_MODIFY = 0x2
EVENT = struct.Struct("iIII")  # struct inotify_event without its name


class Files:
    """The followed files, by watch descriptor: each one's descriptor and how far it was read."""

    def __init__(self, paths: list[str]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.inotify = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self.open: dict[int, list[int]] = {}
        for path in paths:
            watch = libc.inotify_add_watch(self.inotify, path.encode(), IN_MODIFY)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self.open[watch] = [fd, os.fstat(fd).st_size]

    def wake(self) -> None:
        """One read of the events; what each file written to has new, written out at once."""
        try:
            data = os.read(self.inotify, 4096)
        except BlockingIOError:
            return
        written, offset = set(), 0
        while offset < len(data):
            watch, _, _, length = EVENT.unpack_from(data, offset)
            offset += EVENT.size + length
            written.add(watch)
        out = []
        for watch in written:
            state = self.open[watch]
            chunk = os.pread(state[0], 65536, state[1])
            state[1] += len(chunk)
            out.append(chunk)
        os.write(1, b"".join(out))


async def follow(files: Files) -> None:
    asyncio.get_running_loop().add_reader(files.inotify, files.wake)
    await asyncio.Event().wait()


def main() -> None:
    paths = [arg for arg in sys.argv[1:] if arg != "--no-asyncio"]
    files = Files(paths)
    if "--no-asyncio" in sys.argv:
        os.set_blocking(files.inotify, True)
        while True:
            files.wake()
    asyncio.run(follow(files))


if __name__ == "__main__":
    main()
