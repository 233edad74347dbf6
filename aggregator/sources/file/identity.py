"""A file's identity, independent of its path: what rotation and restarts recognise it by.

A file is known by device and inode plus a hash of its first bytes (up to ``HEAD_BYTES``,
re-checked as the file grows), so that an inode reused by a new file is not taken for the old
one. A rotated file keeps its identity; a new file at the same path gets its own.
"""

import hashlib
import os
import stat as stat_module
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

HEAD_BYTES = 256


def head_hash(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=8).hexdigest()


def identity_key(stat: os.stat_result) -> str:
    """``DEV:INODE``."""
    return f"{stat.st_dev}:{stat.st_ino}"


def read_head(fd: int) -> bytes:
    """The first bytes of an open file (without moving its offset)."""
    return os.pread(fd, HEAD_BYTES, 0)


@dataclass(frozen=True, slots=True)
class Position:
    """How far one file has been read: its identity and the offset after its last line."""

    key: str  # "DEV:INODE"
    path: str
    offset: int
    head_length: int
    head_hash: str
    lane: str = ""
    """Where the file's records began to be counted (``Record.lane``); "" before that."""
    records: int = 0
    """The file's records before ``offset``, counted from where ``lane`` began."""
    book: ClassVar[str] = "files"

    def matches(self, head: bytes) -> bool:
        """Whether ``head`` (the file's first bytes now) is the file this position is of."""
        return (
            len(head) >= self.head_length and head_hash(head[: self.head_length]) == self.head_hash
        )

    def is_current(self) -> bool:
        """Whether the file is still where it was read (not deleted, not rotated away)."""
        try:
            return identity_key(os.stat(self.path)) == self.key
        except OSError:
            return False


def files_by_identity(directory: Path) -> dict[str, Path]:
    """The regular files in ``directory`` by identity: where a file known by its identity went
    when it was renamed. Empty when the directory cannot be read."""
    found: dict[str, Path] = {}
    try:
        entries = list(directory.iterdir())
    except OSError:
        return found
    for entry in entries:
        try:
            stat = entry.stat()
        except OSError:
            continue
        if stat_module.S_ISREG(stat.st_mode):
            found.setdefault(identity_key(stat), entry)
    return found
