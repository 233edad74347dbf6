"""Codecs: what a line says about its time, level and fields; the line itself is never lost."""

import random
import re
import runpy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.parse.codecs import (
    _LEVEL_NAMES,
    _LEVEL_TOKENS,
    _LEVEL_WORD,
    _LOGFMT_PAIR,
    _LOGFMT_START,
    _LOWER_TO_ASCII,
    AutoCodec,
    LogfmtCodec,
    Parsed,
    TextCodec,
    level_word,
    level_words,
    make_codec,
    names_of_levels,
    normalise_level,
)
from aggregator.parse.timestamps import line_start_span

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


STAMPS = st.sampled_from(
    ["2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123456Z", "2026-11-25 10:00:00.5",
     "2026-11-25T10:00:00+02:00", "2026-13-25T10:00:00Z", "Nov 25 10:00:00", "1795600800",
     "[25/Nov/2026:10:00:00 +0000]", "whenever", "", "2026-11-25 10:00:00,123",
     "2026-11-25T10:00:00.123456+00:00", "Nov 25=1", "Nov=25", "Jan 1 10:00:00"]
)  # fmt: skip
LINES = st.one_of(
    st.builds(  # JSON, with or without a time, readable or not
        lambda key, value, extra: orjson.dumps({key: value, **extra}).decode(),
        st.sampled_from(["ts", "time", "@timestamp", "level", "msg"]),
        st.one_of(STAMPS, st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False), st.none()),
        st.dictionaries(st.sampled_from(["ts", "lvl", "x"]), STAMPS),
    ),
    st.builds(lambda stamp, rest: f"{stamp} {rest}", STAMPS, st.text(max_size=30)),
    st.builds(
        lambda key, stamp: f"{key}={stamp.replace(' ', 'T')} level=warn msg=x",
        st.sampled_from(["ts", "time", "a"]),
        STAMPS,
    ),
    st.builds(  # logfmt: quoted times, escapes, a key given twice (the last one counts)
        lambda first, second, stamp, other: f'{first}="{stamp}" x="a \\"b" {second}={other}',
        st.sampled_from(["ts", "time", "a"]),
        st.sampled_from(["ts", "time", "b"]),
        STAMPS,
        STAMPS.map(lambda stamp: stamp.replace(" ", "T")),
    ),
    st.builds(  # logfmt led by a time, other times or look-alikes after it (#27, session 11)
        lambda first, stamp, rest: f"{first}={stamp.replace(' ', 'T')} {rest}",
        st.sampled_from(["ts", "time", "timestamp", "@timestamp", "a"]),
        STAMPS,
        st.lists(
            st.sampled_from(
                [
                    "ts=",
                    "time=",
                    "@timestamp=",
                    "xts=",
                    '"',
                    "\\",
                    " ",
                    "a=b",
                    'm="ts=1"',
                    "2026-11-25T10:00:01Z",
                    "=",
                    "time",
                ]
            ),
            max_size=8,
        ).map("".join),
    ),
    st.builds(lambda stamp: f"<13>1 {stamp or '-'} h a - - - m", STAMPS),
    st.builds(lambda rest: "{" + rest, st.text(max_size=30)),
    st.builds(lambda stamp: f'10.0.0.1 - - {stamp} "GET / HTTP/1.1" 200 5', STAMPS),
    st.text(max_size=40),
)


@given(LINES)
def test_stamp_is_the_time_parse_finds(line: str) -> None:
    """``stamp``, the short way a codec finds only the time, finds what ``parse`` does."""
    for name in ("raw", "json", "logfmt", "syslog", "auto"):
        codec = make_codec(name)
        assert codec.stamp(line) == codec.parse(line)[0], name


@pytest.mark.parametrize(
    ("value", "level"),
    [("WARNING", "warn"), ("Err", "error"), ("crit", "fatal"), (30, "info"), ("loud", None),
     (True, None), ("notice", "info"), (" debug ", "debug")],
)  # fmt: skip
def test_levels_are_normalised(value: object, level: str | None) -> None:
    """Common spellings and pino/bunyan numbers map to the six levels."""
    assert normalise_level(value) == level


LEVEL_TEXT = st.lists(
    st.sampled_from(["[", "]", "<", ">", "(", ")", " ", ":", "-", "x", "info", "INFO", "Warn",
                     "WARNING", "error", "ERR", "TRACEx", "\u0130nfo", "\u0131nfo", "cRIT",
                     "kernel[12]:", "get", "GET", "\u00c9", "\u00e9", "1", "\u212a"]),
    max_size=40,
).map("".join)  # fmt: skip


