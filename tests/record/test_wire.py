"""The one decoder of remote records (``record.wire``): what another aggregator wrote comes back
as it was; anything else is an InvalidRecord, never another error (fuzzed with hypothesis)."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.record.formats import encode_json
from aggregator.record.record import Record
from aggregator.record.wire import InvalidRecord, record_from_json

NOW = 1_795_600_800_123_456

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
KEYS = ["seq", "ts", "source", "origin", "line", "level", "fields", "truncated", "parse_error",
        "late", "node", "future", "ts_claimed"]  # fmt: skip


def test_a_record_round_trips() -> None:
    """Every member encode_json writes is read back the same."""
    record = Record(NOW, "app", "/a.log", "x \x1b y\n", "warn", {"k": [1]}, True, "bad")
    record.seq, record.late, record.node, record.ts_claimed = 7, True, "web-1", NOW + 10**12
    back = record_from_json(orjson.loads(encode_json([record])))
    assert encode_json([back]) == encode_json([record])


@pytest.mark.parametrize(
    "member",
    [{"level": ["error"]}, {"level": "err or"}, {"fields": "x"}, {"seq": "1"}, {"seq": True},
     {"ts": 5}, {"ts": "yesterday"}, {"node": {}}, {"late": 1}, {"future": True}],
)  # fmt: skip
def test_wrong_types_are_invalid(member: dict[str, object]) -> None:
    """A member of the wrong type (or a future record without its claim) is an InvalidRecord."""
    good = {"seq": 1, "ts": "2026-11-25T10:00:00Z", "source": "a", "origin": "o", "line": "l"}
    record_from_json(good)
    with pytest.raises(InvalidRecord):
        record_from_json({**good, **member})


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), json_values) | json_values)
def test_fuzzed_objects_are_records_or_invalid(value: object) -> None:
    """Any JSON value: an InvalidRecord, or a record that encodes as one valid JSON line."""
    try:
        record = record_from_json(value)
    except InvalidRecord:
        return
    line = encode_json([record])
    assert line.count(b"\n") == 1
    orjson.loads(line)
