"""A file's identity, independent of its path: what rotation and restarts recognise it by.

A file is known by device and inode plus a hash of its first bytes (up to ``HEAD_BYTES``,
re-checked as the file grows), so that an inode reused by a new file is not taken for the old
one. A rotated file keeps its identity; a new file at the same path gets its own.
"""

import os
import stat as stat_module
import time

# hashlib.blake2b itself: hashlib would set up OpenSSL's every algorithm at each start.
from _blake2 import blake2b
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import ClassVar

HEAD_BYTES = 256
COPY_HEAD_BYTES = HEAD_BYTES
"""First bytes two files of other identities must share before one is taken for a copy of the
other (copytruncate): all of them, since the first lines of two logs can begin alike (same
fields, same second). A copy of a smaller file is not recognised (read as a new file)."""


def head_hash(head: bytes) -> str:
    return blake2b(head, digest_size=8).hexdigest()


def identity_key(stat: os.stat_result) -> str:
    """``DEV:INODE``."""
    return f"{stat.st_dev}:{stat.st_ino}"


def read_head(fd: int) -> bytes:
    """The first bytes of an open file (without moving its offset)."""
    return os.pread(fd, HEAD_BYTES, 0)


class Position:
    """How far one file has been read: its identity and the offset after its last line.
    Immutable, compared and hashed by its fields. (Written out rather than made by
    ``@dataclass(frozen=True, slots=True)``, whose generated methods were compiled at every
    start: 4.5 M instructions; bench/README.md, "Session 14 (s14start)".)"""

    __slots__ = ("head_hash", "head_length", "key", "lane", "offset", "path", "records")
    FIELDS: ClassVar[tuple[str, ...]] = (
        "key", "path", "offset", "head_length", "head_hash", "lane", "records"
    )  # fmt: skip
    """The fields in order (the saved entry's keys, with ``key`` its name in the file)."""
    book: ClassVar[str] = "files"

    key: str  # "DEV:INODE"
    path: str
    offset: int
    head_length: int
    head_hash: str
    lane: str
    """Where the file's records began to be counted (``Record.lane``); "" before that."""
    records: int
    """The file's records before ``offset``, counted from where ``lane`` began."""

    def __init__(
        self,
        key: str,
        path: str,
        offset: int,
        head_length: int,
        head_hash: str,
        lane: str = "",
        records: int = 0,
    ) -> None:
        setter = object.__setattr__
        setter(self, "key", key)
        setter(self, "path", path)
        setter(self, "offset", offset)
        setter(self, "head_length", head_length)
        setter(self, "head_hash", head_hash)
        setter(self, "lane", lane)
        setter(self, "records", records)

    def values(self) -> tuple[str, str, int, int, str, str, int]:
        """The fields' values, in ``FIELDS``' order."""
        return (
            self.key, self.path, self.offset, self.head_length, self.head_hash, self.lane,
            self.records,
        )  # fmt: skip

    def moved(self, key: str, path: str) -> "Position":
        """The same position in a file known now by ``key``, at ``path`` (a copy, a rename)."""
        return Position(
            key, path, self.offset, self.head_length, self.head_hash, self.lane, self.records
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Position)
        return self.values() == other.values()

    def __hash__(self) -> int:
        return hash(self.values())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}" for name, value in zip(self.FIELDS, self.values(), strict=True)
        )
        return f"Position({shown})"

    def __getstate__(self) -> tuple[str, str, int, int, str, str, int]:
        return self.values()

    def __setstate__(self, state: tuple[str, str, int, int, str, str, int]) -> None:
        for name, value in zip(self.FIELDS, state, strict=True):
            object.__setattr__(self, name, value)

    def matches(self, head: bytes) -> bool:
        """Whether ``head`` (the file's first bytes now) is the file this position is of."""
        return (
            len(head) >= self.head_length and head_hash(head[: self.head_length]) == self.head_hash
        )

    def is_copied_in(self, head: bytes) -> bool:
        """Whether a file of another identity beginning with ``head`` holds this file's content
        (a copy: copytruncate), judged by enough first bytes (``COPY_HEAD_BYTES``)."""
        return self.head_length >= COPY_HEAD_BYTES and self.matches(head)

    def is_current(self) -> bool:
        """Whether the file is still where it was read, or renamed in the same directory (a
        rotation to a name read next, or not read yet): not deleted."""
        try:
            if identity_key(os.stat(self.path)) == self.key:
                return True
        except OSError:
            pass
        return self.key in _listing(Path(self.path).parent)


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


_LISTINGS: dict[Path, tuple[int, dict[str, Path]]] = {}
"""``files_by_identity`` of a few directories, with their mtime then: each checkpoint save
asks about the files rotated away, and a directory is listed again only once it changed."""
_LISTINGS_KEPT = 64


def _listing(directory: Path) -> dict[str, Path]:
    try:
        changed = directory.stat().st_mtime_ns
    except OSError:
        return {}
    cached = _LISTINGS.get(directory)
    if cached is not None and cached[0] == changed:
        return cached[1]
    found = files_by_identity(directory)
    if time.time_ns() - changed < 1_000_000_000:
        return found  # changed within the mtime's granularity: another change may not show
    if len(_LISTINGS) >= _LISTINGS_KEPT:
        _LISTINGS.pop(next(iter(_LISTINGS)))
    _LISTINGS[directory] = (changed, found)
    return found
