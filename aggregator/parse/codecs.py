"""Pure codecs: a line in, what it says about itself out — event time, level, fields.

Every codec returns ``(ts, level, fields, error)``; any part may be None. A codec never loses
the line: when it cannot parse one it says why in ``error`` and the record keeps the line.

- ``raw``: only a timestamp at the start of the line.
- ``json``: one object per line (orjson); ``ts``/``time``/``timestamp``/``@timestamp`` and
  ``level``/``lvl``/``severity`` are taken out, the other keys are the fields.
- ``logfmt``: ``key=value key2="quoted value"`` pairs, the same keys taken out.
- ``syslog``: RFC 5424 and RFC 3164 (``<PRI>`` optional); severity becomes the level, host,
  app, pid and facility go into the fields.
- ``regex``: a pattern with named groups; ``ts`` and ``level`` groups are taken out.
- ``auto``: per line, cheaply: ``{`` → json, ``<digits>`` → syslog, ``key=`` → logfmt, else
  text (a timestamp at the start, a level word such as ``ERROR`` or ``[warn]`` near it).
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol, cast

from aggregator.lazyjson import ABSENT, UNSURE, FirstValue, loads
from aggregator.parse.timestamps import (
    MONTHS,
    TimestampParser,
    line_start,
    line_start_span,
    make_parser,
    parse_auto,
    parse_iso,
    parse_syslog_time,
)

Parsed = tuple[int | None, str | None, dict[str, Any] | None, str | None]
NOTHING: Parsed = (None, None, None, None)
Stamped = tuple[int | None, str | None]
"""A line's time and level."""
Columns = tuple[
    Sequence[int | None],
    Sequence[str | None],
    Sequence[dict[str, Any] | None],
    Sequence[str | None],
]
"""What a codec said of many lines, as columns: stamps, levels, fields, errors."""

TS_KEYS: Final = ("ts", "time", "timestamp", "@timestamp")
LEVEL_KEYS: Final = ("level", "lvl", "severity", "loglevel", "log.level")
_MISSING: Final = object()

_LEVEL_NAMES: Final = {
    "trace": "trace", "trc": "trace", "finest": "trace", "verbose": "trace",
    "debug": "debug", "dbg": "debug", "fine": "debug", "finer": "debug", "d": "debug",
    "info": "info", "inf": "info", "information": "info", "informational": "info",
    "notice": "info", "i": "info",
    "warn": "warn", "warning": "warn", "wrn": "warn", "w": "warn",
    "error": "error", "err": "error", "eror": "error", "e": "error", "severe": "error",
    "fatal": "fatal", "ftl": "fatal", "crit": "fatal", "critical": "fatal", "alert": "fatal",
    "emerg": "fatal", "emergency": "fatal", "panic": "fatal", "f": "fatal",
}  # fmt: skip
# Numeric levels as pino and bunyan write them.
_NUMERIC_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal"}
SYSLOG_SEVERITY_LEVELS = ("fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug")
SYSLOG_FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip


def normalise_level(value: object) -> str | None:
    """A level as one of trace, debug, info, warn, error, fatal; None if not recognised."""
    if isinstance(value, str):
        level = _LEVEL_NAMES.get(value)  # already in its usual spelling: no new string
        return level if level is not None else _LEVEL_NAMES.get(value.strip().lower())
    if isinstance(value, int) and not isinstance(value, bool):
        return _NUMERIC_LEVELS.get(value)
    return None


class Codec(Protocol):
    def parse(self, line: str) -> Parsed: ...

    def stamp(self, line: str) -> int | None:
        """``parse(line)[0]``, the event time alone, found with less work where it can be:
        what a pipeline whose sinks show only lines and times needs."""


