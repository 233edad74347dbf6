"""Resuming after a restart: the checkpoint file in ``state_dir``, and the files it applies to.

The offset stored is just past the last complete line delivered: a partial line is read again
after a restart and becomes one record. The file is written to a temporary file, fsynced and
renamed over the old one, so a crash leaves the old checkpoint or the new one, never half of
one. Its format is versioned.
"""

import logging
import math
import os
from collections.abc import Container, Iterable, Mapping
from pathlib import Path
from typing import Any

from aggregator.flow.checkpoints import check_state_dir, read_state_file, write_atomically
from aggregator.lazyjson import dumps
from aggregator.sources.file.identity import (
    COPY_HEAD_BYTES,
    Position,
    files_by_identity,
    identity_key,
    read_head,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_NAME = "checkpoints.json"


class CheckpointStore:
    """The checkpoint file in a state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / FILE_NAME

    def check_writable(self) -> None:
        check_state_dir(self.state_dir)

    def load(self) -> dict[str, Position]:
        """The positions saved last; an unreadable file is reported and treated as empty."""
        try:
            data = _loads(read_state_file(self.path))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:  # ValueError: JSONDecodeError, not UTF-8
            log.error("%s: cannot read the checkpoints (%s); starting without them", self.path,
                      error)  # fmt: skip
            return {}
        try:
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
            entries = data["files"].items()
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            log.error("%s: the checkpoints are not in a known format (%s); starting without them",
                      self.path, error)  # fmt: skip
            return {}
        positions = {}
        for key, entry in entries:
            try:
                positions[key] = position_from(key, entry)
            except (TypeError, ValueError) as error:
                log.error("%s: the checkpoint of %s is not in a known format (%s); that file "
                          "starts without it", self.path, key, error)  # fmt: skip
        return positions

    def save(self, positions: dict[str, Position]) -> None:
        """Write ``positions`` atomically: temporary file, fsync, rename, fsync the directory."""
        files = {}
        for key, position in positions.items():
            files[key] = dict(zip(Position.FIELDS[1:], position.values()[1:], strict=True))
        write_atomically(self.path, dumps({"version": FORMAT_VERSION, "files": files}))


def _loads(data: bytes) -> Any:
    """The file's JSON, read with the standard library's parser (orjson's import, with uuid
    and platform, cost every restart about 10 M instructions more before its first line out:
    bench/README.md, "Session 14 (s14start)"), taken as orjson, which writes it, takes it:
    UTF-8 without surrogates, no NaN or Infinity, no number beyond a double (ValueError), an
    integer beyond 64 bits a float."""
    import json

    text = data.decode()  # strict, as orjson: json.loads would pass surrogates through
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_double, parse_int=_integer)
        if "\\u" in text:  # an escape may have made a lone surrogate, which orjson refuses
            _encodable(value)
    except RecursionError as error:  # nested a thousand deep (orjson: over 1,024)
        raise ValueError("nested too deeply") from error
    return value


def _encodable(value: object) -> None:
    if isinstance(value, str):
        value.encode()
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode()
            _encodable(item)
    elif isinstance(value, list):
        for item in value:
            _encodable(item)


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _double(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number {text} is infinity as a double")
    return value


def _integer(text: str) -> int | float:
    value = int(text)
    return value if -(1 << 63) <= value < 1 << 64 else _double(text)


POSITION_TYPES: dict[str, type] = {
    name: Position.__init__.__annotations__[name] for name in Position.FIELDS if name != "key"
}


def position_from(key: str, entry: object) -> Position:
    """A saved entry as a ``Position``, each field of the type it must have (a file edited by
    hand could hold a float offset, which would fail only later, in the read)."""
    if not isinstance(entry, dict):
        raise TypeError(f"an object was expected, got {type(entry).__name__}")
    for name, value in entry.items():
        wanted = POSITION_TYPES.get(name)
        if wanted is None:
            raise ValueError(f"unknown key {name!r}")
        if type(value) is not wanted:  # bool is an int too, and no offset
            raise TypeError(f"{name} must be {wanted.__name__}, got {value!r}")
        if isinstance(value, int) and value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    return Position(key=key, **entry)


def resumable(paths: Iterable[Path], saved: Mapping[str, Position]) -> dict[Path, Position]:
    """The files a saved position applies to (by inode; ``FileTailer.open`` checks the rest)."""
    resume = {}
    for path in paths:
        try:
            position = saved.get(identity_key(path.stat()))
        except OSError:
            continue
        if position is not None:
            resume[path] = position
    return resume


def rotated_while_stopped(
    saved: Mapping[str, Position], resumed: Iterable[Position]
) -> dict[Path, Position]:
    """Saved positions of files rotated while the program was stopped, by their path now,
    with something not read yet: renamed (the same inode in the directory they were in: from
    the offset, or from 0 if the first bytes changed: ``FileTailer.open`` sees to it), or
    copied before being truncated (copytruncate: the file in that directory that begins with
    the same bytes and is at least as long, with the position moved to it)."""
    taken = {position.key for position in resumed}
    indexes: dict[Path, dict[str, Path]] = {}  # each directory is listed once
    found: dict[Path, Position] = {}
    for position in saved.values():
        directory = Path(position.path).parent
        if directory not in indexes:
            indexes[directory] = files_by_identity(directory)
        candidate = indexes[directory].get(position.key)
        same = False
        if candidate is not None:
            try:
                with candidate.open("rb") as file:
                    same = position.matches(read_head(file.fileno()))
                    size = os.fstat(file.fileno()).st_size
            except OSError:
                candidate = None
        if candidate is not None and same and size >= position.offset:
            if position.key not in taken and size > position.offset:
                found[candidate] = position  # renamed: the rest of it
            continue
        if candidate is not None and position.key not in taken:
            found[candidate] = position  # renamed and rewritten: all of it
        # Its content is not where it was read: copied away, then truncated or deleted?
        copy = find_copy(indexes[directory], position, saved)
        if copy is not None:
            log.info("%s: truncated while stopped; reading the rest of it in its copy %s",
                     position.path, copy.path)  # fmt: skip
            found[Path(copy.path)] = copy
    return found


def find_copy(
    files: Mapping[str, Path], position: Position, known: Container[str]
) -> Position | None:
    """``position`` moved to the file among ``files`` (by identity) that holds the content it
    is of: the same first bytes, at least ``offset`` long; the newest if there are several.
    Files with positions of their own (``known``) are not copies."""
    best: tuple[int, Position] | None = None
    for key, path in files.items():
        if key == position.key or key in known:
            continue
        try:
            with path.open("rb") as file:
                stat = os.fstat(file.fileno())
                if stat.st_size < max(position.offset, COPY_HEAD_BYTES):
                    continue
                if not position.is_copied_in(read_head(file.fileno())):
                    continue
        except OSError:
            continue
        if best is None or stat.st_mtime_ns > best[0]:
            best = stat.st_mtime_ns, position.moved(key, str(path))
    return best[1] if best is not None else None