@given(LEVEL_TEXT, st.integers(0, 20))
def test_level_word_finds_what_the_full_pattern_finds(line: str, start: int) -> None:
    """The level word found with the quick look first is the full pattern's (#27)."""
    match = _LEVEL_WORD.search(line, start, 80)
    expected = _LEVEL_NAMES.get((match.group(1) or match.group(2)).lower()) if match else None
    assert level_word(line, start) == expected


@pytest.mark.parametrize(
    ("line", "level"),
    [("x (warn) y", "warn"), ("x <Info> y", "info"), ("x [ERROR] y", "error"),
     ("node-3 kernel[1]: db miss", None), ("get /x http/1.1 error", None),
     ("GET /x HTTP/1.1 500", None), ("\u00e9t\u00e9 ERROR x", "error"), ("(crit)", "fatal"),
     ("12 34 --", None), ("x [\u0131nfo]", None), ("x [\u0130NFO] y", None),
     ("sshd[12]: <1> (2) [warn]", "warn"), ("a [ [info]", "info"), ("a (\u212aa)", None)],
)  # fmt: skip
def test_level_word_with_one_kind_of_bracket_or_case(line: str, level: str | None) -> None:
    """Each quick test ``level_word`` skips a search by (no upper case, no bracket)."""
    assert level_word(line) == level


def test_level_word_on_production_text_lines_finds_what_the_full_pattern_finds() -> None:
    """Each text kind of bench/workload.py, from every start a time may end at."""
    workload = runpy.run_path(str(Path(__file__).parents[2] / "bench" / "workload.py"))
    rng = random.Random(27)
    for kind in ("nginx", "syslog", "python", "logfmt"):
        for number in range(200):
            for _, raw in workload["MAKERS"][kind](rng, 1_764_064_800_000_000, f"id={number}"):
                line = raw.decode()
                for start in range(0, 48, 3):
                    match = _LEVEL_WORD.search(line, start, 80)
                    group = (match.group(1) or match.group(2)).lower() if match else ""
                    assert level_word(line, start) == _LEVEL_NAMES.get(group), (line, start)


SOME_LEVELS_TEXT = st.lists(
    st.sampled_from(["[", "]", "<", ")", " ", ":", "x", "info", "INFO", "[Trace]", "TRACE",
                     "debug", "DEBUG", "WARNING", "Err", "PANIC", "\u0130nfo", "\u0131nfo"]),
    max_size=30,
).map("".join)  # fmt: skip


@settings(max_examples=500)
@given(
    SOME_LEVELS_TEXT,
    st.integers(0, 20),
    st.sets(st.sampled_from(["trace", "debug", "info", "warn", "error", "fatal"])),
)
def test_level_word_among_some_levels_finds_those_as_it_finds_all(
    line: str, start: int, levels: set[str]
) -> None:
    """Told to look only for some levels (``level_words``), ``level_word`` finds what it
    finds otherwise when that is one of them, and else none of them."""
    found = level_word(line, start)
    among = level_word(line, start, level_words(levels))
    assert among == found if found in levels else among not in levels


def test_level_words_are_the_pattern_s_shortest() -> None:
    """``err`` stands for ``error``, ``warn`` for ``warning``, ``crit`` for ``critical``."""
    assert level_words(["error", "warn"]) == ("warn", "err")
    assert level_words(["fatal"]) == ("fatal", "crit", "alert", "emerg", "panic")
    assert level_words(["trace", "debug"]) == ("trace", "debug")
    assert level_words([]) == ()


@pytest.mark.parametrize("ts_field", [None, "lvl", "level", "t"])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["time", "ts", "level", "lvl", "severity", "t", "msg", "k.v",
                             "loglevel", "log.level", "xlevel", "a"]),
            st.sampled_from(["2026-11-25T10:00:00Z", '"2026-11-25 10:00:00"', "debug",
                             '"WARN "', "30", "1764064800", "x", '"a \\"b\\""', "",
                             '"x level=debug"', "level=trace", '"', "lvl=info"]),
            st.sampled_from([" ", "  ", "\u2003", "", '"']),
        ),
        max_size=6,
    ).map(lambda pairs: "".join(f"{key}={value}{gap}" for key, value, gap in pairs))
)  # fmt: skip
def test_logfmt_time_and_level_alone_are_those_of_a_whole_parse(
    ts_field: str | None, line: str
) -> None:
    """``stamp_and_level``: the time and level ``parse`` finds, whatever the time's key, with
    the level's pair found by ``str.find`` or not (keys that hold others, ``KEY=`` inside
    values quoted or not, a key twice, white space outside ASCII)."""
    codec = make_codec("logfmt", ts_field)
    assert isinstance(codec, LogfmtCodec)
    ts, level, _, _ = codec.parse(line)
    assert codec.stamp_and_level(line) == (ts, level)