class FieldPicker:
    """Takes the timestamp and level out of a line's key/value fields."""

    def __init__(self, ts_field: str | None, ts_parser: TimestampParser) -> None:
        self.ts_keys: tuple[str, ...] = (ts_field,) if ts_field else TS_KEYS
        self.ts_parser = ts_parser
        self.auto = ts_parser is parse_auto
        """Whether ``ts_parser`` is ``parse_auto``: then called as compiled code calls compiled
        code, not through an attribute holding a callable."""
        self.apart = not any(key in LEVEL_KEYS for key in self.ts_keys)
        """Whether no time key is a level key (then a line's level never depends on its
        time)."""

    def parse_time(self, value: object) -> int | None:
        return parse_auto(value) if self.auto else self.ts_parser(value)

    def stamp(self, fields: dict[str, Any]) -> int | None:
        """``pick(fields)[0]``, leaving ``fields`` as they are."""
        for key in self.ts_keys:
            value = fields.get(key, _MISSING)
            if value is not _MISSING:
                return self.parse_time(value)
        return None

    def pick(self, fields: dict[str, Any]) -> Parsed:
        ts = level = error = None
        for key in self.ts_keys:
            value = fields.get(key, _MISSING)
            if value is not _MISSING:
                del fields[key]
                ts = self.parse_time(value)
                if ts is None:
                    error = f"{key}: not a timestamp: {str(value)[:60]!r}"
                    fields[key] = value
                break
        key = level_key(fields)
        if key:
            level = normalise_level(fields[key])
            if level is not None:
                del fields[key]
        return ts, level, fields or None, error


_LEVEL_KEYS: Final[tuple[str, ...]] = LEVEL_KEYS


def level_key(fields: dict[str, Any], taken: str = "") -> str:
    """The key a line's level is read from: the first of ``LEVEL_KEYS`` in ``fields``
    (``taken`` left out: a time key whose time was read, which ``pick`` takes out first),
    whatever its value; "" when there is none."""
    keys = _LEVEL_KEYS  # compiled: a tuple's items by index, a dict's ``in`` natively
    for index in range(len(keys)):
        key = keys[index]
        if key in fields and not (taken and key == taken):
            return key
    return ""


def level_in(fields: dict[str, Any]) -> str | None:
    """The level ``FieldPicker.pick`` finds in ``fields`` (which have no time key that is also
    a level key), leaving them as they are."""
    key = level_key(fields)
    return normalise_level(fields[key]) if key else None


class RawCodec:
    """Only a timestamp at the start of the line."""

    def parse(self, line: str) -> Parsed:
        return line_start(line), None, None, None

    def stamp(self, line: str) -> int | None:
        return line_start(line)


_LEVEL_WORDS = (
    "TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRIT|CRITICAL|ALERT|EMERG|PANIC"
)
# Upper case as a word (ERROR), any case in brackets ([warn], <Info>): a bare lower-case word
# is too often just a word ("the info desk").
_LEVEL_WORD = re.compile(rf"\b({_LEVEL_WORDS})\b|[\[<(]((?i:{_LEVEL_WORDS}))[\]>)]")
_BRACKETS = "[]<>():"


_BRACKETED_LEVEL = re.compile(rf"[\[<(]((?i:{_LEVEL_WORDS}))[\]>)]")
"""``_LEVEL_WORD``'s second half: it starts with a bracket, which the search skips to."""
_UPPER_LEVEL = re.compile("TRACE|DEBUG|INFO|NOTICE|WARN|ERR|FATAL|CRIT|ALERT|EMERG|PANIC")
"""What an upper-case level word holds (WARNING holds WARN): without one, only a bracketed
level can match, and a search for that alone is several times faster (no word boundary to try
at every character). One search, not a substring test a word: 0.3 against 1 µs a line."""


def level_word(line: str, start: int = 0, words: tuple[str, ...] | None = None) -> str | None:
    """The level a text line names within its first 80 characters, if any. With ``words``
    (``level_words``), None unless those characters, in lower case, hold one of them: what
    a ``where`` that tells only some levels apart needs (``verdicts.telling_levels``)."""
    if words is not None and not _holds_word(line, start, words):
        return None
    window = line[start:80]
    # No upper-case letter: no upper-case word; no opening bracket before a letter: no
    # bracketed level. Each test is much cheaper than the search it spares.
    if not window.islower() and _UPPER_LEVEL.search(line, start, 80) is not None:
        match = _LEVEL_WORD.search(line, start, 80)
        if match is None:
            return None
        return _LEVEL_NAMES.get((match.group(1) or match.group(2)).lower())
    if not _may_be_bracketed(window):
        return None
    bracketed = _BRACKETED_LEVEL.search(line, start, 80)
    return None if bracketed is None else _LEVEL_NAMES.get(bracketed.group(1).lower())


