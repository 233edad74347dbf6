"""A JSON line's time read through msgspec (``lazyjson.FirstValue``) against orjson's object:
the same value, or ``UNSURE`` where msgspec cannot say what orjson would (issue #27); and the
one difference kept, a number too large for a double elsewhere in the line."""

import json
import random
import runpy
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aggregator.lazyjson import ABSENT, UNSURE, FirstValue
from aggregator.parse.codecs import TS_KEYS, FieldPicker, JsonCodec, make_codec
from aggregator.parse.timestamps import make_parser

REFUSED = object()
"""orjson refuses the line, or it holds no object: the old path gives no time."""


def infinite_for_orjson(line: str) -> bool:
    """orjson refuses ``line`` at a number too large for a double (valid JSON, which msgspec
    skips: the difference ``FirstValue`` keeps)."""
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return "infinity" in str(error)
    return False


def first_of(value: object, keys: tuple[str, ...]) -> object:
    if not isinstance(value, dict):
        return REFUSED
    for key in keys:
        if key in value:
            found = value[key]
            if type(found) is int and not -(1 << 63) <= found < 1 << 64:
                return float(found)  # as orjson reads it
            return found
    return ABSENT


def orjson_first(line: str, keys: tuple[str, ...]) -> object:
    """What ``FirstValue.of`` must say unless ``UNSURE``, read from orjson's whole object;
    where orjson refuses a number too large for a double, from the standard library's."""
    try:
        return first_of(orjson.loads(line), keys)
    except orjson.JSONDecodeError as error:
        if "infinity" not in str(error):
            return REFUSED
    try:
        return first_of(json.loads(line), keys)
    except ValueError:
        return REFUSED


def as_orjson_reads(value: object) -> object:
    """``value`` with each integer outside 64 bits a float, as orjson reads it. ``FirstValue``
    does so only at the top: a time inside an array or object is no time."""
    if isinstance(value, list):
        return [as_orjson_reads(item) for item in value]
    if isinstance(value, dict):
        return {key: as_orjson_reads(item) for key, item in value.items()}
    if type(value) is int and not -(1 << 63) <= value < 1 << 64 and value.bit_length() < 1024:
        return float(value)  # (a longer one is infinite: the line holds it where orjson refused)
    return value


def same(got: object, expected: object) -> bool:
    """Equal, and of the same type (1 and 1.0, 0.0 and -0.0 told apart)."""
    got, expected = as_orjson_reads(got), as_orjson_reads(expected)
    return type(got) is type(expected) and repr(got) == repr(expected)


SPACE = st.sampled_from(["", "", "", " ", "\t", "\n", "\r", "  ", "\x0c", "\xa0", "\u2028"])
KEYS = st.sampled_from(
    ["ts", "time", "timestamp", "@timestamp", "t\\u0073", "\\u0074ime", "level", "msg", "a", "",
     "ts ", "TS", "@timestamp\\u0000", "tim\\u00e9", "\\ud83d\\ude00", "\\ud800"]
)  # fmt: skip
DIGITS = st.sampled_from(
    ["0", "1", "7", "123", "01", "00", "1700000000", "1764064800000000", "18446744073709551615",
     "18446744073709551616", "9223372036854775808", "9" * 25, "1" * 199, "1" * 200, "1" * 309,
     "1" * 400, ""]
)  # fmt: skip
FRACTIONS = st.sampled_from(["", "", ".", ".5", ".000001", ".1234567890123456789", "." + "0" * 330])
EXPONENTS = st.sampled_from(
    ["", "", "e", "E", "e+", "e-", "E+", "E-", "e0", "e9", "e99", "e-99", "e308", "e309", "e+309",
     "E400", "e-400", "e0400", "e+00001", "e1e", "e-324", "e-330"]
)  # fmt: skip
NUMBERS = st.builds(
    lambda sign, digits, fraction, exponent: sign + digits + fraction + exponent,
    st.sampled_from(["", "", "-", "+"]),
    DIGITS,
    FRACTIONS,
    EXPONENTS,
)
PIECES = st.sampled_from(
    ["a", "é", "\u2028", "\\n", "\\t", "\\/", '\\"', "\\\\", "\\u00e9", "\\u0000", "\\ud800",
     "\\udc00", "\\ud83d\\ude00", "\\ud83d", "\\q", "\\u12", "\x01", "\x1f", "\x7f", "\ud800",
     "e400", "1e999", "2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123456+01:00", " ", "{", "]",
     "\ufeff", "\U0001f600"]
)  # fmt: skip
STRINGS = st.lists(PIECES, max_size=6).map(lambda parts: '"' + "".join(parts) + '"')
SCALARS = st.one_of(
    NUMBERS,
    STRINGS,
    st.sampled_from(["true", "false", "null", "tru", "nul", "NaN", "Infinity", "-Infinity", "'a'"]),
)


