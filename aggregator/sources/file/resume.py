"""Resuming after a restart: the checkpoint file in ``state_dir``, and the files it applies to.

The offset stored is just past the last complete line delivered: a partial line is read again
after a restart and becomes one record. The file is written to a temporary file, fsynced and
renamed over the old one, so a crash leaves the old checkpoint or the new one, never half of
one. Its format is versioned.
"""

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path

import orjson

from aggregator.flow.checkpoints import check_state_dir, read_state_file, write_atomically
from aggregator.sources.file.identity import Position, files_by_identity, identity_key, read_head

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
            data = orjson.loads(read_state_file(self.path))
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
        write_atomically(self.path, orjson.dumps({"version": FORMAT_VERSION, "files": files}))


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
    """Saved positions of files renamed while the program was stopped, by their new path: the
    same inode in the directory they were in, with something not read yet (past the offset, or
    anything if the first bytes changed: ``FileTailer.open`` reads it from 0)."""
    taken = {position.key for position in resumed}
    indexes: dict[Path, dict[str, Path]] = {}  # each directory is listed once
    found: dict[Path, Position] = {}
    for position in saved.values():
        if position.key in taken:
            continue
        directory = Path(position.path).parent
        if directory not in indexes:
            indexes[directory] = files_by_identity(directory)
        candidate = indexes[directory].get(position.key)
        if candidate is None:
            continue
        try:
            with candidate.open("rb") as file:
                same = position.matches(read_head(file.fileno()))
                size = os.fstat(file.fileno()).st_size
        except OSError:
            continue
        if not same or size > position.offset:
            found[candidate] = position
    return found
