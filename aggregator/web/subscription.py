"""What a subscriber asks for, read from the ``/ws`` URL or a live ``{"filter": …}`` message.

Patterns from clients are untrusted: ``grep`` is compiled by RE2, whose matching time is linear
in the line whatever the pattern, so no client can stall the server with a backtracking regex.
Linear is not cheap enough: a client's patterns (``grep``, and ``where``'s ``~``) are compiled
as bounded ones (``record.patterns``): a costly program is refused, and what one is searched in
is bounded.
Anything invalid is a ``SubscriptionError`` whose message the client gets as the reason.
"""

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs

from aggregator.record.filters import RecordFilter, Searcher, record_filter
from aggregator.record.levels import LEVEL_RANK, LEVELS
from aggregator.record.patterns import Matcher, PatternError, compile_pattern
from aggregator.record.where import MAX_CHARS, Where, WhereError, where_of

MAX_PATTERN_CHARS = 1000
"""Longest ``grep`` or source glob a client may send."""
MAX_SOURCES = 100
"""Most source globs in one filter."""

QUERY_KEYS = frozenset(
    ("source", "level", "grep", "where", "replay", "since", "run", "format", "pause", "token")
)
"""What ``/ws?…`` may name."""

Format = Literal["json", "text"]


class SubscriptionError(ValueError):
    """A subscription parameter or live filter that cannot be used; the text says why."""


class ClientFilter(NamedTuple):
    """A subscriber's filter. Equal filters are one group on the server: filtered once. (A
    named tuple, as ``SubscriptionRequest``: immutable as a frozen dataclass, whose generated
    methods cost every start more.)"""

    sources: tuple[str, ...] = ()
    level: str | None = None
    grep: str | None = None
    where: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "level": self.level,
            "grep": self.grep,
            "where": self.where,
        }

    def compile(self) -> RecordFilter | None:
        """The filter to run; None when it lets everything through."""
        return record_filter(
            self.sources,
            self.level,
            compile_grep(self.grep) if self.grep else None,
            compile_where(self.where) if self.where else None,
        )


class SubscriptionRequest(NamedTuple):
    """Everything ``/ws?…`` may ask for (SPEC §7)."""

    filter: ClientFilter = ClientFilter()
    format: Format = "json"
    replay: int = 0
    since: int | None = None
    run: str | None = None
    paused: bool = False
    """Join paused (a page that reconnects while paused): nothing is sent until it resumes."""


class BoundedSearch:
    """A client's compiled pattern, as a ``Searcher`` (what ``RecordFilter`` takes)."""

    __slots__ = ("pattern", "search")

    def __init__(self, pattern: str, search: Matcher) -> None:
        self.pattern = pattern
        self.search = search


@lru_cache(maxsize=256)
def compile_grep(pattern: str) -> Searcher:
    """``pattern`` compiled as a client's (``record.patterns``: RE2, its program's size and
    what it searches bounded); SubscriptionError with the reason for one it cannot take.

    Cached: a pattern is checked when the URL is, and compiled again for its group."""
    try:
        return BoundedSearch(pattern, compile_pattern(pattern, bounded=True))
    except PatternError as error:
        raise SubscriptionError(f"grep: {error}") from None


@lru_cache(maxsize=256)
def compile_where(text: str) -> Where:
    """``text`` parsed (its ``~`` patterns in RE2); SubscriptionError names the position."""
    if len(text) > MAX_CHARS:
        raise SubscriptionError(f"where: longer than {MAX_CHARS} characters")
    try:
        return where_of(text, bounded=True)
    except WhereError as error:
        raise SubscriptionError(f"where: {error}") from None


def make_filter(
    sources: Sequence[str], level: str | None, grep: str | None, where: str | None = None
) -> ClientFilter:
    """A ClientFilter from its parts, each checked; SubscriptionError names the bad one."""
    if len(sources) > MAX_SOURCES:
        raise SubscriptionError(f"sources: at most {MAX_SOURCES} patterns")
    for pattern in sources:
        if not pattern or len(pattern) > MAX_PATTERN_CHARS:
            raise SubscriptionError(
                f"sources: expected patterns of 1 to {MAX_PATTERN_CHARS} characters"
            )
    if level is not None and level not in LEVEL_RANK:
        raise SubscriptionError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    if grep is not None:
        if len(grep) > MAX_PATTERN_CHARS:
            raise SubscriptionError(f"grep: longer than {MAX_PATTERN_CHARS} characters")
        compile_grep(grep)
    if where:
        compile_where(where)
    return ClientFilter(tuple(sources), level, grep or None, where or None)


def filter_from_json(value: object) -> ClientFilter:
    """The filter of a live ``{"filter": {...}}`` message (keys sources, level, grep, where)."""
    if not isinstance(value, Mapping):
        raise SubscriptionError("filter: expected an object with sources, level, grep and where")
    unknown = set(value) - {"sources", "level", "grep", "where"}
    if unknown:
        raise SubscriptionError(f"filter: unknown key {sorted(unknown)[0]!r}")
    sources = value.get("sources") or []
    level = value.get("level") or None
    grep = value.get("grep") or None
    where = value.get("where") or None
    if not isinstance(sources, list) or not all(isinstance(item, str) for item in sources):
        raise SubscriptionError("filter.sources: expected a list of names or globs")
    if level is not None and not isinstance(level, str):
        raise SubscriptionError("filter.level: expected a level name")
    if grep is not None and not isinstance(grep, str):
        raise SubscriptionError("filter.grep: expected a regular expression")
    if where is not None and not isinstance(where, str):
        raise SubscriptionError("filter.where: expected an expression")
    return make_filter(sources, level, grep, where)


def request_from_query(query: str, max_replay: int) -> SubscriptionRequest:
    """The request a ``/ws`` query string makes; ``replay`` is capped at ``max_replay``."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except ValueError as error:
        raise SubscriptionError(f"query: {error}") from None
    unknown = set(params) - QUERY_KEYS
    if unknown:
        raise SubscriptionError(f"unknown parameter {sorted(unknown)[0]!r}")

    def last(name: str) -> str | None:
        values = params.get(name)
        return values[-1] if values else None

    sources = [item for value in params.get("source", []) for item in value.split(",") if item]
    client_filter = make_filter(
        sources, last("level") or None, last("grep") or None, last("where") or None
    )
    output_format = last("format") or "json"
    if output_format not in ("json", "text"):
        raise SubscriptionError(f"format: expected json or text, got {output_format!r}")
    replay = _count("replay", last("replay"))
    since = _count("since", last("since"))
    pause = last("pause") or "false"
    if pause not in ("true", "false", "1", "0"):
        raise SubscriptionError(f"pause: expected true or false, got {pause!r}")
    return SubscriptionRequest(
        client_filter,
        "text" if output_format == "text" else "json",
        min(replay or 0, max_replay),
        since,
        last("run") or None,
        pause in ("true", "1"),
    )


def _count(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:  # not "¹", "٣"
        raise SubscriptionError(f"{name}: expected a whole number, got {value!r}")
    return int(value)
