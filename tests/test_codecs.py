"""Codecs: what a line says about its time, level and fields; the line itself is never lost."""

from typing import Any

import pytest

from aggregator.codecs import make_codec, normalise_level

T0 = 1_795_600_800_000_000  # 2026-11-25T10:00:00Z


@pytest.mark.parametrize(
    ("codec", "line", "ts", "level", "fields", "error"),
    [
        ("raw", "2026-11-25T10:00:00Z ERROR boom", T0, None, None, None),
        ("raw", "no time here", None, None, None, None),
        (
            "json",
            '{"ts": "2026-11-25T10:00:00Z", "level": "ERROR", "msg": "boom", "user": "ann"}',
            T0,
            "error",
            {"msg": "boom", "user": "ann"},
            None,
        ),
        ("json", '{"time": 1795600800000, "lvl": 50}', T0, "error", None, None),
        ("json", '{"@timestamp": "2026-11-25T10:00:00Z"}', T0, None, None, None),
        ("json", '{"ts": "whenever", "x": 1}', None, None, {"ts": "whenever", "x": 1},
         "ts: not a timestamp: 'whenever'"),
        ("json", "[1, 2]", None, None, None, "expected a JSON object, got list"),
        (
            "logfmt",
            'ts=2026-11-25T10:00:00Z level=warn msg="disk \\"sda\\" full" free=3%',
            T0,
            "warn",
            {"msg": 'disk "sda" full', "free": "3%"},
            None,
        ),
        ("logfmt", "just words", None, None, None, "no key=value pairs"),
        (
            "syslog",
            "<165>1 2026-11-25T10:00:00.000Z web01 nginx 4242 ID47 - request done",
            T0,
            "info",
            {"facility": "local4", "host": "web01", "app": "nginx", "pid": "4242",
             "message": "request done", "msgid": "ID47"},
            None,
        ),
        (
            "syslog",
            '<11>1 2026-11-25T10:00:00Z h app - - [ex@1 k="v\\]"] oops',
            T0,
            "error",
            {"facility": "user", "host": "h", "app": "app", "message": "oops",
             "structured_data": '[ex@1 k="v\\]"]'},
            None,
        ),
        ("syslog", "not syslog at all", None, None, None,
         "not a syslog line (RFC 5424 or RFC 3164)"),
    ],
)  # fmt: skip
def test_codecs(
    codec: str,
    line: str,
    ts: int | None,
    level: str | None,
    fields: dict[str, Any] | None,
    error: str | None,
) -> None:
    """Each codec on typical and broken lines."""
    assert make_codec(codec).parse(line) == (ts, level, fields, error)


def test_syslog_rfc3164_with_inferred_year() -> None:
    """<PRI>Mmm dd hh:mm:ss host tag[pid]: message."""
    ts, level, fields, error = make_codec("syslog").parse(
        "<34>Nov 25 10:00:00 mymachine su[230]: 'su root' failed"
    )
    assert error is None and ts is not None
    assert level == "fatal"  # severity 2, critical
    assert fields == {
        "facility": "auth",
        "host": "mymachine",
        "app": "su",
        "pid": "230",
        "message": "'su root' failed",
    }


def test_regex_codec_named_groups() -> None:
    """ts and level groups are taken out; the other groups become fields."""
    codec = make_codec("regex", pattern=r"^(?P<ts>\S+) \[(?P<level>\w+)\] (?P<module>\w+): ")
    assert codec.parse("2026-11-25T10:00:00Z [WARNING] db: slow") == (
        T0,
        "warn",
        {"module": "db"},
        None,
    )
    assert codec.parse("other")[3] == "does not match the pattern"


def test_timestamp_field_and_format_from_config() -> None:
    """timestamp.field and a strptime format pick and read the time."""
    codec = make_codec("json", ts_field="when", ts_format="%d/%m/%Y %H:%M")
    assert codec.parse('{"when": "25/11/2026 10:00", "ts": "kept"}') == (
        T0,
        None,
        {"ts": "kept"},
        None,
    )


@pytest.mark.parametrize(
    ("line", "ts", "level", "has_fields", "error"),
    [
        ('{"ts": "2026-11-25T10:00:00Z", "level": "info"}', T0, "info", False, None),
        ("{not json, just braces", None, None, False, None),
        ("<13>1 2026-11-25T10:00:00Z h a - - - m", T0, "info", True, None),
        ("ts=2026-11-25T10:00:00Z level=debug a=b", T0, "debug", True, None),
        ("2026-11-25T10:00:00Z ERROR db: gone", T0, "error", False, None),
        ("2026-11-25 10:00:00 [warn] low disk", T0, "warn", False, None),
        ("the info desk is open", None, None, False, None),  # lower-case word: not a level
        ("", None, None, False, None),
    ],
)
def test_auto_detects_per_line(
    line: str, ts: int | None, level: str | None, has_fields: bool, error: str | None
) -> None:
    """auto picks json, syslog, logfmt or text by a line's first characters."""
    parsed = make_codec("auto").parse(line)
    assert (parsed[0], parsed[1], parsed[2] is not None, parsed[3]) == (
        ts,
        level,
        has_fields,
        error,
    )


STAMPED_LINES = [
    ("raw", "2026-11-25T10:00:00Z ERROR boom"),
    ("json", '{"ts": "2026-11-25T10:00:00Z", "level": "ERROR", "msg": "boom"}'),
    ("json", '{"time": 1795600800000, "lvl": 50}'),
    ("json", '{"ts": "whenever", "x": 1}'),
    ("logfmt", "ts=2026-11-25T10:00:00Z level=warn msg=hi"),
    ("auto", '{"@timestamp": "2026-11-25T10:00:00.25Z", "level": "info"}'),
    ("auto", "{not json, just braces"),
    ("auto", "<13>1 2026-11-25T10:00:00Z h a - - - m"),
    ("auto", "2026-11-25 10:00:00 [warn] low disk"),
    ("auto", "ts=2026-11-25T10:00:00Z level=debug a=b"),
    ("auto", "Nov 25 10:00:00 host app[1]: text"),
    ("auto", "the info desk is open"),
]


@pytest.mark.parametrize(("codec", "line"), STAMPED_LINES)
def test_stamps_only_finds_the_same_time_and_nothing_else(codec: str, line: str) -> None:
    """For sinks that show only the line and its time, a codec reads only the time (the
    syslog codec, rarely the commonest, still reads everything)."""
    ts = make_codec(codec).parse(line)[0]
    parsed = make_codec(codec, stamps_only=True).parse(line)
    assert parsed == (ts, None, None, None) or (line.startswith("<") and parsed[0] == ts)


@pytest.mark.parametrize(
    ("value", "level"),
    [("WARNING", "warn"), ("Err", "error"), ("crit", "fatal"), (30, "info"), ("loud", None),
     (True, None), ("notice", "info"), (" debug ", "debug")],
)  # fmt: skip
def test_levels_are_normalised(value: object, level: str | None) -> None:
    """Common spellings and pino/bunyan numbers map to the six levels."""
    assert normalise_level(value) == level
