"""``identity.Position``, a plain class since session 14, behaves as the frozen dataclass it
replaced (kept here as the reference): made, compared, hashed, shown, copied, frozen."""

import copy
import dataclasses
import pickle
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.sources.file.identity import Position


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    key: str
    path: str
    offset: int
    head_length: int
    head_hash: str
    lane: str = ""
    records: int = 0
    book: ClassVar[str] = "files"


FIELDS = st.tuples(st.text(), st.text(), st.integers(), st.integers(), st.text(), st.text(),
                   st.integers())  # fmt: skip


@given(FIELDS, FIELDS)
def test_it_is_made_compared_hashed_and_shown_as_the_dataclass(
    one: tuple[object, ...], other: tuple[object, ...]
) -> None:
    """Positional and keyword arguments, defaults, equality, hash, repr, the fields' order."""
    a, b = Position(*one), Position(*other)  # type: ignore[arg-type]
    ref_a, ref_b = Reference(*one), Reference(*other)  # type: ignore[arg-type]
    assert (a == b) == (ref_a == ref_b) and (a != b) == (ref_a != ref_b)
    assert a == Position(**dict(zip(Position.FIELDS, one, strict=True)))  # type: ignore[arg-type]
    assert hash(a) == hash(Position(*one)) and hash(a) == hash(ref_a)  # type: ignore[arg-type]
    assert repr(a) == repr(ref_a).replace("Reference(", "Position(")
    assert tuple(field.name for field in dataclasses.fields(Reference)) == Position.FIELDS
    assert a.values() == dataclasses.astuple(ref_a)
    assert Position(*one[:5]) == Position(*one[:5], "", 0)  # type: ignore[arg-type]
    assert a != ref_a and a != one


def test_it_is_frozen_copied_and_pickled() -> None:
    """No field can be set or deleted, nor another attribute added; copies and pickles are
    equal; ``moved`` gives the same position under another key and path."""
    position = Position("1:2", "a.log", 10, 4, "abcd", "1:2:abcd@0", 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        position.offset = 11  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del position.path  # type: ignore[misc]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError)):
        position.other = 1  # type: ignore[attr-defined]
    assert copy.copy(position) == position == copy.deepcopy(position)
    assert pickle.loads(pickle.dumps(position)) == position
    moved = position.moved("3:4", "a.log.1")
    assert moved.values() == ("3:4", "a.log.1", *position.values()[2:])
    assert Position.book == "files"
