"""Stalls (SPEC §8): input that waits while its reader does not move. Pure: the caller says
what it sees, with the time; this says what stalled, why, and what moves again.

Something (a file, a listener's connections) stalls when it has unread input and its reader
has not advanced for ``stall_after``. The reason: the reader waits to hand its records on
(the sinks hold the pipeline back), or it does not (the reader is stuck on this input).
"""

from collections.abc import Iterable
from typing import NamedTuple

HELD_BACK = "the sinks are holding the pipeline back"
STUCK = "the reader is stuck on it"


class Progress(NamedTuple):
    """One input as seen now."""

    what: str
    """What it is, for messages (a file's path, "connections")."""
    moved: int
    """How far its reader has gone (a file's offset, records taken): a change is progress."""
    pending: bool
    """Whether input is waiting to be read (a file longer than its offset)."""
    held_back: bool
    """Whether its reader is waiting to hand records on."""


class Change(NamedTuple):
    """An input that stalled (``reason``) or moves again (``reason`` is None)."""

    what: str
    reason: str | None


class StallWatch:
    """What stalled among the inputs of one source."""

    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self.stalled: dict[str, str] = {}
        """What is stalled now, with the reason."""
        self._seen: dict[str, tuple[int, float]] = {}  # what: (moved, since when)

    def observe(self, now: float, inputs: Iterable[Progress]) -> list[Change]:
        """Look at every input at ``now`` (monotonic seconds); the changes since last look.
        An input no longer given is forgotten (and, if stalled, moves again)."""
        changes: list[Change] = []
        seen: dict[str, tuple[int, float]] = {}
        for item in inputs:
            before = self._seen.get(item.what)
            if before is None or before[0] != item.moved or not item.pending:
                seen[item.what] = (item.moved, now)
                if self.stalled.pop(item.what, None) is not None:
                    changes.append(Change(item.what, None))
                continue
            seen[item.what] = before
            if item.what not in self.stalled and now - before[1] >= self.stall_after:
                reason = HELD_BACK if item.held_back else STUCK
                self.stalled[item.what] = reason
                changes.append(Change(item.what, reason))
        for what in [what for what in self.stalled if what not in seen]:
            del self.stalled[what]
            changes.append(Change(what, None))
        self._seen = seen
        return changes
