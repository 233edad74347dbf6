"""The file sink: the stream appended to a file, with size rotation, an fsync policy and
reopening on SIGHUP (for an external logrotate)."""

import asyncio
import logging
import os
import time
from pathlib import Path

import aiofiles
import aiofiles.os
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from aggregator.config import FileSinkConfig
from aggregator.errors import StartupError
from aggregator.flow.channel import Channel, EndOfStream
from aggregator.flow.record import Batch
from aggregator.metrics import Counters
from aggregator.sinks import Sink, SinkContext
from aggregator.sinks.encoded import FilteredEncoder, needs_of

log = logging.getLogger(__name__)

FSYNC_INTERVAL = 1.0

_fsync_in_thread = aiofiles.os.wrap(os.fsync)


def rotation_cut(data: bytes, room: int) -> int:
    """Where to cut ``data`` so that the first part fits in ``room`` bytes and ends a line.

    0 when not even one whole line fits.
    """
    if len(data) <= room:
        return len(data)
    return data.rfind(b"\n", 0, room) + 1


class FileSink(Sink):
    """Appends the stream to ``path``; rotates to ``path.1`` … ``path.N`` past ``max_bytes``."""

    def __init__(self, name: str, config: FileSinkConfig, context: SinkContext) -> None:
        self.name = name
        self.config = config
        self.path = config.path
        self.records_out = 0
        self.rotations = 0
        self.delivered_seq = 0  # the last seq written and flushed (checkpoints wait for it)
        self.gone = False
        self.needs = needs_of(config.format, config.filter)
        self._encode = FilteredEncoder(
            config.filter, config.format, context.source_names, origin_bases=context.origin_bases
        )
        self._file: AsyncBufferedIOBase | None = None
        self._size = 0
        self._unsynced = False
        self._synced_at = time.monotonic()
        self._reopen_requested = False

    async def open(self) -> None:
        """Create the file (and its directory) now, so a path that cannot be written stops the
        program before anything starts."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            await self._open_file()
        except OSError as error:
            raise StartupError(
                f"sinks.{self.name}: cannot open {self.path}: {error.strerror or error}"
            ) from error

    def reopen(self) -> None:
        """Close and reopen the file before the next write (SIGHUP)."""
        self._reopen_requested = True

    async def close(self) -> None:
        await self._close_file()

    def counters(self) -> Counters:
        return {"rotations": self.rotations}

    async def run(self, inp: Channel[Batch]) -> None:
        try:
            while True:
                try:
                    batch = await self._next_batch(inp)
                except EndOfStream:
                    return
                if batch is None:  # quiet for the fsync interval
                    await self._fsync()
                    continue
                encoded = self._encode(batch)
                if encoded is None:
                    self.delivered_seq = batch[-1].seq
                    continue
                if self._reopen_requested:
                    self._reopen_requested = False
                    await self._close_file()
                    await self._open_file()
                await self._write(encoded[0])
                self.records_out += encoded[1]
                self.delivered_seq = batch[-1].seq
        finally:
            await self._close_file()

    async def _next_batch(self, inp: Channel[Batch]) -> Batch | None:
        """The next batch; None when unsynced data has waited the fsync interval."""
        if not (self._unsynced and self.config.fsync == "interval"):
            return await inp.get()
        wait = max(0.0, self._synced_at + FSYNC_INTERVAL - time.monotonic())
        try:
            async with asyncio.timeout(wait):
                return await inp.get()
        except TimeoutError:
            return None

    async def _write(self, data: bytes) -> None:
        assert self._file is not None
        rotate = self.config.rotate
        while data:
            if rotate is None:
                part, data = data, b""
            else:
                cut = rotation_cut(data, rotate.max_bytes - self._size)
                if cut == 0 and self._size > 0:
                    await self._rotate()
                    continue
                cut = cut or data.find(b"\n") + 1 or len(data)  # one line larger than the limit
                part, data = data[:cut], data[cut:]
            await self._file.write(part)
            self._size += len(part)
        await self._file.flush()
        self._unsynced = True
        if self.config.fsync == "always" or (
            self.config.fsync == "interval" and time.monotonic() - self._synced_at >= FSYNC_INTERVAL
        ):
            await self._fsync()

    async def _rotate(self) -> None:
        assert self.config.rotate is not None
        await self._close_file()
        keep = self.config.rotate.keep
        # Several renames in one thread hop (aiofiles would take one each): asyncio's own.
        await asyncio.to_thread(_shift_rotated, self.path, keep)
        self.rotations += 1
        await self._open_file()

    async def _fsync(self) -> None:
        if self._file is not None and self._unsynced:
            await _fsync_in_thread(self._file.fileno())
        self._unsynced = False
        self._synced_at = time.monotonic()

    async def _open_file(self) -> None:
        self._file = await aiofiles.open(self.path, "ab")
        self._size = os.fstat(self._file.fileno()).st_size

    async def _close_file(self) -> None:
        if self._file is None:
            return
        await self._file.flush()
        if self.config.fsync != "never":
            await self._fsync()
        await self._file.close()
        self._file = None


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
