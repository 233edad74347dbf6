"""Checkpoints: positions of the inputs, committed once every sink has written what precedes them.

The merge reports (seq, position) as chunks leave it; the sinks report the last seq they wrote
and flushed. A position is committed when the lowest of those seqs reaches its own, and saved
every ``checkpoint_interval`` (and at the end) by the store, which knows the format.

A pipeline may keep several kinds of positions, each in its own *book* (a ``Checkpointer``
with its store): file offsets in ``checkpoints.json``, and for each nats source the messages it
took, which are acknowledged to the server once saved (``settle``). ``Checkpoints`` routes each
position the merge hands back to the book it names.
"""

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from aggregator.errors import StartupError
from aggregator.trouble import Trouble, reason_of

log = logging.getLogger(__name__)


STATE_DIR_MODE = 0o700
STATE_FILE_MODE = 0o600
"""state_dir holds where every input was read to: for this user only (SPEC §9)."""
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_state_file(path: Path) -> int:
    """A new file at ``path``, mode 0600, whatever was there: an old file or a symbolic link
    planted there is removed (the link, never what it points to), and the file is created
    exclusively, so a link made meanwhile makes this fail instead of being followed."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, _NEW_FILE, STATE_FILE_MODE)


def read_state_file(path: Path) -> bytes:
    """What the file at ``path`` holds; OSError (ELOOP) if it is a symbolic link, which is
    never followed in state_dir."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as file:
        return file.read()