def _may_be_bracketed(window: str) -> bool:
    """Whether ``window`` holds an opening bracket followed by a letter: a bracketed level
    begins so (what ``(?i)`` matches to a level word's first letter is a letter, the dotless
    i and the dotted capital I too), and a process id (``sshd[12]``) does not."""
    for opening in "[<(":
        at = window.find(opening)
        while at >= 0:
            if window[at + 1 : at + 2].isalpha():
                return True
            at = window.find(opening, at + 1)
    return False


def _holds_word(line: str, start: int, words: tuple[str, ...]) -> bool:
    """Whether ``line[start:80]``, in lower case, holds one of ``words``."""
    window = line[start:80].lower()
    return any(word in window for word in words)


def level_words(levels: Iterable[str]) -> tuple[str, ...]:
    """What a line must hold, in lower case, for ``level_word`` to find one of ``levels``:
    the words of its pattern that name one, those holding another left out (``err`` finds
    ``error`` too). The pattern's match, in lower case, is a part of the line in lower case,
    and a level is found only where that is one of these words."""
    wanted = set(levels)
    named = [word.lower() for word in _LEVEL_WORDS.split("|")]
    chosen = [word for word in named if _LEVEL_NAMES[word] in wanted]
    return tuple(
        word for word in chosen if not any(other in word for other in chosen if other != word)
    )


# The words right after a timestamp that name a level as ``TextCodec`` reads them: upper case
# (a trailing colon allowed), or any common case in brackets.
_LEVEL_TOKENS: Final = {
    f"{opening}{spelling}{closing}": level
    for name, level in _LEVEL_NAMES.items()
    for spelling in (name, name.upper(), name.title())
    for opening, closing in ("[]", "<>", "()", ("", ""), ("", ":"))
    if opening or spelling.isupper()
}


class TextCodec:
    """A timestamp at the start of the line and a level word near it (upper case, such as
    ``ERROR``, or in brackets, such as ``[warn]``, within the first 80 characters).

    The word right after the timestamp is looked at first: that is where most formats put the
    level, and one dict lookup is much cheaper than a search.
    """

    def stamp(self, line: str) -> int | None:
        return line_start(line)

    def parse(self, line: str, words: tuple[str, ...] | None = None) -> Parsed:
        """The time and level; ``words``: a level further in the line than right after the
        time is looked for only as ``level_word`` does with them."""
        stamp = line_start_span(line)
        if stamp is None:
            return None, level_word(line, 0, words), None, None
        ts, end = stamp
        return ts, _level_after(line, end, words), None, None

    def stamp_and_telling_level(self, line: str, telling: "LevelNames") -> Stamped:
        """``parse(line, telling.words)``'s time, and its level if that is one of the levels
        ``telling`` was made for; else that level or None. Cheaper where the word after the
        time cannot name one of them (``LevelNames.initials``) and the rest of the first
        80 characters holds none of ``telling.words``: no level looked for at all."""
        stamp = line_start_span(line)
        if stamp is None:
            return None, level_word(line, 0, telling.words)
        ts, end = stamp
        if not _may_begin(line, end, telling) and not _holds_word(line, end, telling.words):
            return ts, None
        return ts, _level_after(line, end, telling.words)