def joined(items: list[str], spaces: list[str], opening: str, closing: str, comma: str) -> str:
    spaced = [space + item for item, space in zip(items, spaces, strict=False)]
    return opening + comma.join(spaced) + closing


COMMAS = st.sampled_from([",", ",", ",", ", ", ",,", "", ";"])


def objects(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.builds(
        lambda key, before, colon, value: f'"{key}"{before}{colon}{value}',
        KEYS,
        SPACE,
        st.sampled_from([":", ":", ": ", " :", ""]),
        values,
    )
    return st.builds(
        joined,
        st.lists(pair, max_size=6),
        st.lists(SPACE, min_size=6, max_size=6),
        st.sampled_from(["{", "{", "{", "{ "]),
        st.sampled_from(["}", "}", "}", " }", "},", ""]),
        COMMAS,
    )


def arrays(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        joined,
        st.lists(values, max_size=4),
        st.lists(SPACE, min_size=4, max_size=4),
        st.just("["),
        st.sampled_from(["]", "]", "]]", ""]),
        COMMAS,
    )


VALUES = st.recursive(
    SCALARS, lambda inner: st.one_of(objects(inner), arrays(inner)), max_leaves=12
)
JSONISH = st.one_of(
    st.builds(
        lambda before, top, after, junk: before + top + after + junk,
        SPACE,
        st.one_of(objects(VALUES), objects(VALUES), VALUES),
        SPACE,
        st.sampled_from(["", "", "", "x", "}", " {}", "\x00", "\n{}"]),
    ),
    st.text(alphabet='{}[]":,-+.eE0123456789 \\nultrfas', max_size=30),
)
GOOD_SPACE = st.sampled_from(["", "", " ", "\t", "\n", "\r", "  "])
GOOD_NUMBERS = st.builds(
    lambda sign, digits, fraction, exponent: sign + digits + fraction + exponent,
    st.sampled_from(["", "", "-"]),
    DIGITS.filter(lambda digits: digits == "0" or digits[:1] not in ("", "0")),
    FRACTIONS.filter(lambda fraction: fraction != "."),
    EXPONENTS.filter(lambda exponent: exponent[-1:].isdigit() or not exponent),
)
GOOD_SCALARS = st.one_of(
    GOOD_NUMBERS, STRINGS, st.sampled_from(["true", "false", "null", '"2026-11-25T10:00:00Z"'])
)


def good_objects(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.builds(
        lambda key, space, value: f'"{key}"{space}:{space}{value}', KEYS, GOOD_SPACE, values
    )
    return st.builds(
        joined,
        st.lists(pair, max_size=6),
        st.lists(GOOD_SPACE, min_size=6, max_size=6),
        st.just("{"),
        st.just("}"),
        st.sampled_from([",", ", ", ",\t"]),
    )


def good_arrays(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        joined,
        st.lists(values, max_size=4),
        st.lists(GOOD_SPACE, min_size=4, max_size=4),
        st.just("["),
        st.just("]"),
        st.just(","),
    )


GOOD_VALUES = st.recursive(
    GOOD_SCALARS, lambda inner: st.one_of(good_objects(inner), good_arrays(inner)), max_leaves=12
)
WELL_FORMED = st.builds(lambda before, top, after: before + top + after, GOOD_SPACE,
                        good_objects(GOOD_VALUES), GOOD_SPACE)  # fmt: skip
"""JSON objects laid out as JSON, their leaves drawn as above (strings with every escape,
numbers of every size): where msgspec and orjson may differ on what they hold, not on how it
is written."""
VALID = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(1 << 63), (1 << 64) - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from([*TS_KEYS, "level", "msg", "x"]), inner, max_size=4),
    ),
    max_leaves=10,
)