@given(
    st.lists(
        st.sampled_from(["a", "=", '"', "\\", " ", "x=", 'k="v w"', "\n", "\u00e9", '\\"']),
        max_size=30,
    ).map("".join)
)
def test_logfmt_pairs_as_the_plain_pattern_finds_them(line: str) -> None:
    """The unrolled pattern for quoted values finds the pairs the plain one does (#27)."""
    plain = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
    assert _LOGFMT_PAIR.findall(line) == plain.findall(line)


def _auto_parse_before(codec: AutoCodec, line: str) -> Parsed:
    """``AutoCodec.parse`` before session 9, which tried logfmt's pattern on a syslog line."""
    first = line[:1]
    if "0" <= first <= "9":
        return codec.text.parse(line)
    if first == "{":
        parsed = codec.json.parse(line)
        if parsed[3] is None:
            return parsed
    elif first == "<" and line[1:2].isdigit():
        parsed = codec.syslog.parse(line)
        if parsed[3] is None:
            return parsed
    elif (first.isalpha() or first in "_@") and _LOGFMT_START.match(line) is not None:
        return codec.logfmt.parse(line)
    return codec.text.parse(line)


@given(
    st.one_of(
        LINES,
        st.builds(
            lambda month, rest: f"{month}{rest}",
            st.sampled_from(["Nov", "Jan", "Nox", "ts=", "a=b", "@ab", "_x"]),
            st.sampled_from([" ", "=", "= ", "x=", " 25 10:00:00 h app[1]: ", " a=b"]).flatmap(
                lambda sep: st.text(max_size=20).map(lambda tail: sep + tail)
            ),
        ),
    )
)
def test_auto_parse_as_before_with_syslog_lines_skipping_logfmt(line: str) -> None:
    """A line led by a syslog time skips logfmt's pattern (it cannot match: a space before
    any ``=``) and is read as it was (#27, session 9)."""
    codec = make_codec("auto")
    assert isinstance(codec, AutoCodec)
    assert codec.parse(line) == _auto_parse_before(codec, line)


def _text_parse_before(line: str) -> Parsed:
    """``TextCodec.parse`` before session 11, which split the window after the time even
    when its first lookup had the first word already."""
    stamp = line_start_span(line)
    if stamp is None:
        return None, level_word(line), None, None
    ts, end = stamp
    if line[end : end + 1] == " ":
        space = line.find(" ", end + 1, end + 12)
        level = _LEVEL_TOKENS.get(line[end + 1 : space if space > 0 else end + 12])
        if level is not None:
            return ts, level, None, None
    token = line[end : end + 12].split(None, 1)
    if token:
        word = token[0]
        bare = word.strip("[]<>():")
        if bare and (bare.isupper() or len(bare) < len(word)):
            level = _LEVEL_NAMES.get(bare.lower())
            if level is not None:
                return ts, level, None, None
    return ts, level_word(line, end), None, None


@settings(max_examples=500)
@given(
    st.sampled_from(["2026-11-25T10:00:00Z", "Nov 25 10:00:00", "[2026-11-25 10:00:00]", "x",
                     '1.2.3.4 - - [25/Nov/2026:10:00:00 +0000] "GET']),
    st.lists(
        st.sampled_from([" ", "  ", "\t", "\u00a0", "\u2028", "\x1c", "\x00", "[", "]", ":",
                         "(", "D", "d", "WARN", "info", "Info", "[info]", "ERROR:", "x", "-",
                         "verylongwordhere", "\u0130", "FINE", "ok"]),
        max_size=8,
    ).map("".join),
)  # fmt: skip
def test_text_levels_as_before(stamp: str, rest: str) -> None:
    """The word after the time taken from the first lookup when it holds no white space:
    the same times and levels as splitting the window for it."""
    line = stamp + rest
    assert TextCodec().parse(line) == _text_parse_before(line)


def test_only_two_characters_outside_ascii_lower_case_to_an_ascii_letter() -> None:
    """``names_of_levels`` adds to a level's initials what lower-cases to one of them: the
    characters ``_LOWER_TO_ASCII`` names are all there are."""
    found = {
        char: char.lower()[0]
        for char in map(chr, range(0x80, 0x110000))
        if char.lower()[:1].isascii() and char.lower()[:1].isalpha()
    }
    assert found == _LOWER_TO_ASCII


