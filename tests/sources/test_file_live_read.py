"""A live append read in inotify's callback while its follower waits idle (issue #27): lines
arrive in order and once, and whatever the callback cannot do (a truncation, a rotation, a
deletion, a large read, a follower busy) its follower still does. Real files, the real
pipeline (file source → merge → file sink), in-process."""

import os
from pathlib import Path

from aggregator.sources.file import FileSource
from tests.conftest import wait_until
from tests.sources.test_file_model import World


class Following(World):
    """The model test's pipeline (file source from the start, into a file sink), with its
    source at hand; its file kept open while quiet, since a closed file is read by the
    follower's task, not in the callback, however slow the machine."""

    close_idle = "1h"

    @property
    def source(self) -> FileSource:
        assert self.pipeline is not None
        source = self.pipeline.source_slots["app"].source
        assert isinstance(source, FileSource)
        return source

    async def __aenter__(self) -> "Following":
        await self.start()  # its marker line "g0 0" is out
        return self

    async def __aexit__(self, *_: object) -> None:
        self.writer.close()
        await self.stop()

    async def arrived(self, lines: list[str]) -> None:
        """Until exactly the marker and ``lines`` have come out, in that order."""
        want = ["g0 0", *lines]
        await wait_until(lambda: len(self.delivered()) >= len(want), f"{len(want)} lines out")
        assert self.delivered() == want


def append(path: Path, *lines: str) -> None:
    """One write() a line, as applications write."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        for line in lines:
            os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


async def test_live_lines_are_read_in_the_callback_in_order(tmp_path: Path) -> None:
    """Lines written one by one while the follower waits go out in order, each once, read in
    inotify's callback (no wake of the follower's task)."""
    async with Following(tmp_path) as following:
        written: list[str] = []
        for n in range(20):
            written.append(f"line {n}")
            append(following.log, written[-1])
            await following.arrived(written)
        assert following.source.live_reads >= 10  # some may be read by the task's own look


async def test_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    """Part of a line read in the callback is held until the rest comes."""
    async with Following(tmp_path) as following:
        with following.log.open("a") as file:
            file.write("first ha")
        await wait_until(lambda: following.source.live_reads >= 1, "the part read")
        append(following.log, "lf", "second")
        await following.arrived(["first half", "second"])


async def test_a_truncation_is_seen_by_the_follower(tmp_path: Path) -> None:
    """A file truncated in place, rewritten shorter and then longer than what was read: the
    callback leaves it to the follower, which reads it again from the start."""
    async with Following(tmp_path) as following:
        append(following.log, "a long first line before the truncation")
        await following.arrived(["a long first line before the truncation"])
        os.truncate(following.log, 0)
        append(following.log, "short")
        await following.arrived(["a long first line before the truncation", "short"])
        os.truncate(following.log, 0)  # and written again past where it was read
        append(following.log, "x" * 80, "after")
        await following.arrived(
            ["a long first line before the truncation", "short", "x" * 80, "after"]
        )


async def test_rotation_and_deletion_while_idle(tmp_path: Path) -> None:
    """Renamed away (the writer still appends to the old file) and a new file made at the
    path; then that one deleted: every line comes out, and the deleted file is let go."""
    async with Following(tmp_path) as following:
        append(following.log, "one")
        await following.arrived(["one"])
        old = os.open(following.log, os.O_WRONLY | os.O_APPEND)
        following.log.rename(tmp_path / "app.log.1")
        os.write(old, b"two\n")  # to the file rotated away
        following.log.write_text("")
        await wait_until(lambda: following.source.rotations == 1, "the rotation seen")
        os.write(old, b"three\n")
        os.close(old)
        append(following.log, "four")
        await wait_until(lambda: len(following.delivered()) >= 5, "5 lines out")
        out = following.delivered()
        assert sorted(out) == ["four", "g0 0", "one", "three", "two"]
        assert out.index("two") < out.index("three")
        following.log.unlink()
        gone = f"{following.log} (deleted)"
        await wait_until(lambda: gone not in open_files(), "the deleted file closed")
        append(following.log, "five")  # a new file at the path: followed
        await wait_until(lambda: "five" in following.delivered(), "the new file read")


def open_files() -> list[str]:
    """What this process's descriptors name (the pipeline runs in it)."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return names


async def test_a_large_write_and_a_busy_follower(tmp_path: Path) -> None:
    """More than the callback reads at once goes to the follower's task; lines written while
    it is busy with it (the callback leaves them to it) follow in order."""
    async with Following(tmp_path) as following:
        burst = [f"burst {n} " + "y" * 100 for n in range(2000)]  # ~220 KB: beyond one read
        with following.log.open("a") as file:
            file.write("".join(f"{line}\n" for line in burst))
        after = [f"after {n}" for n in range(20)]
        append(following.log, *after)
        await following.arrived([*burst, *after])
