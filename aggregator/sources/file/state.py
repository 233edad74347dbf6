"""What a file source keeps beyond its files: the book of file positions in ``state_dir``, and
the directory its records' files are named from in text.

The source takes both itself, so that the pipeline need not know them and a file source can be
started, drained and replaced on its own (a reload): the book is shared by every file source of
a pipeline (one ``checkpoints.json``, keyed by a file's identity), and a replaced source finds
there where its predecessor stopped.
"""

import fnmatch
import os
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import FileSourceConfig
from aggregator.flow.checkpoints import Checkpointer, Checkpoints
from aggregator.record.filters import NamePathMatcher
from aggregator.sources.file.discovery import fixed_prefix
from aggregator.sources.file.identity import Position
from aggregator.sources.file.resume import CheckpointStore

if TYPE_CHECKING:
    from aggregator.sources import SourceContext


def take_state(
    name: str, config: FileSourceConfig, context: "SourceContext"
) -> Checkpointer[Position] | None:
    """Hand the sinks the source's origin base (``context.origin_bases``) and return the book
    of positions it resumes from and saves to (None: it starts afresh, ``tail``)."""
    base = origin_base(name, config)
    if base is not None:
        context.origin_bases[name] = base
    else:
        context.origin_bases.pop(name, None)  # a replaced source that followed several files
    if context.keep_positions and context.books is not None:
        return positions_book(context.books, context.state_dir)
    return None


def positions_book(books: Checkpoints, state_dir: Path) -> Checkpointer[Position]:
    """The pipeline's book of file positions, registered by the first file source that asks."""
    book = books.books.get(Position.book)
    if book is None:
        book = Checkpointer(CheckpointStore(state_dir), books.interval)
        books.register(Position.book, book)
    return book


def origin_base(name: str, config: FileSourceConfig) -> str | None:
    """For a source that may follow several files (a glob, several paths), the directory its
    paths share: text names its records' files from there (``""`` for a source named after its
    glob: the file's path alone; see ``aggregator.record.formats.origin_label``). None for a
    source of one file."""
    paths = config.paths
    if len(paths) <= 1 and not any(char in path for path in paths for char in "*?["):
        return None
    if name in paths:  # named after its glob (`tail 'logs/*.log'`): the path says all
        return ""
    return os.path.commonpath([os.path.abspath(fixed_prefix(path)) for path in paths])


def own_positions(
    config: FileSourceConfig, exclude: NamePathMatcher, book: Checkpointer[Position] | None
) -> dict[str, Position]:
    """The positions in the shared ``book`` of the files this source followed: those whose
    path its patterns match. Another source's file in the same directory is not this one's
    to resume, nor a file of this one "rotated while stopped" (its path is where it was
    read, kept by ``Checkpointer`` only while the file is still there)."""
    if book is None:
        return {}
    patterns = [os.path.normpath(os.path.expanduser(pattern)) for pattern in config.paths]
    return {
        key: position
        for key, position in book.positions.items()
        if _followed(position.path, patterns, exclude)
    }


def _followed(path: str, patterns: list[str], exclude: NamePathMatcher) -> bool:
    if exclude and exclude.matches(os.path.basename(path), path):
        return False
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def note_opened(
    book: Checkpointer[Position] | None, resumed: bool, position: Position | None
) -> None:
    """A file opened afresh (not resumed): where reading begins is committed at once, since
    nothing before it waits to be delivered. Else a quiet file opened at its end would have no
    position, and what is written to it while the program is stopped (or while a reload
    replaces its source) would be skipped by the next start at the end."""
    if book is not None and not resumed:
        book.note(position)
