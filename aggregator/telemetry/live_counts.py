"""Live counts for ``/stats``: records per level, per source and per one chosen field over the
last 1 and 5 minutes, over every record (not a client's filtered view). Pure: the clock is
given, nothing is read or written.

Counts go into buckets of ``BUCKET_SECONDS``; a window is the sum of the buckets it covers, so
its edge is exact to a bucket. Memory is bounded: at most ``MAX_KEYS`` distinct values of each
kind per bucket (the rest are counted under ``OTHER``), and at most the buckets of the longest
window are kept.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, Final

from aggregator.record.conditions import MISSING, Getter, text_of
from aggregator.record.record import Record

BUCKET_SECONDS: Final = 5.0
WINDOWS: Final = (("1m", 60.0), ("5m", 300.0))
MAX_KEYS: Final = 200
"""Most distinct values of one kind (levels, sources, field values) kept in one bucket."""
OTHER: Final = "(other)"
NONE: Final = "(none)"
"""The level of a record without one, the value of a record without the field."""

_source_of = attrgetter("source")


def _add(counter: Counter[str], values: Sequence[str]) -> None:
    """Count ``values``; a new key past MAX_KEYS is counted under OTHER."""
    for key, count in Counter(values).items():
        if key in counter or len(counter) < MAX_KEYS - 1:  # a place left for OTHER
            counter[key] += count
        else:
            counter[OTHER] += count


def _top(counter: Counter[str]) -> dict[str, int]:
    """The MAX_KEYS busiest, most first; the rest summed under OTHER."""
    top = counter.most_common(MAX_KEYS - 1)
    shown = dict(top)
    rest = counter.total() - sum(shown.values())
    if rest:
        shown[OTHER] = shown.get(OTHER, 0) + rest
    return shown


class Bucket:
    __slots__ = ("fields", "index", "levels", "sources", "total")

    def __init__(self, index: int) -> None:
        self.index = index
        self.total = 0
        self.levels: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.fields: Counter[str] = Counter()


class LiveCounts:
    """Counts what ``add`` is given, by when it was given (``clock``, in seconds)."""

    def __init__(self, field: str | None, clock: Callable[[], float]) -> None:
        """``field``: the one field counted by value (dots as in ``where``); None for none."""
        self.field = field or None
        self._getter = Getter(field) if field else None
        self._clock = clock
        self._buckets: list[Bucket] = []
        self._keep = int(max(seconds for _, seconds in WINDOWS) / BUCKET_SECONDS) + 1

    def add(self, batch: Sequence[Record]) -> None:
        """Count ``batch`` now."""
        if not batch:
            return
        bucket = self._bucket(int(self._clock() // BUCKET_SECONDS))
        bucket.total += len(batch)
        _add(bucket.levels, [record.level or NONE for record in batch])
        _add(bucket.sources, list(map(_source_of, batch)))
        getter = self._getter
        if getter is not None:
            values = []
            for record in batch:
                value = getter.get(record)
                text = None if value is MISSING else text_of(value)
                values.append(NONE if text is None else text[:200])
            _add(bucket.fields, values)

    def _bucket(self, index: int) -> Bucket:
        buckets = self._buckets
        if buckets and buckets[-1].index == index:
            return buckets[-1]
        bucket = Bucket(index)
        buckets.append(bucket)
        oldest = index - self._keep
        while buckets and buckets[0].index <= oldest:
            buckets.pop(0)
        return bucket

    def snapshot(self) -> dict[str, Any]:
        """``{"field": NAME, "bucket_seconds": 5, "windows": {"1m": {...}, "5m": {...}}}``, each
        window ``{"total": N, "level": {…}, "source": {…}, "field": {…}}``, most first."""
        now = int(self._clock() // BUCKET_SECONDS)
        windows: dict[str, Any] = {}
        for name, seconds in WINDOWS:
            first = now - int(seconds / BUCKET_SECONDS) + 1
            total = 0
            levels: Counter[str] = Counter()
            sources: Counter[str] = Counter()
            fields: Counter[str] = Counter()
            for bucket in self._buckets:
                if first <= bucket.index <= now:
                    total += bucket.total
                    levels.update(bucket.levels)
                    sources.update(bucket.sources)
                    fields.update(bucket.fields)
            window: dict[str, Any] = {
                "total": total,
                "level": _top(levels),
                "source": _top(sources),
            }
            if self.field is not None:
                window["field"] = _top(fields)
            windows[name] = window
        return {"field": self.field, "bucket_seconds": BUCKET_SECONDS, "windows": windows}