TIMES_FIRST = st.sampled_from(
    ["2026-11-25T10:00:00Z", "Nov 25 10:00:00", "10.0.0.1 - - [25/Nov/2026:10:00:00 +0000]",
     "2026-11-25 10:00:00,041", "", "x"]
)  # fmt: skip
GAPS = st.sampled_from([" ", "  ", "\t", "\u2003", "[", "(", "<", ">", ":", ")", "]"])
LEVELISH = st.sampled_from(
    ["debug", "DEBUG", "Debug", "D", "d", "DBG", "FINE", "finer", "Verbose", "TRC", "trace",
     "INFO", "I", "i", "\u0130", "\u212a", "WARN", "error", "x", "node-3", '"GET', "debugger",
     "xDEBUG", "notice", "GET", "API:"]
)  # fmt: skip
LEVEL_AFTER_TIME = st.tuples(
    TIMES_FIRST,
    st.lists(GAPS, max_size=3).map("".join),
    LEVELISH,
    st.lists(st.one_of(GAPS, LEVELISH), max_size=8).map("".join),
).map("".join)


@settings(max_examples=800)
@given(
    LEVEL_AFTER_TIME,
    st.sets(st.sampled_from(["trace", "debug", "info", "warn", "error", "fatal"]), min_size=1),
)
def test_a_text_line_s_telling_level_is_the_parse_s(line: str, levels: set[str]) -> None:
    """``stamp_and_telling_level``: ``parse``'s time, and ``parse``'s level when that is one
    of ``levels`` (else none of them), though it reads less where none can be there."""
    assert_telling_level_is_the_parse_s(line, levels)


def assert_telling_level_is_the_parse_s(line: str, levels: set[str]) -> None:
    """``stamp_and_telling_level`` against ``parse`` with the words (what the short way
    reads) and without (a line parsed whole, as a sink that judges nothing reads it)."""
    codec = TextCodec()
    names = names_of_levels(levels)
    found_ts, found = codec.stamp_and_telling_level(line, names)
    for words in (names.words, None):
        ts, level, _, _ = codec.parse(line, words)
        assert found_ts == ts
        assert found == level if level in levels else found not in levels


FILLER = st.text(alphabet="ab -:\u00e9", max_size=80)
NEAR_80_TOKENS = st.sampled_from(
    ["[debug]", "<Trace>", "(DEBUG)", "DEBUG", "TRACE", "[", "(", "<", "[d", "[t", "[D",
     "[DEBU\u212a]", "[\u0130nfo]", "[\u0131nfo]", "[info]", "INFO", "WARNING", "[warn]",
     "[ERR]", "ERROR", "[\u017ftuff]", "DEBUGGING", "xTRACEx", "[debugger]", "(crit)", "NOTICE"]
)  # fmt: skip


@settings(max_examples=1500)
@given(
    TIMES_FIRST,
    FILLER,
    st.lists(NEAR_80_TOKENS, min_size=1, max_size=3).map(" ".join),
    st.text(alphabet="ab ])>", max_size=6),
    st.sets(st.sampled_from(["trace", "debug", "info", "warn", "error", "fatal"]), min_size=1),
)
def test_a_level_word_about_the_80th_character_is_told_as_parse_tells_it(
    time_first: str, filler: str, tokens: str, tail: str, levels: set[str]
) -> None:
    """Upper-case level words and bracketed ones (in any case, with letters outside ASCII)
    before, across and after the 80th character, after text of any length: the telling
    level is ``parse``'s, whichever levels are told apart."""
    assert_telling_level_is_the_parse_s(f"{time_first} {filler}{tokens}{tail}", levels)


def test_the_initials_of_trace_and_debug() -> None:
    """What a word right after the time may begin with to name trace or debug (``d``,
    ``dbg``, ``fine``, ``verbose``, ``trc``…), in either case; info (``notice``, ``i``),
    and what lower-cases to ``i``."""
    assert names_of_levels({"trace", "debug"}).initials == set("DFTVdftv")
    assert names_of_levels({"info"}).initials == set("INin\u0130")  # info, notice, and İ


@pytest.mark.parametrize("levels", [{"trace", "debug"}, {"info"}, {"warn", "error", "fatal"}])
@pytest.mark.parametrize(
    "token", ["[debug]", "<Trace>", "(dbg)", "DEBUG", "TRACE", "[d", "[\u0130nfo]", "<info>",
              "NOTICE", "[Warn]", "(ERR)", "FATAL"]
)  # fmt: skip
def test_a_level_word_at_each_place_about_the_80th_character(token: str, levels: set[str]) -> None:
    """A level word placed at each character from the 60th to past the 80th, after a word
    that names no level: found as ``parse`` finds it, by the last character it may use."""
    for place in range(60, 86):
        head = f"2026-11-25T10:00:00Z x {'-' * (place - 23)}"
        assert len(head) == place
        assert_telling_level_is_the_parse_s(f"{head}{token} y", levels)
