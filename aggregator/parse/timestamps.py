"""Pure timestamp parsing into microseconds since the epoch (UTC).

``auto`` understands RFC 3339 / ISO 8601 (with or without an offset; without one it is UTC),
epoch seconds, milliseconds, microseconds and nanoseconds (told apart by magnitude), syslog's
``Nov 25 10:00:00`` (year inferred) and the Common Log Format's ``25/Nov/2026:10:00:00 +0000``.
A format with ``%`` in it is a ``strptime`` pattern.

Parsing is a per-line cost, so ISO 8601, the common case, has a fast path: fixed positions,
no regex, the epoch of each date-and-second prefix cached, and the last second kept.
"""

import re
import time
from collections.abc import Callable
from typing import Final

MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def utc_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """``calendar.timegm`` of these fields, by arithmetic: calendar imports datetime (a few ms
    of start-up) and builds a date a call. As timegm, a day or time beyond its range runs on
    (February 31 is March 3rd or 2nd); a year outside 1-9999 or a month outside 1-12 is a
    ValueError."""
    if not (1 <= year <= 9999 and 1 <= month <= 12):
        raise ValueError(f"year {year}, month {month}")
    shifted = year - 1 if month <= 2 else year  # years from March: February's leap day last
    era = shifted // 400
    of_era = shifted - era * 400
    first_of_month = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5
    days = era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + first_of_month - 719_468
    return (((days + day - 1) * 24 + hour) * 60 + minute) * 60 + second


_second_epochs: Final[dict[str, int]] = {}
_DIGITS = frozenset("0123456789")
_ISO_TAIL = re.compile(r"(?:[.,](\d{1,9}))?(?:[Zz]|([+-])(\d\d):?(\d\d)?)?", re.ASCII)