def _level_after(line: str, end: int, words: tuple[str, ...] | None) -> str | None:
    """The level ``TextCodec.parse`` reads in a line whose time ends at ``end``: the word
    right after the time (that is where most formats put it, and one dict lookup is much
    cheaper than a search), else ``level_word`` from there."""
    start = end + 1 if line[end : end + 1] == " " else end
    space = line.find(" ", start, end + 12)
    word = line[start : space if space > 0 else end + 12]
    level = _LEVEL_TOKENS.get(word)  # the commonest layout, "TS LEVEL ...": one lookup
    if level is not None:
        return level
    if not (word and word.isprintable()):  # printable: no white space, the first word
        token = line[end : end + 12].split(None, 1)
        word = token[0] if token else ""
    name = word.strip(_BRACKETS)
    if name and (name.isupper() or len(name) < len(word)):
        level = _LEVEL_NAMES.get(name.lower())
        if level is not None:
            return level
    return level_word(line, end, words)


def _may_begin(line: str, end: int, telling: "LevelNames") -> bool:
    """Whether the word after a time that ends at ``end`` may name a level whose names begin
    with ``telling.initials`` (``_level_after``): its first character that is neither white
    space nor a bracket, within the 12 it reads, is one of them. Read by codes
    (``LevelNames.codes``: no string and no set lookup a character) while they are ASCII."""
    codes = telling.codes
    index, limit = end, min(len(line), end + 12)
    while index < limit:
        code = ord(line[index])
        if code >= 128:
            return _may_begin_as_text(line, end, telling.initials)
        kind = codes[code]
        if kind == _INITIAL:
            return True
        if kind != _SKIPPED_CODE:
            return False
        index += 1
    return False


def _may_begin_as_text(line: str, end: int, initials: frozenset[str]) -> bool:
    """``_may_begin`` by characters, as they are (a line with one outside ASCII there)."""
    index, limit = end, min(len(line), end + 12)
    while index < limit:
        char = line[index]
        if char in initials:
            return True
        if char != " " and char not in _SKIPPED and not char.isspace():
            return False
        index += 1
    return False


_SKIPPED: Final = frozenset(_BRACKETS)
_INITIAL: Final = 1
_SKIPPED_CODE: Final = 2
"""The values of ``LevelNames.codes``."""


_LOWER_TO_ASCII: Final = {"\u0130": "i", "\u212a": "k"}
"""The characters outside ASCII whose lower case begins with an ASCII letter (``İ`` is ``i``
and a combining dot, the Kelvin sign ``k``): a test checks there are no others."""


class LevelNames(NamedTuple):
    """What a text line must hold to name one of some levels (``verdicts.telling_levels``)."""

    words: tuple[str, ...]
    """``level_words``: one of them in the line's first 80 characters, in lower case."""
    initials: frozenset[str]
    """Or right after its time, a word beginning with one of these (brackets skipped): each
    name of the levels' first letter, either case, and what lower-cases to it."""
    codes: bytes
    """``initials`` and what ``_may_begin`` skips, by ASCII code: ``_INITIAL`` for one of
    ``initials``, ``_SKIPPED_CODE`` for white space or a bracket, else 0."""


def names_of_levels(levels: Iterable[str]) -> LevelNames:
    """What ``TextCodec.stamp_and_telling_level`` looks for to find one of ``levels``."""
    wanted = set(levels)
    firsts = {name[0] for name, level in _LEVEL_NAMES.items() if level in wanted}
    others = [char for char, lower in _LOWER_TO_ASCII.items() if lower in firsts]
    initials = frozenset(firsts | {first.upper() for first in firsts} | set(others))
    codes = bytes(
        _INITIAL
        if char in initials
        else _SKIPPED_CODE
        if char == " " or char in _SKIPPED or char.isspace()
        else 0
        for char in map(chr, range(128))
    )
    return LevelNames(level_words(wanted), initials, codes)


