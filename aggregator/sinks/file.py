"""The file sink: the stream appended to a file, with size rotation, an fsync policy and
reopening on SIGHUP (for an external logrotate)."""

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from stat import S_ISREG

import aiofiles.os

from aggregator.config import FileSinkConfig
from aggregator.errors import StartupError
from aggregator.sinks import SinkContext
from aggregator.sinks.delivery import DeliveringSink
from aggregator.sinks.encoded import FilteredEncoder
from aggregator.telemetry.metrics import Counters
from aggregator.trouble import Trouble, reason_of

log = logging.getLogger(__name__)

FSYNC_INTERVAL = 1.0
RETRY_MIN, RETRY_MAX = 0.1, 5.0
"""Seconds between attempts to write while writing fails: doubling from the first to the last."""

_fsync_in_thread = aiofiles.os.wrap(os.fsync)


def rotation_cut(data: bytes, room: int) -> int:
    """Where to cut ``data`` so that the first part fits in ``room`` bytes and ends a line.

    0 when not even one whole line fits.
    """
    if len(data) <= room:
        return len(data)
    return data.rfind(b"\n", 0, room) + 1


class FileSink(DeliveringSink):
    """Appends the stream to ``path``; rotates to ``path.1`` … ``path.N`` past ``max_bytes``.

    Faults: a write that fails (disk full, I/O error) is cut back to the last whole line
    written, said on stderr (``Trouble``: once, then a reminder now and then), and retried with
    backoff while the batch is held, so the pipeline waits and ``delivered_seq`` stays behind
    what was not written (checkpoints do not pass it). A file removed, or its directory, is
    created again before the next write; while that fails, the same.
    """

    def __init__(self, name: str, config: FileSinkConfig, context: SinkContext) -> None:
        self.name = name
        self.config = config
        self.path = config.path
        self.rotations = 0
        self.write_errors = 0
        self.encode = FilteredEncoder(
            config.filter,
            config.format,
            context.source_names,
            origin_bases=context.origin_bases,
            judged=context.judged,
        )
        self.needs = self.encode.needs
        self._fd: int | None = None
        self._syncable = True  # a regular file (not a device or a pipe: nothing to sync)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self._size = 0  # bytes in the file, every one of them in a whole line
        self._unsynced = False
        self._synced_at = time.monotonic()
        self._reopen_requested = False
        self._trouble = Trouble(
            log, self.path, "cannot write", "writing again", "holding the records and retrying"
        )

    async def open(self) -> None:
        """Create the file (and its directory) now, so a path that cannot be written stops the
        program before anything starts."""
        try:
            await asyncio.to_thread(self._open_file)
        except OSError as error:
            raise StartupError(
                f"sinks.{self.name}: cannot open {self.path}: {reason_of(error)}"
            ) from error

    def reopen(self) -> None:
        """Close and reopen the file before the next write (SIGHUP)."""
        self._reopen_requested = True

    async def close(self) -> None:
        await self._close_file()

    def counters(self) -> Counters:
        return {"rotations": self.rotations, "write_errors": self.write_errors}

    async def write(self, data: bytes) -> None:
        pending = [data]  # what of the batch is not written yet
        await self._retrying(functools.partial(self._write, pending))

    def quiet_for(self) -> float | None:
        """Unsynced data is synced once it has waited the fsync interval."""
        if not (self._unsynced and self.config.fsync == "interval"):
            return None
        return max(0.0, self._synced_at + FSYNC_INTERVAL - time.monotonic())

    async def when_quiet(self) -> None:
        await self._retrying(self._fsync)

    async def _retrying(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Run ``attempt`` until it succeeds, backing off while it fails with an OSError."""
        delay = RETRY_MIN
        while True:
            try:
                await attempt()
            except OSError as error:
                self.write_errors += 1
                self._trouble.failed(reason_of(error))
                await self._close_file(quiet=True)  # the next attempt opens the path again
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            self._trouble.succeeded()
            return

    async def _write(self, pending: list[bytes]) -> None:
        """Write ``pending[0]`` (whole lines), taking off each part once it is written: a
        failed attempt leaves what is left, for the next."""
        if self._reopen_requested:
            self._reopen_requested = False
            await self._close_file()
        if self._fd is not None and not self._still_at_path():
            # Removed, or its directory (else the lines would go to a file nobody can see), or
            # renamed by a logrotate whose SIGHUP has not come yet: the same answer.
            log.warning("%s: no longer the file being written (removed or renamed); opening "
                        "it again", self.path)  # fmt: skip
            await self._close_file(quiet=True)
        if self._fd is None:
            await asyncio.to_thread(self._open_file)
        rotate = self.config.rotate
        while pending[0]:
            data = pending[0]
            if rotate is None:
                part = data
            else:
                cut = rotation_cut(data, rotate.max_bytes - self._size)
                if cut == 0 and self._size > 0:
                    await self._rotate()
                    continue
                part = data[: cut or data.find(b"\n") + 1 or len(data)]  # one line > the limit
            await asyncio.to_thread(self._append, part)
            pending[0] = data[len(part) :]
        self._unsynced = True
        if self.config.fsync == "always" or (
            self.config.fsync == "interval" and time.monotonic() - self._synced_at >= FSYNC_INTERVAL
        ):
            await self._fsync()

    def _append(self, part: bytes) -> None:
        """Write all of ``part`` (in a thread); on an error, cut the file back to where it
        was, so that it never ends in part of a line."""
        assert self._fd is not None
        fd, view, written = self._fd, memoryview(part), 0
        try:
            while written < len(part):
                written += os.write(fd, view[written:])
        except OSError:
            if written:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
            raise
        self._size += len(part)

    def _still_at_path(self) -> bool:
        """Whether the path still names the open file (not removed, nor its directory)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        return (stat.st_dev, stat.st_ino) == self._identity

    async def _rotate(self) -> None:
        assert self.config.rotate is not None
        await self._close_file()
        keep = self.config.rotate.keep
        # Several renames in one thread hop: asyncio's own.
        await asyncio.to_thread(_shift_rotated, self.path, keep)
        self.rotations += 1
        await asyncio.to_thread(self._open_file)

    async def _fsync(self) -> None:
        if self._fd is not None and self._unsynced and self._syncable:
            await _fsync_in_thread(self._fd)
        self._unsynced = False
        self._synced_at = time.monotonic()

    def _open_file(self) -> None:
        """Open (creating it and its directory) for appending; in a thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        stat = os.fstat(fd)
        self._fd, self._identity, self._size = fd, (stat.st_dev, stat.st_ino), stat.st_size
        # A device or a pipe (`-o /dev/null`) cannot be synced: fsync fails with EINVAL there.
        self._syncable = S_ISREG(stat.st_mode)

    async def _close_file(self, quiet: bool = False) -> None:
        """Close the file, fsynced unless ``fsync = "never"``; ``quiet``: after an error, an
        fsync that fails too is not reported again."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            if self.config.fsync != "never" and self._unsynced and self._syncable:
                await _fsync_in_thread(fd)
                self._unsynced = False
        except OSError as error:
            if not quiet:
                log.error("%s: cannot sync: %s", self.path, reason_of(error))
        finally:
            os.close(fd)


def _shift_rotated(path: Path, keep: int) -> None:
    """``path`` → ``path.1``, ``path.1`` → ``path.2`` …, dropping what goes past ``path.keep``."""
    oldest = path.with_name(f"{path.name}.{keep}")
    oldest.unlink(missing_ok=True)
    for index in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.rename(path.with_name(f"{path.name}.{index + 1}"))
    if path.exists():
        path.rename(path.with_name(f"{path.name}.1"))