def _second_epoch(prefix: str) -> int:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` (T or space), cached; ValueError if not one."""
    epoch = _second_epochs.get(prefix)
    if epoch is not None:
        return epoch
    digits = prefix[:4] + prefix[5:7] + prefix[8:10] + prefix[11:13] + prefix[14:16] + prefix[17:]
    if (
        len(prefix) != 19
        or not (digits.isascii() and digits.isdigit())
        or prefix[4] + prefix[7] + prefix[13] + prefix[16] != "--::"
        or prefix[10] not in "Tt "
    ):
        raise ValueError(prefix)
    year, month, day = int(prefix[:4]), int(prefix[5:7]), int(prefix[8:10])
    hour, minute, second = int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:19])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise ValueError(prefix)
    epoch = utc_seconds(year, month, day, hour, minute, second)
    if len(_second_epochs) > 100_000:
        _second_epochs.clear()
    _second_epochs[prefix] = epoch
    return epoch


def parse_iso(text: str, start: int = 0) -> tuple[int, int] | None:
    """An ISO 8601 timestamp at ``text[start:]``: (microseconds, index just after it)."""
    prefix = text[start : start + 19]
    seconds = _second_epochs.get(prefix)
    if seconds is None:
        if prefix[4:5] != "-" or prefix[7:8] != "-":  # not a date: no exception raised (slow)
            return None
        try:
            seconds = _second_epoch(prefix)
        except ValueError:
            return None
    end = start + 19
    tail = _ISO_TAIL.match(text, end)
    assert tail is not None  # every part of the pattern is optional
    fraction, sign, hours, minutes = tail.groups()
    if sign is not None:
        offset = (int(hours) * 60 + int(minutes or 0)) * 60
        seconds += -offset if sign == "+" else offset
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    return seconds * 1_000_000 + micros, tail.end()


class _Quick:
    """``quick_iso_end``'s state: the second it read last, that second's epoch in µs (a file's
    lines keep to a second for a while, and comparing a line's start with it costs less than
    hashing a slice of it for the dict; the product is kept because mypyc multiplies numbers
    this large through Python's ints), and the µs of the time it read last. One a process:
    lines are parsed on the loop's thread or in a worker process, never in two threads."""

    def __init__(self) -> None:
        self.second_prefix = ""
        self.second_micros = 0
        self.found = 0


_quick: Final = _Quick()


def cached_iso_span(text: str) -> tuple[int, int] | None:
    """``parse_iso(text)`` for the commonest cases, else None (the caller takes the full path):
    a second seen before (``YYYY-MM-DDTHH:MM:SS``) followed by a fraction of six or three
    digits (``.`` or ``,``) and ``Z``, ``+00:00``, a space or nothing; or by ``Z``, a space or
    nothing (``quick_iso_end``)."""
    end = quick_iso_end(text)
    return None if end < 0 else (_quick.found, end)


def quick_iso_end(text: str) -> int:
    """Where the time ``cached_iso_span`` reads ends, its µs left in ``_quick.found``; -1 where
    it reads none. The second is the last one read or one lookup; the digits are read one by
    one (no slice, no ``int()``)."""
    quick = _quick
    if not (quick.second_prefix and text.startswith(quick.second_prefix)):
        prefix = text[:19]
        cached = _second_epochs.get(prefix)
        if cached is None:
            return -1
        quick.second_prefix, quick.second_micros = prefix, cached * 1_000_000
    size = len(text)
    if size == 19:
        quick.found = quick.second_micros
        return 19
    after = ord(text[19])
    if after == 90 or after == 32:  # "Z" or " "
        quick.found = quick.second_micros
        return 20 if after == 90 else 19
    if after != 46 and after != 44:  # neither "." nor ","
        return -1
    # Up to six ASCII digits: six are microseconds, three milliseconds; any other count goes
    # to the full path.
    micros = 0
    end = 20
    while end < 26 and end < size:
        digit = ord(text[end]) - 48
        if digit < 0 or digit > 9:
            break
        micros = micros * 10 + digit
        end += 1
    if end != 26:
        if end != 23:
            return -1
        micros *= 1000
    quick.found = quick.second_micros + micros
    if end == size:
        return end
    zone = ord(text[end])
    if zone == 90:  # "Z"
        return end + 1
    if zone == 32:  # " "
        return end
    if zone == 43 and text.startswith("+00:00", end):
        return end + 6
    return -1


def epoch_to_micros(value: float) -> int:
    """An epoch number in s, ms, µs or ns (told apart by magnitude) as microseconds."""
    magnitude = abs(value)
    if magnitude < 1e11:
        return round(value * 1_000_000)
    if magnitude < 1e14:
        return round(value * 1_000)
    if magnitude < 1e17:
        return int(value)
    return int(value // 1_000)


_SYSLOG = re.compile(r"([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?")
_syslog_epochs: Final[dict[str, int]] = {}
"""The epoch (µs) of each ``Nov 25 10:00:00`` seen, for the hour of the clock in
``_syslog_epochs_hour``: the year a syslog time is put in depends on the clock."""
_syslog_epochs_hour: Final = [0]


def parse_syslog_time(
    text: str, start: int = 0, now_us: int | None = None
) -> tuple[int, int] | None:
    """``Nov 25 10:00:00`` at ``text[start:]``, in the year that puts it not in the future;
    a time seen before in this hour of the clock costs a dict lookup."""
    now = (now_us if now_us is not None else time.time_ns() // 1000) // 1_000_000
    if now // 3600 != _syslog_epochs_hour[0]:
        _syslog_epochs.clear()
        _syslog_epochs_hour[0] = now // 3600
    end = start + 15  # "Nov 25 10:00:00"
    seen = _syslog_epochs.get(text[start:end])
    if seen is not None and text[end : end + 1] != ".":
        return seen, end
    match = _SYSLOG.match(text, start)
    if match is None or match.group(1) not in MONTHS:
        return None
    month = MONTHS[match.group(1)]
    day, hour, minute, second = (int(match.group(i)) for i in range(2, 6))
    year = time.gmtime(now).tm_year
    try:
        seconds = utc_seconds(year, month, day, hour, minute, second)
        if seconds > now + 86_400:  # December's lines read in January
            seconds = utc_seconds(year - 1, month, day, hour, minute, second)
    except (ValueError, OverflowError):
        return None
    if len(_syslog_epochs) > 100_000:
        _syslog_epochs.clear()
    epoch = _syslog_epochs[text[start:end]] = seconds * 1_000_000
    micros = int((match.group(6) or "0").ljust(6, "0"))
    return epoch + micros, match.end()


_CLF = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})")


_clf_micros: dict[str, int] = {}
"""Each ``25/Nov/2026:10:00:00 +0000`` seen, in µs: an access log repeats each second."""


def parse_clf(text: str, start: int = 0) -> tuple[int, int] | None:
    """The Common Log Format's ``25/Nov/2026:10:00:00 +0000`` at ``text[start:]``."""
    end = start + 26
    micros = _clf_micros.get(text[start:end])
    if micros is not None:
        return micros, end
    match = _CLF.match(text, start)
    if match is None or match.group(2) not in MONTHS:
        return None
    day, year = int(match.group(1)), int(match.group(3))
    hour, minute, second = int(match.group(4)), int(match.group(5)), int(match.group(6))
    zone = match.group(7)
    offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * 60 * (1 if zone[0] == "+" else -1)
    try:
        seconds = utc_seconds(year, MONTHS[match.group(2)], day, hour, minute, second)
    except (ValueError, OverflowError):
        return None
    if len(_clf_micros) > 100_000:
        _clf_micros.clear()
    micros = _clf_micros[text[start:end]] = (seconds - offset) * 1_000_000
    return micros, end


def parse_auto(value: object) -> int | None:
    """A field's value as a timestamp in any format ``auto`` knows, or None."""
    if type(value) is str:  # the common case first
        if quick_iso_end(value) == len(value):
            return _quick.found
        parsed = parse_iso(value)
        if parsed is not None and parsed[1] == len(value):
            return parsed[0]
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return epoch_to_micros(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    parsed = parse_iso(text) or parse_syslog_time(text) or parse_clf(text)
    if parsed is not None:
        return parsed[0]
    try:
        return epoch_to_micros(float(text))
    except ValueError:
        return None


TimestampParser = Callable[[object], int | None]


def make_parser(format_name: str) -> TimestampParser:
    """The parser for a source's ``timestamp.format``: "auto", or a ``strptime`` pattern."""
    if format_name == "auto":
        return parse_auto
    if "%" not in format_name:
        raise ValueError(f'expected "auto" or a strptime pattern with %, got "{format_name}"')
    from datetime import UTC, datetime  # here: only a strptime pattern needs it (start-up)

    def parse_pattern(value: object) -> int | None:
        if not isinstance(value, str):
            return parse_auto(value)
        try:
            moment = datetime.strptime(value.strip(), format_name)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp()) * 1_000_000 + moment.microsecond

    return parse_pattern


def parse_line_start(line: str, now_us: int | None = None) -> tuple[int, int] | None:
    """A timestamp that starts a text line (ISO 8601 or syslog, the ISO one perhaps in
    brackets), or a CLF one in brackets within the first 100 characters: (µs, end) or None."""
    if not line:
        return None
    first = line[0]
    parsed = None
    if first in _DIGITS:
        parsed = parse_iso(line)
    elif first == "[":
        parsed = parse_iso(line, 1)
        if parsed is not None and line[parsed[1] : parsed[1] + 1] == "]":
            parsed = parsed[0], parsed[1] + 1
    elif "A" <= first <= "S":
        parsed = parse_syslog_time(line, 0, now_us)
    if parsed is None:
        bracket = line.find("[", 0, 100)
        if bracket >= 0 and line[bracket + 1 : bracket + 2] in _DIGITS:
            parsed = parse_clf(line, bracket + 1)
    return parsed


def line_start_span(line: str) -> tuple[int, int] | None:
    """``parse_line_start``, with the commonest case (``cached_iso_span``) tried first: what
    the codecs call for every line."""
    return cached_iso_span(line) or parse_line_start(line)


def line_start(line: str) -> int | None:
    """The microseconds of ``line_start_span``, or None."""
    parsed = line_start_span(line)
    return parsed[0] if parsed is not None else None