def check_state_dir(state_dir: Path, *, keep: bool = True) -> None:
    """Create ``state_dir`` if needed (0700) and prove it writable; StartupError otherwise.
    Without ``keep`` (``aggregator check``), the directories made for the proof are removed
    again."""
    probe = state_dir / ".write-test"
    made = [path for path in (state_dir, *state_dir.parents) if not path.exists()]
    try:
        state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        os.close(create_state_file(probe))
        probe.unlink()
    except OSError as error:
        raise StartupError(
            f"aggregator.state_dir: cannot write {state_dir}: {error.strerror or error}"
        ) from error
    finally:
        if not keep:
            for path in made:  # the deepest first
                with contextlib.suppress(OSError):
                    path.rmdir()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new one, never
    half of one: a temporary file, fsynced, renamed over it, and the directory fsynced."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        # The state dir may have been removed while running.
        path.parent.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        with os.fdopen(create_state_file(temporary), "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # replaces a link planted at ``path``, not its target
    except OSError:
        with contextlib.suppress(OSError):  # a full disk: do not leave half a file there
            temporary.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Mark(Protocol):
    """A position of one input; ``key`` says which input (a file's identity)."""

    @property
    def key(self) -> str: ...

    @property
    def book(self) -> str:
        """Which ``Checkpointer`` keeps it (``Checkpoints`` routes by this)."""

    def is_current(self) -> bool:
        """Whether the input is still where it was read (a file not deleted or rotated away)."""


P = TypeVar("P", bound=Mark)


class PositionStore(Protocol[P]):
    """Where positions are kept across runs (``aggregator.sources.file.resume.CheckpointStore``)."""

    @property
    def path(self) -> object:
        """Where the positions are kept, for messages."""

    def check_writable(self) -> None:
        """Raise ``StartupError`` if positions could not be saved."""

    def load(self) -> dict[str, P]: ...

    def save(self, positions: dict[str, P]) -> None:
        """Save ``positions`` atomically."""


Settle = Callable[[list[Any]], Awaitable[None]]
"""Called with the positions committed since the last save, in order, once they are saved."""


class Checkpointer(Generic[P]):
    """Commits positions once every sink has written the records before them, and saves them.

    ``settle``, when given, gets every position committed (not only the last of each key) once
    it has been saved: a nats source acknowledges its messages there, so what the server
    forgets has been written by the sinks and recorded here first."""

    def __init__(
        self, store: PositionStore[P], interval: float, settle: Settle | None = None
    ) -> None:
        self.store = store
        self.interval = interval
        self.settle = settle
        self.positions: dict[str, P] = {}
        """The committed positions, by key: at start, what an earlier run saved."""
        self._marks: deque[tuple[int, P]] = deque()
        self._changed = False
        self._unsettled: list[P] = []
        self._trouble = Trouble(
            log, store.path, "cannot write the checkpoints", "checkpoints saved again",
            "running on and retrying (a restart now would repeat what came since the last save)",
        )  # fmt: skip

    async def load(self) -> None:
        """Check that positions can be saved (``StartupError`` if not), then read what an
        earlier run saved (an unreadable file is reported, and ignored)."""
        await asyncio.to_thread(self.store.check_writable)
        self.positions = await asyncio.to_thread(self.store.load)

    def add(self, marks: list[tuple[int, object]]) -> None:
        """Positions waiting for their seq to be delivered, in seq order."""
        self._marks.extend(marks)  # type: ignore[arg-type]

    def note(self, position: P | None) -> None:
        """A position with nothing before it to deliver (a file just opened where reading
        begins, none known for it): committed at once, so that a restart, or a source replaced
        by a reload, does not skip what is written next."""
        if position is not None and position.key not in self.positions:
            self.positions[position.key] = position
            self._changed = True

    def advance(self, delivered: int) -> None:
        """Every record up to seq ``delivered`` has been written by every sink."""
        marks = self._marks
        while marks and marks[0][0] <= delivered:
            _, position = marks.popleft()
            self.positions[position.key] = position
            self._changed = True
            if self.settle is not None:
                self._unsettled.append(position)

    async def save(self) -> None:
        """Write the positions if they changed (in a thread: fsync can take a while)."""
        if not self._changed:
            return
        self._changed = False
        try:
            # A whole save (stats, write, fsync, rename) in one thread hop: asyncio's own, where
            # aiofiles would take a hop per call.
            await asyncio.to_thread(self._save_current)
        except BaseException:
            self._changed = True  # not saved (an error, or cancelled): the next save retries
            raise

    def _save_current(self) -> None:
        # Inputs gone from where they were read (files deleted, or rotated past their
        # rotate_wait) are dropped, so the checkpoint stays small when thousands come and go.
        self.positions = {key: mark for key, mark in self.positions.items() if mark.is_current()}
        self.store.save(self.positions)

    async def commit(self, delivered: int | None) -> None:
        """Advance to ``delivered`` (None: no sink holds positions back) and save; a save that
        fails is retried at each commit, and said once, then now and then (``Trouble``)."""
        if delivered is None:
            return
        self.advance(delivered)
        try:
            await self.save()
        except OSError as error:
            self._trouble.failed(reason_of(error))
            return
        self._trouble.succeeded()
        if self._unsettled and self.settle is not None:
            settled, self._unsettled = self._unsettled, []
            await self.settle(settled)


class Checkpoints:
    """The books of one pipeline, and the routing of positions to them by ``Mark.book``."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.books: dict[str, Checkpointer[Any]] = {}
        self._closers: dict[str, Callable[[], Awaitable[None]]] = {}
        self._owners: dict[str, object] = {}
        self._loaded: set[str] = set()
        self._committing = asyncio.Lock()  # a book retired is not saved twice at once

    def register(
        self,
        book: str,
        checkpointer: "Checkpointer[Any]",
        close: Callable[[], Awaitable[None]] | None = None,
        owner: object = None,
    ) -> None:
        """Keep ``book`` with ``checkpointer``; ``close`` runs after its last commit (a nats
        source's connection, which its acknowledgements need, closes there). ``owner``: the
        part that alone keeps the book, which ``retire`` takes away with it."""
        self.books[book] = checkpointer
        if close is not None:
            self._closers[book] = close
        if owner is not None:
            self._owners[book] = owner

    def owners(self) -> list[object]:
        """The parts that keep a book of their own."""
        return list(self._owners.values())

    async def retire(self, owner: object, delivered: int | None) -> list[str]:
        """The part ``owner`` has stopped (a reload replaced or removed it) and every sink has
        written its records up to seq ``delivered``: its books are committed one last time
        (a nats source acknowledges there), closed and forgotten, so that a successor of the
        same name registers its own and loads what was saved. Returns the books retired."""
        retired = [book for book, keeper in self._owners.items() if keeper is owner]
        async with self._committing:
            for book in retired:
                del self._owners[book]
                self._loaded.discard(book)
                await self.books.pop(book).commit(delivered)
                close = self._closers.pop(book, None)
                if close is not None:
                    await close()
        return retired

    async def close(self) -> None:
        """After the last commit: release what the books' settling needed."""
        closers, self._closers = self._closers, {}
        for close in closers.values():
            await close()

    async def load(self) -> None:
        """Load every book not loaded yet (a reload may bring a source with a new book)."""
        for name, checkpointer in list(self.books.items()):
            if name not in self._loaded:
                await checkpointer.load()
                self._loaded.add(name)

    def add(self, marks: list[tuple[int, object]]) -> None:
        """Positions waiting for their seq to be delivered, in seq order: each to its book."""
        books = self.books
        if not books:
            return
        if len(books) == 1:
            name, only = next(iter(books.items()))
            if all(position.book == name for _, position in marks):  # type: ignore[attr-defined]
                only.add(marks)
                return
        for seq, position in marks:
            checkpointer = books.get(position.book)  # type: ignore[attr-defined]
            if checkpointer is not None:  # None: positions nobody keeps (``tail``)
                checkpointer.add([(seq, position)])

    def advance(self, delivered: int) -> None:
        """Every book's ``advance``: its positions up to seq ``delivered`` are committed (a
        reload replacing a source, whose successor resumes from them at once)."""
        for book in self.books.values():
            book.advance(delivered)

    async def commit(self, delivered: int | None) -> None:
        """Every book's ``commit``, together (a nats book's settling waits on the server)."""
        async with self._committing:
            await asyncio.gather(*(book.commit(delivered) for book in list(self.books.values())))

    async def commit_periodically(
        self, delivered: Callable[[], int | None], ended: asyncio.Event
    ) -> None:
        """Commit every book every ``interval`` until ``ended``, then once more: not a cancel,
        so a save in progress finishes, and the last one takes what the sinks wrote before the
        end. Books registered meanwhile (a reload) are taken too."""
        while not ended.is_set():
            try:
                async with asyncio.timeout(self.interval):
                    await ended.wait()
            except TimeoutError:
                await self.commit(delivered())
        await self.commit(delivered())
