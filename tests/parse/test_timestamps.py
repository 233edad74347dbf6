"""Timestamp parsing into microseconds since the epoch (UTC)."""

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.parse.timestamps import (
    cached_iso_span,
    epoch_to_micros,
    line_start,
    line_start_span,
    make_parser,
    parse_auto,
    parse_iso,
    parse_line_start,
    parse_syslog_time,
    utc_seconds,
)
from aggregator.record.formats import rfc3339_micros

NOW = calendar.timegm((2026, 11, 25, 12, 0, 0)) * 1_000_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-25T10:00:00.123456Z", "2026-11-25T10:00:00.123456Z"),
        ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00.000000Z"),
        ("2026-11-25 10:00:00,5", "2026-11-25T10:00:00.500000Z"),  # no zone: UTC
        ("2026-11-25T11:00:00.123+01:00", "2026-11-25T10:00:00.123000Z"),
        ("2026-11-25T04:30:00-0530", "2026-11-25T10:00:00.000000Z"),
        ("2026-11-25T10:00:00.123456789Z", "2026-11-25T10:00:00.123456Z"),
        ("1795600800", "2026-11-25T10:00:00.000000Z"),
        ("1795600800.25", "2026-11-25T10:00:00.250000Z"),
        (1795600800123, "2026-11-25T10:00:00.123000Z"),
        (1795600800123456, "2026-11-25T10:00:00.123456Z"),
        (1795600800123456789, "2026-11-25T10:00:00.123456Z"),
        ("25/Nov/2026:11:00:00 +0100", "2026-11-25T10:00:00.000000Z"),
    ],
)
def test_auto_formats(value: object, expected: str) -> None:
    """Every format auto knows, with offsets applied."""
    parsed = parse_auto(value)
    assert parsed is not None
    assert rfc3339_micros(parsed) == expected


@pytest.mark.parametrize(
    "value", ["", "soon", "2026-13-01T00:00:00Z", "2026-11-25T25:00:00Z", "2026-11-25", True, None]
)
def test_not_timestamps(value: object) -> None:
    """Anything else is None, never an exception."""
    assert parse_auto(value) is None


def test_syslog_year_is_inferred() -> None:
    """A syslog time takes the current year, or the last one if it would be in the future."""
    parsed = parse_syslog_time("Nov 25 10:00:00 host", now_us=NOW)
    assert parsed is not None and rfc3339_micros(parsed[0]) == "2026-11-25T10:00:00.000000Z"
    new_year = calendar.timegm((2026, 1, 2, 0, 0, 0)) * 1_000_000
    december = parse_syslog_time("Dec 31 23:59:59", now_us=new_year)
    assert december is not None and rfc3339_micros(december[0]).startswith("2025-12-31")


def test_a_syslog_time_seen_before_follows_the_clock() -> None:
    """The same syslog text read again gives the same time, with or without a fraction, and
    read a year later (by the clock) it moves to that year: what is remembered of it goes
    with the clock's hour."""
    first = parse_syslog_time("Nov 25 10:00:00 host", now_us=NOW)
    again = parse_syslog_time("Nov 25 10:00:00 host", now_us=NOW)
    assert first == again == (calendar.timegm((2026, 11, 25, 10, 0, 0)) * 1_000_000, 15)
    fraction = parse_syslog_time("Nov 25 10:00:00.25 host", now_us=NOW)
    assert fraction == (first[0] + 250_000, 18)
    a_year_on = NOW + 365 * 86_400 * 1_000_000
    later = parse_syslog_time("Nov 25 10:00:00 host", now_us=a_year_on)
    assert later is not None and rfc3339_micros(later[0]).startswith("2027-11-25T10:00:00")


def test_a_clf_time_seen_before_gives_the_same() -> None:
    """A Common Log Format time read again (an access log repeats each second) gives the
    same time, its offset applied; a line led by an address is not read as a date."""
    line = '10.0.0.1 - - [25/Nov/2026:11:00:00 +0100] "GET / HTTP/1.1" 200 5'
    assert line_start(line) == line_start(line) == 1_795_600_800_000_000
    assert parse_line_start("10.0.0.1 - -") is None