def edited(line: str, edits: list[tuple[int, str]]) -> str:
    """``line`` with each ``(at, text)``: ``text`` put in at ``at`` (mod its length), the
    character there replaced when ``text`` is one character."""
    for at, text in edits:
        at = at % (len(line) + 1)
        line = line[:at] + text + line[at + len(text) % 2 :]
    return line


EDITED = st.builds(
    edited,
    st.dictionaries(st.sampled_from([*TS_KEYS, "level", "x"]), VALID, max_size=4).map(
        lambda value: orjson.dumps(value).decode()
    ),
    st.lists(st.tuples(st.integers(0, 400), st.one_of(PIECES, NUMBERS, SPACE)), max_size=3),
)

CONFIGURED = [TS_KEYS, ("@timestamp",), ("time",), ("level",), ("a.b",), ("ts", "ts ")]


@settings(max_examples=1500)
@given(st.one_of(WELL_FORMED, JSONISH, EDITED), st.sampled_from(CONFIGURED))
@example('{"x": 1.5e999, "ts": 1}', TS_KEYS)
@example('{"x": 1' + "0" * 308 + ', "ts": 1}', TS_KEYS)
@example('{"x": 1' + "0" * 300 + "e9" + ', "ts": 1}', TS_KEYS)
@example('{"ts": 18446744073709551616}', TS_KEYS)
@example('{"ts": -9223372036854775809}', TS_KEYS)
@example('{"ts": 1e400}', TS_KEYS)
@example('{"ts": 1' + "0" * 400 + "}", TS_KEYS)
@example('{"ts": -1' + "0" * 310 + "}", TS_KEYS)
@example('{"ts": "", "ts": [0, 0, 18446744073709551616]}', TS_KEYS)
@example('{"ts": "\\ud800"}', TS_KEYS)
@example('{"ts": 1, "ts": null}', TS_KEYS)
@example('{"time": 2, "t\\u0073": 3}', TS_KEYS)
@example("[1]", TS_KEYS)
@example('{"ts": 1}\x0c', TS_KEYS)
def test_first_value_is_orjsons(line: str, keys: tuple[str, ...]) -> None:
    """On JSON-ish text (nesting, escapes, surrogates, big numbers, duplicate keys, white
    space, trailing bytes, tops that are not objects, and valid lines edited), the value
    ``FirstValue`` reads is what orjson's object holds, or ``UNSURE``; never a value where
    orjson refuses the line."""
    got = FirstValue(keys).of(line)
    if got is UNSURE:
        return
    expected = orjson_first(line, keys)
    assert expected is not REFUSED, (line, got)
    assert same(got, expected), (line, got, expected)


@pytest.mark.parametrize("depth", [10, 500, 1000, 1022, 1023, 1024, 1025, 5000])
@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_deep_nesting_is_orjsons(depth: int, opening: str) -> None:
    """Past its recursion limit msgspec raises RecursionError, orjson refuses past 1024
    levels: either way, what orjson says (a line refused never gets a time)."""
    closing = "]" if opening == "[" else "}"
    line = '{"x":' + opening * depth + "1" + closing * depth + ', "ts": 5}'
    got = FirstValue(TS_KEYS).of(line)
    expected = orjson_first(line, TS_KEYS)
    assert got is UNSURE or (expected is not REFUSED and same(got, expected))
    codec = make_codec("json")
    assert isinstance(codec, JsonCodec)
    assert codec.stamp(line) == codec.whole_stamp(line)


