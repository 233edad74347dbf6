"""Checkpoints: positions of the inputs, committed once every sink has written what precedes them.

The merge reports (seq, position) as chunks leave it; the sinks report the last seq they wrote
and flushed. A position is committed when the lowest of those seqs reaches its own, and saved
every ``checkpoint_interval`` (and at the end) by the store, which knows the format.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from aggregator.trouble import Trouble, reason_of

log = logging.getLogger(__name__)


class Mark(Protocol):
    """A position of one input; ``key`` says which input (a file's identity)."""

    @property
    def key(self) -> str: ...

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


class Checkpointer(Generic[P]):
    """Commits positions once every sink has written the records before them, and saves them."""

    def __init__(self, store: PositionStore[P], interval: float) -> None:
        self.store = store
        self.interval = interval
        self.positions: dict[str, P] = {}
        """The committed positions, by key: at start, what an earlier run saved."""
        self._marks: deque[tuple[int, P]] = deque()
        self._changed = False
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
        else:
            self._trouble.succeeded()

    async def commit_periodically(
        self, delivered: Callable[[], int | None], ended: asyncio.Event
    ) -> None:
        """Commit every ``interval`` until ``ended``, then once more: not a cancel, so a save in
        progress finishes, and the last one takes what the sinks wrote before the end."""
        while not ended.is_set():
            try:
                async with asyncio.timeout(self.interval):
                    await ended.wait()
            except TimeoutError:
                await self.commit(delivered())
        await self.commit(delivered())