def test_line_start() -> None:
    """Text lines: ISO (maybe bracketed) or syslog at the start; CLF in brackets near it."""
    assert line_start("2026-11-25T10:00:00Z INFO x") == 1_795_600_800_000_000
    assert line_start("[2026-11-25T10:00:00Z] x") == 1_795_600_800_000_000
    clf = '127.0.0.1 - - [25/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5'
    assert line_start(clf) == 1_795_600_800_000_000
    assert line_start("1 apple") is None
    assert line_start("") is None


def test_epoch_units_by_magnitude() -> None:
    """Seconds, milliseconds, microseconds and nanoseconds are told apart by size."""
    assert epoch_to_micros(1.5) == 1_500_000
    assert epoch_to_micros(1_795_600_800_000) == epoch_to_micros(1_795_600_800)


def test_strptime_format() -> None:
    """A format with % is a strptime pattern; naive times are UTC."""
    parse = make_parser("%d.%m.%Y %H:%M:%S")
    assert parse("25.11.2026 10:00:00") == 1_795_600_800_000_000
    assert parse("not it") is None
    with pytest.raises(ValueError):
        make_parser("iso")


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-25T10:00:00.123456Z a",
        "2026-11-25T10:00:00.123Z a",
        "2026-11-25T10:00:00Z",
        "2026-11-25T10:00:00 local",
        "2026-11-25T10:00:00",
        "2026-11-25T10:00:00.5Z",
        "2026-11-25T10:00:00+01:00 x",
        "2026-11-25T10:00:00.12345Z",
        "2026-11-25T10:00:00.\uff11\uff12\uff13\uff14\uff15\uff16Z",  # full-width: int() reads them
        "2026-11-25 10:00:00,123 INFO x",
        "2026-11-25 10:00:00,123",
        "2026-11-25 10:00:00,1234 x",
        "2026-11-25T10:00:00.123456+00:00",
        "2026-11-25T10:00:00.123456+00:00 x",
        "2026-11-25T10:00:00.123+00:30",
        "2026-11-25T10:00:00.123456+0000",
        "2026-11-25T10:00:00.1234567Z",
        "2026-11-25T10:00:00.123 x",
        "2026-11-25T10:00:00.123z",
        "[2026-11-25T10:00:00Z] x",
        "Nov 25 10:00:00 host",
        "not a time",
        "",
    ],
)
def test_quick_path_agrees_with_the_full_parser(line: str) -> None:
    """The inlined common case gives what the full parser gives (which has now cached the
    line's second, so the quick path is the one taken)."""
    expected = parse_line_start(line)
    assert line_start_span(line) == expected


@given(
    st.sampled_from(["T", " "]),
    st.text(alphabet="0123456789.,Zz+-: x\uff11\u0663", max_size=14),
    st.sampled_from(["00", "01", "59"]),
    st.sampled_from(["2026-11-25T10:00:00", "2026-11-25 10:00:01", "1999-01-01T00:00:00", ""]),
)
def test_the_quick_path_is_the_full_parser_wherever_it_answers(
    sep: str, rest: str, second: str, before: str
) -> None:
    """After a second seen before, any tail of digits, separators and zones: the quick path
    gives what ``parse_iso`` gives, or leaves the line to it; whichever second it read last
    (``before``: it keeps the last one)."""
    text = f"2026-11-25{sep}10:00:{second}{rest}"
    expected = parse_iso(text)  # caches the second
    parse_iso(before)
    cached_iso_span(before)
    assert cached_iso_span(text) in (None, expected)
    assert cached_iso_span(text) in (None, expected)  # now the last second read


@pytest.mark.parametrize(
    "tail", ["", "Z", " x", ".123Z", ",123", ".123456Z", ".123456+00:00", ".123456 x"]
)
def test_the_quick_path_answers_the_common_times(tail: str) -> None:
    """The common times are read by the quick path, not left to the full parser."""
    text = f"2026-11-25T10:00:00{tail}"
    expected = parse_iso(text)  # caches the second
    assert expected is not None
    assert cached_iso_span(text) == expected


@given(
    st.integers(-2, 10_001),
    st.integers(-1, 14),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
)
def test_utc_seconds_is_calendar_timegm(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> None:
    """The arithmetic that replaced ``calendar.timegm`` gives its seconds, days and times past
    their range included, and refuses the years and months it refuses (session 9)."""
    fields = (year, month, day, hour, minute, second)
    try:
        expected: int | None = calendar.timegm(fields)
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            utc_seconds(*fields)
    else:
        assert utc_seconds(*fields) == expected