class JsonCodec:
    """One JSON object per line."""

    def __init__(self, picker: FieldPicker) -> None:
        self.picker = picker
        self.first_time = FirstValue(picker.ts_keys)

    def parse(self, line: str) -> Parsed:
        try:
            value = loads(line)
        except ValueError as error:  # orjson's JSONDecodeError
            return None, None, None, f"invalid JSON: {error}"
        if not isinstance(value, dict):
            return None, None, None, f"expected a JSON object, got {type(value).__name__}"
        return self.picker.pick(value)

    def stamp(self, line: str) -> int | None:
        """``picker.stamp`` of the object, its time key's value read without the object
        (``FirstValue``), else with it."""
        value = self.first_time.of(line)
        if value is ABSENT:
            return None
        if value is not UNSURE:
            return self.picker.parse_time(value)
        return self.whole_stamp(line)

    def whole_stamp(self, line: str) -> int | None:
        """``stamp(line)`` from the whole object, as ``parse`` reads it."""
        try:
            value = loads(line)
        except ValueError:
            return None
        return self.picker.stamp(value) if isinstance(value, dict) else None


# A quoted value as an unrolled loop (runs of plain characters, then an escape): the same
# strings as ``"(?:[^"\\]|\\.)*"``, without a branch per character (2.5x faster).
_LOGFMT_PAIR = re.compile(r'([^\s=]+)=("[^"\\]*(?:\\.[^"\\]*)*"|[^\s"]*)')
_LOGFMT_START = re.compile(r"[A-Za-z_@][\w.@/-]*=")


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_logfmt(line: str) -> dict[str, Any]:
    """The key=value pairs of a logfmt line; quoted values unescaped."""
    return {key: _unquote(value) for key, value in _LOGFMT_PAIR.findall(line)}


class LogfmtCodec:
    """``key=value`` pairs."""

    def __init__(self, picker: FieldPicker) -> None:
        self.picker = picker

    def parse(self, line: str) -> Parsed:
        fields = parse_logfmt(line)
        if not fields:
            return None, None, None, "no key=value pairs"
        return self.picker.pick(fields)

    def stamp(self, line: str) -> int | None:
        """``picker.stamp(parse_logfmt(line))``, unescaping only the time's value; a line
        that starts with its time (``time="…" level=info …``) is not read further than that
        pair when no other pair can be a time that would win (``_first_pair_wins``)."""
        return self._stamp(line, _LOGFMT_PAIR.match(line))

    def _stamp(self, line: str, first: "re.Match[str] | None") -> int | None:
        """``stamp(line)``, ``first`` the line's first pair if it starts with one."""
        if first is not None and self._first_pair_wins(line, first.group(1), first.end()):
            return self.picker.parse_time(_unquote(first.group(2)))
        pairs: dict[str, str] = dict(_LOGFMT_PAIR.findall(line))  # the last of a key wins
        for key in self.picker.ts_keys:
            value = pairs.get(key)
            if value is not None:
                return self.picker.parse_time(_unquote(value))
        return None

    def _first_pair_wins(self, line: str, key: str, end: int) -> bool:
        """Whether the line's first pair (``key``, ending at ``end``) is the one whose value
        ``stamp`` reads: a time key, and after it no ``KEY=`` of its own or of a key that
        comes before it in ``ts_keys`` (the last of a key wins; such a substring inside a
        value only sends the line the long way)."""
        keys = self.picker.ts_keys
        if key not in keys:
            return False
        for other in keys:
            if line.find(f"{other}=", end) >= 0:
                return False
            if other == key:
                return True
        return False

    def stamp_and_level(self, line: str) -> tuple[int | None, str | None]:
        """``parse(line)``'s time and level, unescaping only their values: what a ``where``
        reads of a line that holds none of the keys it reads. The level's pair is found by
        ``str.find`` where that is sure to find the pair ``parse`` reads (``_level_pair``),
        and the time as ``stamp`` finds it; else every pair is read."""
        first = _LOGFMT_PAIR.match(line)
        if first is not None and self.picker.apart:
            value = _level_pair(line, first)
            if value is not _UNSURE:
                level = None if value is _MISSING else normalise_level(_unquote(str(value)))
                return self._stamp(line, first), level
        pairs: dict[str, str] = dict(_LOGFMT_PAIR.findall(line))
        ts, taken = None, ""
        for key in self.picker.ts_keys:
            value = pairs.get(key)
            if value is not None:
                ts = self.picker.parse_time(_unquote(value))
                taken = key if ts is not None else ""  # ``pick`` takes out a time it reads
                break
        key = level_key(pairs, taken)
        return ts, normalise_level(_unquote(pairs[key])) if key else None


