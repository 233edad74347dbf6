"""Multiline joining: continuation lines join their start line; bounded; deterministic."""

import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from aggregator.parse.lines import Lines
from aggregator.parse.multiline import MultilineJoiner

START = re.compile(r"^\S")


def joiner(max_lines: int = 100, max_bytes: int = 1000, timeout: float = 1.0) -> MultilineJoiner:
    return MultilineJoiner(START, max_lines, max_bytes, timeout)


def test_stack_trace_joins_its_first_line() -> None:
    """Indented lines belong to the line above; the last record waits for more."""
    j = joiner()
    out = j.feed(Lines(["Traceback:", "  File a", "  File b", "Next one"]), now=0.0)
    assert out.text == ["Traceback:\n  File a\n  File b"]
    assert j.flush().text == ["Next one"]


def test_timeout_gives_out_the_held_record() -> None:
    """No new line for the timeout: the held record goes out; not before."""
    j = joiner(timeout=1.0)
    j.feed(Lines(["Start", "  more"]), now=10.0)
    assert j.deadline == 11.0
    assert j.expire(10.5).text == []
    assert j.expire(11.0).text == ["Start\n  more"]
    assert j.deadline is None


def test_max_lines_and_max_bytes_bound_a_record() -> None:
    """A record stops at max_lines; past max_bytes it is cut and flagged truncated."""
    j = joiner(max_lines=3)
    out = j.feed(Lines(["S", " 1", " 2", " 3", " 4"]), now=0.0)
    assert out.text == ["S\n 1\n 2"]
    assert j.flush().text == [" 3\n 4"]
    small = joiner(max_bytes=10)
    small.feed(Lines(["Start", "  continued", "  more"]), now=0.0)
    final = small.flush()
    assert final.text == ["Start\n  co"]
    assert final.truncated == [0]


@given(
    st.lists(st.sampled_from(["A", "B", " x", " y", "  z"]), max_size=40),
    st.lists(st.integers(0, 40), max_size=5),
)
def test_same_lines_same_records_however_fed(lines: list[str], cuts: list[int]) -> None:
    """The records depend only on the lines, not on how they arrived (Fluent Bit #4769)."""
    whole = joiner(max_lines=4)
    expected = whole.feed(Lines(list(lines)), 0.0).text + whole.flush().text
    pieces = joiner(max_lines=4)
    bounds = sorted({0, len(lines), *(c for c in cuts if c <= len(lines))})
    got: list[str] = []
    for a, b in itertools.pairwise(bounds):
        got += pieces.feed(Lines(lines[a:b]), 0.0).text
    got += pieces.flush().text
    assert got == expected
    assert "\n".join(got) == "\n".join(lines)
