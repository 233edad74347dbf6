"""The alert sink's rule (SPEC §3 "alert"), pure: records in, notifications out, the clock given.

A group (the values of ``group_by``; one group when it is empty) fires when at least
``threshold`` matching records came within ``window``; it is not notified again sooner than
``cooldown`` after its last notification (such a firing is counted once as suppressed, and
notified if it still holds once the cooldown has passed); and once its count has stayed under
the threshold for a whole ``window``, it is resolved.

Memory is bounded: counts are kept per second of the window, at most ``MAX_GROUPS`` groups are
told apart (the rest share ``OVERFLOW``), and each group keeps ``SAMPLES`` records from the start
and the end of its episode.
"""

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aggregator.record.conditions import MISSING, Getter, text_of
from aggregator.record.record import Record
from aggregator.record.where import Where

MAX_GROUPS: Final = 1000
OVERFLOW: Final = "(other)"
NONE: Final = "(none)"
SAMPLES: Final = 3
"""Records shown from the start and from the end of an episode."""
SAMPLE_CHARS: Final = 1000
"""A sample record's line is cut to this many characters."""

Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Notification:
    """What is to be sent: a group's alert firing or resolved, with its count and samples."""

    status: Status
    group: dict[str, str]
    count: int
    first: list[dict[str, Any]]
    last: list[dict[str, Any]]


@dataclass(slots=True)
class _Group:
    seconds: deque[list[int]] = field(default_factory=deque)  # [second, count], oldest first
    firing: bool = False
    suppressing: bool = False
    last_notified: float | None = None
    below_since: float | None = None
    first: list[dict[str, Any]] = field(default_factory=list)
    last: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=SAMPLES))

    def add(self, second: int, count: int) -> None:
        if self.seconds and self.seconds[-1][0] == second:
            self.seconds[-1][1] += count
        else:
            self.seconds.append([second, count])

    def count(self, second: int, window: int) -> int:
        """Records in the ``window`` seconds up to ``second``; older seconds are let go."""
        while self.seconds and self.seconds[0][0] <= second - window:
            self.seconds.popleft()
        return sum(count for _, count in self.seconds)


def sample(record: Record) -> dict[str, Any]:
    """What a notification shows of a record (its line cut to SAMPLE_CHARS)."""
    shown: dict[str, Any] = {"seq": record.seq, "source": record.source, "line": record.line}
    if len(record.line) > SAMPLE_CHARS:
        shown["line"] = record.line[:SAMPLE_CHARS] + "…"
    if record.level is not None:
        shown["level"] = record.level
    if record.node is not None:
        shown["node"] = record.node
    return shown


class AlertRule:
    """Counts matching records per group and says when to notify."""

    def __init__(
        self,
        where: Where | None,
        threshold: int,
        window: float,
        group_by: Sequence[str],
        cooldown: float,
        clock: Callable[[], float],
    ) -> None:
        self.where = where
        self.threshold = max(1, threshold)
        self.window = max(1, round(window))
        self.group_by = list(group_by)
        self.cooldown = cooldown
        self._getters = [Getter(name) for name in group_by]
        self._clock = clock
        self._groups: dict[tuple[str, ...], _Group] = {}
        self.suppressed = 0
        """Firings not notified because their group's cooldown had not passed."""
        self.matched = 0

    def observe(self, batch: Sequence[Record]) -> list[Notification]:
        """Count the records of ``batch`` that match; the notifications that are due now."""
        matching = self.where.apply(batch) if self.where is not None else batch
        if not matching:
            return []
        self.matched += len(matching)
        now = self._clock()
        second = int(now)
        touched: dict[tuple[str, ...], _Group] = {}
        for record in matching:
            key, group = self._group(self._key(record))
            touched[key] = group
            group.add(second, 1)
            if len(group.first) < SAMPLES:
                group.first.append(sample(record))
            else:
                group.last.append(sample(record))
        due = []
        for key, group in touched.items():
            count = group.count(second, self.window)
            if count < self.threshold:
                continue
            group.below_since = None
            if group.firing:
                continue
            if group.last_notified is not None and now - group.last_notified < self.cooldown:
                if not group.suppressing:
                    self.suppressed += 1
                    group.suppressing = True
                continue
            group.firing = True
            group.suppressing = False
            group.last_notified = now
            due.append(self._notification("firing", key, group, count))
        return due

    def tick(self) -> list[Notification]:
        """The resolved notices that are due now; groups with nothing left are let go."""
        now = self._clock()
        second = int(now)
        due = []
        for key, group in list(self._groups.items()):
            count = group.count(second, self.window)
            if group.firing:
                if count >= self.threshold:
                    group.below_since = None
                elif group.below_since is None:
                    group.below_since = now
                elif now - group.below_since >= self.window:
                    due.append(self._notification("resolved", key, group, count))
                    group.firing = False
                    group.below_since = None
                    group.first.clear()
                    group.last.clear()
                continue
            if count < self.threshold:
                group.suppressing = False
                if not group.seconds:
                    group.first.clear()
                    group.last.clear()
            if count == 0 and (
                group.last_notified is None or now - group.last_notified >= self.cooldown
            ):
                del self._groups[key]
        return due

    def _key(self, record: Record) -> tuple[str, ...]:
        values = []
        for getter in self._getters:
            value = getter.get(record)
            text = None if value is MISSING else text_of(value)
            values.append(NONE if text is None else text[:200])
        return tuple(values)

    def _group(self, key: tuple[str, ...]) -> tuple[tuple[str, ...], _Group]:
        """The group of ``key``; past MAX_GROUPS, a new key shares the OVERFLOW group."""
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= MAX_GROUPS:
                key = (OVERFLOW,) * len(self._getters)
                group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group()
        return key, group

    def _notification(
        self, status: Status, key: tuple[str, ...], group: _Group, count: int
    ) -> Notification:
        return Notification(
            status,
            dict(zip(self.group_by, key, strict=True)),
            count,
            list(group.first),
            list(group.last),
        )
