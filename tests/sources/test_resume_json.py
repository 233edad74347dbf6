"""The checkpoint file read with the standard library's JSON parser (``resume._loads``) takes
what orjson, which writes it, would take, and refuses what it would refuse."""

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.sources.file.resume import _loads


def values(scalars: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )


VALUES = values(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
"""What orjson can write."""
WILD = values(
    st.none()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats()
    | st.text(st.characters(codec=None, categories=None))
)
"""What JSON a hand may write (json.dumps): integers past 64 bits, NaN, lone surrogates."""
TRICKS = [
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1e308", b"18446744073709551615",
    b"18446744073709551616", b"-9223372036854775808", b"-9223372036854775809",
    b'"\\ud800"', b'"\\udc00x"', b'"\\ud83d\\ude00"', b'"\xed\xa0\x80"', b"\xff", b'"\x01"',
    b"\xef\xbb\xbf{}", b'{"a":1,"a":2}', b" [] ", b"[1,]", b"{'a': 1}", b"", b"01", b"-0",
    b"1.0e+2", b'"\\u0000"', b"[" * 200 + b"]" * 200,
]  # fmt: skip


def outcome(load: object, data: bytes) -> tuple[str, object]:
    try:
        value = load(data)  # type: ignore[operator]
    except ValueError:
        return "refused", None
    return "taken", value


def same(a: object, b: object) -> bool:
    """Equal, of the same types all through (1 and 1.0 are not the same here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))  # type: ignore[arg-type]
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    return a == b


@pytest.mark.parametrize("data", TRICKS)
def test_what_orjson_refuses_is_refused_and_what_it_takes_is_the_same(data: bytes) -> None:
    """Numbers past a double, NaN, lone surrogates (escaped or raw), bad UTF-8, a BOM."""
    ours, theirs = outcome(_loads, data), outcome(orjson.loads, data)
    assert ours[0] == theirs[0], (data, ours, theirs)
    assert same(ours[1], theirs[1])


@given(VALUES)
def test_any_json_orjson_writes_reads_back_the_same(value: object) -> None:
    """What orjson writes (the checkpoint file), read back: the same values and types."""
    data = orjson.dumps(value)
    assert same(_loads(data), orjson.loads(data))


@given(WILD, st.booleans(), st.integers(min_value=0), st.binary(max_size=3))
def test_json_edited_by_hand_is_refused_when_orjson_refuses_it(
    value: object, ascii_only: bool, at: int, junk: bytes
) -> None:
    """A file written by another program or edited, perhaps cut short or with bytes
    replaced: both refuse it, or both take the same value."""
    import json

    text = json.dumps(value, ensure_ascii=ascii_only)
    data = text.encode("utf-8", "surrogatepass")
    at %= len(data) + 1
    damaged = data[:at] + junk + data[at + len(junk) :]
    ours, theirs = outcome(_loads, damaged), outcome(orjson.loads, damaged)
    assert ours[0] == theirs[0], (damaged, ours, theirs)
    assert same(ours[1], theirs[1])
