"""Sink filters: source globs, minimum level, grep."""

import re

from aggregator.record.filters import NamePathMatcher, RecordFilter
from aggregator.record.record import Record


def rec(source: str, line: str, level: str | None = None, origin: str = "") -> Record:
    return Record(0, source, origin or f"/var/log/{source}.log", line, level=level)


BATCH = [
    rec("app", "user ann timeout", "warn"),
    rec("app-worker", "ok", "info"),
    rec("db", "slow query timeout", "error"),
    rec("db", "no level here"),
]


def test_no_conditions_pass_everything() -> None:
    """An empty filter passes every record."""
    assert list(RecordFilter().apply(BATCH)) == BATCH


def test_sources_glob_on_names() -> None:
    """A pattern without / matches the source name."""
    kept = RecordFilter(sources=["app*"]).apply(BATCH)
    assert [r.source for r in kept] == ["app", "app-worker"]


def test_sources_glob_with_slash_matches_the_origin() -> None:
    """A pattern with / matches the whole origin path."""
    kept = RecordFilter(sources=["/var/log/db.*"]).apply(BATCH)
    assert [r.line for r in kept] == ["slow query timeout", "no level here"]


def test_level_is_a_minimum_and_unknown_does_not_pass() -> None:
    """warn passes warn and above; records without a level do not pass."""
    kept = RecordFilter(level="warn").apply(BATCH)
    assert [r.level for r in kept] == ["warn", "error"]


def test_all_conditions_must_hold() -> None:
    """sources, level and grep combine with AND."""
    kept = RecordFilter(sources=["db"], level="warn", grep=re.compile("time")).apply(BATCH)
    assert [r.line for r in kept] == ["slow query timeout"]


def test_name_path_matcher() -> None:
    """The same rule serves file excludes."""
    matcher = NamePathMatcher(["*.gz", "/tmp/skip/*"])
    assert matcher.matches("a.log.gz", "/x/a.log.gz")
    assert matcher.matches("b.log", "/tmp/skip/b.log")
    assert not matcher.matches("b.log", "/tmp/keep/b.log")
    assert not NamePathMatcher([])