@pytest.mark.parametrize("number", ["1" + "0" * 400, "-1" + "0" * 310])
def test_a_time_too_large_for_a_double_is_no_time(number: str) -> None:
    """An integer time key that a double cannot hold: orjson refuses the line, and it gets
    no time, as before (msgspec reads it as an int, which ``float`` cannot take)."""
    line = '{"ts": ' + number + ', "msg": "big"}'
    assert FirstValue(TS_KEYS).of(line) is UNSURE
    codec = make_codec("auto")
    assert codec.stamp(line) is None
    assert codec.stamp(line) == codec.parse(line)[0]


@pytest.mark.parametrize("number", ["1e400", "-1E+309", "1" + "0" * 309, "9" * 300 + "e9"])
def test_a_number_too_large_for_a_double_leaves_the_time(number: str) -> None:
    """orjson refuses such a line (its whole read, json output and a where's, finds no time in
    it); the time read alone is still the line's (docs/records.md)."""
    line = '{"x": ' + number + ', "ts": 1764064800}'
    assert infinite_for_orjson(line)
    assert FirstValue(TS_KEYS).of(line) == 1764064800
    codec = make_codec("json")
    assert isinstance(codec, JsonCodec)
    assert codec.whole_stamp(line) is None
    assert codec.stamp(line) == 1_764_064_800_000_000  # µs


@settings(max_examples=500)
@given(st.floats(allow_nan=False), st.sampled_from(["", "e0", "e+0", "E-0"]))
def test_numbers_are_orjsons(number: float, suffix: str) -> None:
    """A time key's number, however written, reads as orjson reads it."""
    line = '{"ts": ' + repr(number).replace("inf", "1e999") + suffix + "}"
    got = FirstValue(TS_KEYS).of(line)
    expected = orjson_first(line, TS_KEYS)
    assert got is UNSURE or same(got, expected), (line, got, expected)


def production_lines() -> list[tuple[str, str]]:
    """Lines of each kind of bench/workload.py, with their kind."""
    workload = runpy.run_path(str(Path(__file__).parents[2] / "bench" / "workload.py"))
    rng = random.Random(14)
    lines: list[tuple[str, str]] = []
    for kind in workload["KINDS"]:
        for number in range(600):
            made = workload["MAKERS"][kind](rng, 1_764_064_800_000_000 + number, f"id={number}")
            lines.extend((kind, raw.decode()) for _, raw in made)
    return lines


def test_production_lines_read_the_short_way_with_the_old_times() -> None:
    """Every production JSON line is read through msgspec (never ``UNSURE``), and each codec
    that reads JSON gives it the time the whole object gave it; ``auto`` gives every kind's
    line the time its ``parse`` finds."""
    pickers = [
        FieldPicker(None, make_parser("auto")),
        FieldPicker("@timestamp", make_parser("auto")),
    ]
    auto = make_codec("auto")
    for kind, line in production_lines():
        assert auto.stamp(line) == auto.parse(line)[0], (kind, line)
        if not kind.endswith("-json"):
            continue
        assert FirstValue(TS_KEYS).of(line) is not UNSURE, line
        for picker in pickers:
            codec = JsonCodec(picker)
            assert codec.stamp(line) == codec.whole_stamp(line), (kind, line)


@settings(max_examples=1000)
@given(st.one_of(WELL_FORMED, JSONISH, EDITED), st.sampled_from([None, "@timestamp", "time"]))
def test_codec_stamps_are_the_whole_objects(line: str, field: str | None) -> None:
    """``JsonCodec.stamp`` gives what it gave from orjson's whole object, with ``auto``'s
    times and a strptime pattern's."""
    if infinite_for_orjson(line):
        return  # the difference kept: test_first_value_is_orjsons reads it with the stdlib
    for format_name in ("auto", "%Y-%m-%dT%H:%M:%SZ"):
        codec = JsonCodec(FieldPicker(field, make_parser(format_name)))
        assert codec.stamp(line) == codec.whole_stamp(line), line
