"""``top_level_string`` against orjson, the parse it saves (issue #27)."""

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.parse.codecs import TS_KEYS, make_codec
from aggregator.parse.jsonscan import NO_KEY, UNSURE, top_level_string

KEYS = st.sampled_from([*TS_KEYS, "level", "msg", "t", "tss", "\u00e9", "\U0001f600", "a\nb"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["2026-11-27T03:00:00.024324Z", "Nov 25 10:00:00", "", 'x"y', "\\", "\x7f"]),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def json_objects(draw: st.DrawFn) -> str:
    """A JSON object's text as writers vary it: spacing, ``\\u`` escapes, a key twice."""
    members = draw(st.lists(st.tuples(KEYS, VALUES), max_size=8))
    ascii_only = draw(st.booleans())
    colon, comma = draw(st.sampled_from([(":", ","), (": ", ", "), (" :\t", "\r\n,\n")]))

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=ascii_only, separators=(comma, colon))

    pad = draw(st.sampled_from(["", " ", "\n", " \t"]))
    body = comma.join(f"{dump(key)}{colon}{dump(value)}" for key, value in members)
    return f"{pad}{{{body}}}{pad}"


@st.composite
def damaged(draw: st.DrawFn) -> str:
    """A JSON object's text with one character inserted, replaced or deleted."""
    text = draw(json_objects())
    at = draw(st.integers(0, len(text)))
    char = draw(st.sampled_from([*'{}[],:" \\0e-.tnux\x01\ud800', "1e999", "\\u"]))
    how = draw(st.sampled_from(["insert", "replace", "delete", "cut"]))
    if how == "insert":
        return text[:at] + char + text[at:]
    if how == "replace":
        return text[:at] + char + text[at + 1 :]
    if how == "delete":
        return text[:at] + text[at + 1 :]
    return text[:at]


def orjson_answer(line: str, keys: tuple[str, ...]) -> object:
    """What the scanner must agree with: the first of ``keys`` the object has, its value;
    NO_KEY; or None for a line orjson does not read as an object."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    for key in keys:
        if key in value:
            return value[key]
    return NO_KEY


def check(line: str, keys: tuple[str, ...]) -> int:
    start = top_level_string(line, keys)
    expected = orjson_answer(line, keys)
    if start >= 0:
        assert line[start : line.find('"', start)] == expected
    elif start == NO_KEY:
        assert expected == NO_KEY
    else:
        assert start == UNSURE
    return start


@given(st.one_of(json_objects(), damaged()), st.sampled_from([TS_KEYS, ("time",), ("a\nb",)]))
def test_the_scanner_says_what_orjson_reads(line: str, keys: tuple[str, ...]) -> None:
    """A time the scanner finds is the one orjson's dict holds; a line it calls without one
    has none; valid or not, whatever it cannot be sure of it leaves to orjson."""
    check(line, keys)


@given(
    st.dictionaries(KEYS, VALUES, max_size=8),
    st.sampled_from(TS_KEYS),
    st.from_regex(r"[0-9TZ:. +-]{0,30}", fullmatch=True),
)
def test_the_scanner_is_sure_of_what_writers_write(
    fields: dict[str, Any], key: str, stamp: str
) -> None:
    """On compact JSON as orjson or a logger writes it, with a time without escapes, the
    scanner answers itself (it would save nothing if it gave up)."""
    fields = {name: value for name, value in fields.items() if name not in TS_KEYS}
    fields[key] = stamp
    try:
        line = orjson.dumps(fields).decode()
    except TypeError:
        return  # an integer beyond 64 bits: orjson writes none
    if re.search(r"[-0-9.]{26}|e[-+]?[0-9]{3}", line):
        return  # a long number, or a 3-digit exponent, is left to orjson on purpose
    if "\\u" in line or max(line) >= "\ud800" or _deep(fields):
        return
    assert check(line, TS_KEYS) >= 0


def _deep(value: object, depth: int = 0) -> bool:
    if depth > 50:
        return True
    if isinstance(value, dict):
        return any(_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_deep(v, depth + 1) for v in value)
    return False


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('{"level":"info","ts":"2026-11-27T03:00:00Z","http":{"ts":"x"},"user":{"id":1}}',
         "2026-11-27T03:00:00Z"),
        ('{"@timestamp":"A","log":{"level":"info"},"tags":["a",{"ts":1}]}', "A"),
        ('{"time":"B","ts":"A"}', "A"),  # ts before time, wherever they stand
        ('{"ts":"A","ts":"B"}', "B"),  # the last of a key given twice
        ('{"ts":1,"time":"B"}', UNSURE),  # a number: orjson and the time parser decide
        ('{"ts":"A\\"","time":"B"}', UNSURE),  # an escape
        ('{"t\\u0073":"A"}', "A"),  # an escaped key may be one of the keys
        ('{"t\\n":"A"}', NO_KEY),
        ('{"msg":"x"}', NO_KEY),
        ("{}", NO_KEY),
        ('{"ts":"A"', UNSURE),
        ('{"ts":"A"} x', UNSURE),
        ('{"a":01,"ts":"A"}', UNSURE),
        ('{"a":"\x01","ts":"A"}', UNSURE),
        ('[{"ts":"A"}]', UNSURE),
        ("{" + '"a":' * 0 + '"b":' + "[" * 70 + "]" * 70 + ',"ts":"A"}', UNSURE),
    ],
)  # fmt: skip
def test_the_scanner_on_known_lines(line: str, value: object) -> None:
    """Nested keys are not the object's, the first of the keys wins wherever it stands, and
    what needs orjson's reading is left to it."""
    start = check(line, TS_KEYS)
    if isinstance(value, str):
        assert line[start : line.find('"', start)] == value
    else:
        assert start == value


@given(st.one_of(json_objects(), damaged()))
def test_json_stamp_is_the_orjson_one(line: str) -> None:
    """``JsonCodec.stamp`` by the scanner finds the time the code it replaces found
    (``orjson.loads``, then the field picker), for the json and auto codecs alike."""
    for name in ("json", "auto"):
        codec = make_codec(name)
        assert codec.stamp(line) == codec.parse(line)[0], name
    picker = make_codec("json").picker  # type: ignore[attr-defined]
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        value = None
    expected = picker.stamp(value) if isinstance(value, dict) else None
    assert make_codec("json").stamp(line) == expected
