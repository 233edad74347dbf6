"""Checkpoints: where each file was read to, kept in ``state_dir`` across restarts.

A file is known by its identity, not its path (a rotated file keeps its identity, a new file at
the same path gets its own): device and inode, plus a hash of its first bytes (up to
``HEAD_BYTES``, re-checked as the file grows), so that an inode reused by a new file is not
taken for the old one. The offset stored is just past the last complete line delivered: a
partial line is read again after a restart and becomes one record.

The file is written to a temporary file, fsynced and renamed over the old one, so a crash
leaves the old checkpoint or the new one, never half of one. Its format is versioned.
"""

import asyncio
import hashlib
import logging
import os
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
HEAD_BYTES = 256
FILE_NAME = "checkpoints.json"


def head_hash(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Position:
    """How far one file has been read: its identity and the offset after its last line."""

    key: str  # "DEV:INODE"
    path: str
    offset: int
    head_length: int
    head_hash: str

    def matches(self, head: bytes) -> bool:
        """Whether ``head`` (the file's first bytes now) is the file this position is of."""
        return (
            len(head) >= self.head_length and head_hash(head[: self.head_length]) == self.head_hash
        )


def identity_key(stat: os.stat_result) -> str:
    return f"{stat.st_dev}:{stat.st_ino}"


def read_head(fd: int) -> bytes:
    """The first bytes of an open file (without moving its offset)."""
    return os.pread(fd, HEAD_BYTES, 0)


class CheckpointStore:
    """The checkpoint file in a state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME

    def load(self) -> dict[str, Position]:
        """The positions saved last; an unreadable file is reported and treated as empty."""
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as error:
            log.error("%s: cannot read the checkpoints (%s); starting without them", self.path,
                      error)  # fmt: skip
            return {}
        try:
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
            return {key: Position(key=key, **entry) for key, entry in data["files"].items()}
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            log.error("%s: the checkpoints are not in a known format (%s); starting without them",
                      self.path, error)  # fmt: skip
            return {}

    def save(self, positions: dict[str, Position]) -> None:
        """Write ``positions`` atomically: temporary file, fsync, rename, fsync the directory."""
        files = {}
        for key, position in positions.items():
            entry = asdict(position)
            del entry["key"]
            files[key] = entry
        data = orjson.dumps({"version": FORMAT_VERSION, "files": files})
        temporary = self.path.with_name(f".{FILE_NAME}.tmp")
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class Checkpointer:
    """Commits file positions once every sink has written the records before them.

    The merge reports (seq, position) as chunks leave it; the sinks report the last seq they
    wrote and flushed. A position is committed when the lowest of those seqs reaches its own.
    """

    def __init__(self, store: CheckpointStore, positions: dict[str, Position]) -> None:
        self.store = store
        self.positions = dict(positions)
        self._marks: deque[tuple[int, Position]] = deque()
        self._changed = False

    def add(self, marks: list[tuple[int, object]]) -> None:
        """Positions waiting for their seq to be delivered, in seq order."""
        for seq, position in marks:
            assert isinstance(position, Position)
            self._marks.append((seq, position))

    def advance(self, delivered: int) -> None:
        """Every record up to seq ``delivered`` has been written by every sink."""
        marks = self._marks
        while marks and marks[0][0] <= delivered:
            _, position = marks.popleft()
            self.positions[position.key] = position
            self._changed = True

    async def save(self) -> None:
        """Write the positions if they changed (in a thread: fsync can take a while)."""
        if not self._changed:
            return
        self._changed = False
        try:
            await asyncio.to_thread(self._save_current)
        except BaseException:
            self._changed = True  # not saved (an error, or cancelled): the next save retries
            raise

    def _save_current(self) -> None:
        # Files gone from where they were read (deleted, or rotated past their rotate_wait) are
        # dropped, so the checkpoint stays small when thousands of files come and go.
        current = {}
        for key, position in self.positions.items():
            try:
                stat = os.stat(position.path)
            except OSError:
                continue
            if identity_key(stat) == key:
                current[key] = position
        self.positions = current
        self.store.save(current)
