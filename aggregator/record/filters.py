"""Pure record filters: by source (glob), minimum level, a regular expression on the line, and a
``where`` expression (``aggregator.record.where``), all combined by ``and``."""

import fnmatch
import re
from collections.abc import Sequence
from typing import Protocol

from aggregator.record.levels import LEVEL_RANK
from aggregator.record.record import Record
from aggregator.record.verdicts import Completer, passing
from aggregator.record.where import Where


def glob_regex(patterns: Sequence[str]) -> "re.Pattern[str] | None":
    """One compiled regex that matches any of the shell-style ``patterns``; None for none."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


class NamePathMatcher:
    """Matches a (name, path) pair: a pattern without ``/`` matches the name, one with it the path.

    This is the rule for ``exclude`` on file sources and ``sources`` in sink filters (SPEC §3).
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._name = glob_regex([pattern for pattern in patterns if "/" not in pattern])
        self._path = glob_regex([pattern for pattern in patterns if "/" in pattern])

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, name: str, path: str) -> bool:
        """Whether any pattern matches ``name`` (patterns without /) or ``path`` (with /)."""
        return bool(
            (self._name is not None and self._name.match(name))
            or (self._path is not None and self._path.match(path))
        )


class Searcher(Protocol):
    """A compiled pattern: ``re`` for trusted config, RE2 for patterns from WebSocket clients."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> object: ...


class RecordFilter:
    """Which records pass: every given condition must hold.

    ``sources`` are globs on the source's name (or, with ``/``, on the record's origin). ``level``
    is a minimum: ``warn`` passes warn, error and fatal; a record whose level is not known does not
    pass it. ``grep`` is searched in the line. ``where`` is a parsed expression; ``verdict``,
    its bit in ``Record.verdicts`` when the decoders judge it (``aggregator.record.verdicts``),
    and ``complete`` what finds again what a record not judged on it may lack.
    """

    def __init__(
        self,
        sources: Sequence[str] = (),
        level: str | None = None,
        grep: Searcher | None = None,
        where: Where | None = None,
        verdict: int = 0,
        complete: Completer | None = None,
    ) -> None:
        if level is not None and level not in LEVEL_RANK:
            raise ValueError(f"unknown level {level!r}")
        self.sources = NamePathMatcher(sources)
        self.level = level
        self.grep = grep
        self.where = where
        self.verdict = verdict
        self.complete = complete
        # Few distinct (source, origin) pairs carry many records: decide each pair once.
        self._source_verdicts: dict[tuple[str, str], bool] = {}

    def apply(self, batch: Sequence[Record]) -> Sequence[Record]:
        """The records of ``batch`` that pass, in order."""
        kept = batch
        if self.sources:
            kept = [record for record in kept if self._source_passes(record)]
        if self.level is not None:
            minimum = LEVEL_RANK[self.level]
            rank = LEVEL_RANK.get
            kept = [r for r in kept if r.level is not None and rank(r.level, -1) >= minimum]
        if self.grep is not None:
            search = self.grep.search
            kept = [record for record in kept if search(record.line)]
        if self.where is not None:
            kept = self._where(self.where, kept)
        return kept

    def _where(self, where: Where, batch: Sequence[Record]) -> Sequence[Record]:
        """What passes ``where``: as judged upstream, or tested here (what was not judged on
        it, completed first if its decoding left out what ``where`` reads)."""
        if not self.verdict:
            return where.apply(batch)
        return passing(batch, self.verdict, where, self.complete)

    def _source_passes(self, record: Record) -> bool:
        key = (record.source, record.origin)
        verdict = self._source_verdicts.get(key)
        if verdict is None:
            if len(self._source_verdicts) > 10_000:
                self._source_verdicts.clear()
            verdict = self._source_verdicts[key] = self.sources.matches(*key)
        return verdict


def record_filter(
    sources: Sequence[str],
    level: str | None,
    grep: Searcher | None,
    where: Where | None = None,
    verdict: int = 0,
    complete: Completer | None = None,
) -> RecordFilter | None:
    """The filter of a sink's ``filter`` table or of a subscriber's; None when it lets
    everything through. ``grep`` comes compiled: by ``re`` from the config, which is trusted,
    by RE2 from a client, which is not."""
    if not (sources or level or grep or where):
        return None
    return RecordFilter(sources, level, grep, where, verdict, complete)
