"""aggregator.lazyjson: orjson's loads and dumps, orjson imported at the first call."""

import subprocess
import sys

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator import lazyjson

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@given(JSON)
def test_the_same_as_orjson(value: object) -> None:
    """What orjson writes and reads back, byte for byte and value for value."""
    assert lazyjson.dumps(value) == orjson.dumps(value)
    assert lazyjson.loads(orjson.dumps(value)) == orjson.loads(orjson.dumps(value))
    assert lazyjson.loads(orjson.dumps(value).decode()) == value


@pytest.mark.parametrize("text", ["{", "[1,]", '{"a":"\ud800"}', "", "nul"])
def test_bad_json_is_orjsons_error_a_value_error(text: str) -> None:
    """Bad JSON raises orjson's JSONDecodeError, which the callers catch as a ValueError."""
    with pytest.raises(orjson.JSONDecodeError):
        lazyjson.loads(text)
    with pytest.raises(ValueError):
        lazyjson.loads(text)


def test_importing_it_imports_no_orjson() -> None:
    """The module alone leaves orjson unimported until a call (tail's start, #27)."""
    code = (
        "import sys, aggregator.lazyjson as j; assert 'orjson' not in sys.modules; "
        "j.loads('{}'); assert 'orjson' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