_UNSURE: Final = object()
_LEVEL_MARKS: Final = tuple(f"{key}=" for key in LEVEL_KEYS)
"""What a logfmt line holds where it has a pair of each of ``LEVEL_KEYS``."""


def _level_pair(line: str, first: "re.Match[str]") -> object:
    """The value (still quoted) of the pair ``parse_logfmt(line)`` gives its level key
    (``level_key``), ``_MISSING`` if it has none, or ``_UNSURE`` where ``str.find`` cannot
    say: ``first`` is the line's first pair, and after it, until a ``"``, every pair starts
    at the line's first ``KEY=`` after white space (nothing before can reach over white space
    without quotes). So a ``KEY=`` after ``first``, after white space, before any ``"``, and
    the line's last, is the last pair of that key; no ``KEY=`` at all, no pair of it."""
    start = first.end()
    quote = line.find('"', start)
    for index in range(len(LEVEL_KEYS)):
        key, mark = LEVEL_KEYS[index], _LEVEL_MARKS[index]
        at = line.find(mark, start)
        if first.group(1) == key:
            return first.group(2) if at < 0 else _UNSURE
        if at < 0:
            continue
        if 0 <= quote < at or (at > start and not line[at - 1].isspace()):
            return _UNSURE
        if line.find(mark, at + len(mark)) >= 0:
            return _UNSURE
        return _value_at(line, at, at + len(mark))
    return _MISSING


def _value_at(line: str, at: int, start: int) -> object:
    """The value of the logfmt pair at ``at`` whose ``KEY=`` ends at ``start``
    (``_LOGFMT_PAIR``'s group 2): unquoted, up to the next space (no other white space, which
    is not printable, and no ``"`` in it); else as the pattern finds it."""
    if line[start : start + 1] != '"':
        space = line.find(" ", start)
        value = line[start:] if space < 0 else line[start:space]
        if value.isprintable() and '"' not in value:
            return value
    pair = _LOGFMT_PAIR.match(line, at)
    return _UNSURE if pair is None else pair.group(2)


_RFC5424 = re.compile(
    r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?", re.DOTALL
)
_RFC3164 = re.compile(
    r"(?:<(\d{1,3})>)?([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) (\S+) "
    r"(?:([^\s:\[]+)(?:\[([^\]]*)\])?: ?)?(.*)",
    re.DOTALL,
)


class SyslogCodec:
    """RFC 5424 and RFC 3164 lines, with or without ``<PRI>``."""

    def parse(self, line: str) -> Parsed:
        match = _RFC5424.match(line)
        if match is not None:
            priority, stamp, host, app, pid, msgid, data, message = match.groups()
            parsed = parse_iso(stamp) if stamp != "-" else None
            fields = _syslog_fields(priority, host, app, pid, message)
            if msgid != "-":
                fields["msgid"] = msgid
            if data != "-":
                fields["structured_data"] = data
            level = SYSLOG_SEVERITY_LEVELS[int(priority) & 7] if int(priority) < 192 else None
            return (parsed[0] if parsed else None), level, fields, None
        match = _RFC3164.match(line)
        if match is None:
            return None, None, None, "not a syslog line (RFC 5424 or RFC 3164)"
        priority, stamp, host, app, pid, message = match.groups()
        time_parsed = parse_syslog_time(stamp)
        fields = _syslog_fields(priority, host, app, pid, message)
        level = None
        if priority is not None and int(priority) < 192:
            level = SYSLOG_SEVERITY_LEVELS[int(priority) & 7]
        return (time_parsed[0] if time_parsed else None), level, fields, None

    def stamp(self, line: str) -> int | None:
        return self.parse(line)[0]


def _syslog_fields(
    priority: str | None, host: str, app: str | None, pid: str | None, message: str | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if priority is not None and int(priority) < 192:
        fields["facility"] = SYSLOG_FACILITIES[int(priority) >> 3]
    for key, value in (("host", host), ("app", app), ("pid", pid)):
        if value not in (None, "-"):
            fields[key] = value
    fields["message"] = message or ""
    return fields


class RegexCodec:
    """A pattern with named groups, searched in the line."""

    def __init__(self, pattern: "re.Pattern[str]", picker: FieldPicker) -> None:
        self.pattern = pattern
        self.picker = picker

    def parse(self, line: str) -> Parsed:
        match = self.pattern.search(line)
        if match is None:
            return None, None, None, "does not match the pattern"
        groups = {key: value for key, value in match.groupdict().items() if value is not None}
        return self.picker.pick(groups)

    def stamp(self, line: str) -> int | None:
        return self.parse(line)[0]


def logfmt_like(line: str) -> bool:
    """Whether ``auto`` reads ``line`` (not JSON, not ``<PRI>`` syslog) as logfmt: it starts
    with ``key=``, and not with a syslog time (``Nov 25 10:00:00``)."""
    first = line[:1]
    return (
        (first.isalpha() or first in "_@")
        and not (line[3:4] == " " and line[:3] in MONTHS)
        and _LOGFMT_START.match(line) is not None
    )


class AutoCodec:
    """Picks the codec per line from its first characters; a line that looks like JSON but
    is not is read as text, without a parse error."""

    def __init__(self, picker: FieldPicker) -> None:
        self.json = JsonCodec(picker)
        self.logfmt = LogfmtCodec(picker)
        self.syslog = SyslogCodec()
        self.text = TextCodec()

    def parse(self, line: str) -> Parsed:
        first = line[:1]
        if "0" <= first <= "9":  # a timestamp, most likely: the commonest text line
            return self.text.parse(line)
        if first == "{":
            parsed = self.json.parse(line)
            if parsed[3] is None:
                return parsed
        elif first == "<" and line[1:2].isdigit():
            parsed = self.syslog.parse(line)
            if parsed[3] is None:
                return parsed
        elif logfmt_like(line):
            return self.logfmt.parse(line)
        return self.text.parse(line)

    def stamp(self, line: str) -> int | None:
        """Text, JSON and logfmt lines by the short way (no level looked for); a JSON line
        without a time of its own (or one it cannot read, which ``parse`` reads as text) and
        ``<PRI>`` syslog by ``parse``."""
        first = line[:1]
        if "0" <= first <= "9":
            return line_start(line)
        if first == "{":
            ts = self.json.stamp(line)
            return ts if ts is not None else self.parse(line)[0]
        if first == "<":
            return self.parse(line)[0]
        if logfmt_like(line):
            return self.logfmt.stamp(line)
        return line_start(line)


def parse_lines(codec: Codec, texts: Sequence[str], stamps_only: bool = False) -> Columns:
    """Each of ``texts`` parsed by ``codec`` (an empty line says nothing), as columns; with
    ``stamps_only``, only the times (``Codec.stamp``): the other three are one list of None."""
    if stamps_only:
        stamp = codec.stamp
        nothing = [None] * len(texts)
        return [stamp(text) if text else None for text in texts], nothing, nothing, nothing
    parse = codec.parse
    parsed = [parse(text) if text else NOTHING for text in texts]
    if not parsed:
        return [], [], [], []
    return cast(Columns, tuple(zip(*parsed, strict=True)))


def make_codec(
    name: str,
    ts_field: str | None = None,
    ts_format: str = "auto",
    pattern: str | None = None,
) -> Codec:
    """The codec a source's ``codec``, ``timestamp`` and ``pattern`` describe."""
    picker = FieldPicker(ts_field, make_parser(ts_format))
    codecs: Mapping[str, Any] = {
        "raw": RawCodec,
        "json": lambda: JsonCodec(picker),
        "logfmt": lambda: LogfmtCodec(picker),
        "syslog": SyslogCodec,
        "auto": lambda: AutoCodec(picker),
    }
    if name == "regex":
        if pattern is None:
            raise ValueError("the regex codec needs a pattern")
        return RegexCodec(re.compile(pattern), picker)
    return codecs[name]()  # type: ignore[no-any-return]
