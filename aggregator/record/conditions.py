"""What a parsed ``where`` expression is made of (``aggregator.record.where`` parses it):
conditions that test one record each, and the getters that read a name from a record.

A name that a record does not have passes only ``!=`` (and ``not …``); numbers compare as
numbers (a logfmt ``"500"`` too), levels by rank, anything else as text.
"""

import math
from collections.abc import Callable
from typing import Any, Final

from aggregator.record.levels import LEVEL_RANK
from aggregator.record.record import Record

RECORD_NAMES: Final = ("level", "source", "origin", "node", "line")
"""Names that mean the record's own attributes; ``fields.NAME`` reaches a field of that name."""


_MISSING: Final = object()


def text_of(value: object) -> str | None:
    """A field's value as text for =, ~ and contains; None for objects and lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return None


def _number(value: object) -> float | None:
    """A field's value as a number (logfmt gives "500"); None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and 0 < len(value) < 40:
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _lookup(fields: dict[str, Any], parts: tuple[str, ...], whole: str) -> object:
    """``whole`` in ``fields``: a dotted key as it is (``k8s.pod.name``), or a walk into nested
    objects (``ctx.user``), trying the longest remaining dotted key at each level first."""
    value = fields.get(whole, _MISSING)
    if value is not _MISSING or len(parts) == 1:
        return value
    current: object = fields
    index = 0
    while index < len(parts):
        if not isinstance(current, dict):
            return _MISSING
        for end in range(len(parts), index, -1):
            key = parts[index] if end == index + 1 else ".".join(parts[index:end])
            if key in current:
                current = current[key]
                index = end
                break
        else:
            return _MISSING
    return current


class Getter:
    """Reads one name from a record: a record attribute, or a (nested) field."""

    __slots__ = ("attribute", "name", "parts")

    def __init__(self, name: str) -> None:
        self.name = name
        forced = name.startswith("fields.") and len(name) > 7
        self.attribute = name.lower() if name.lower() in RECORD_NAMES else ""
        field = name[7:] if forced else name
        self.parts = tuple(field.split("."))
        if forced:
            self.name = field

    def reads_parsed(self) -> bool:
        """Whether a codec must find something for this name (level, fields)."""
        return self.attribute in ("", "level")

    def get(self, record: Record) -> object:
        attribute = self.attribute
        if attribute == "line":
            return record.line
        if attribute == "level":
            return record.level if record.level is not None else _MISSING
        if attribute == "source":
            return record.source
        if attribute == "origin":
            return record.origin
        if attribute == "node":
            return record.node if record.node is not None else _MISSING
        fields = record.fields
        if fields is None:
            return _MISSING
        return _lookup(fields, self.parts, self.name)


Matcher = Callable[[str], object]
"""``search`` of a compiled pattern (RE2 here): truthy when the text has a match."""


class Condition:
    """A node of a parsed expression: ``test`` says whether a record passes."""

    def test(self, record: Record) -> bool:
        raise NotImplementedError


class And(Condition):
    def __init__(self, parts: list[Condition]) -> None:
        self.parts = parts

    def test(self, record: Record) -> bool:
        return all(part.test(record) for part in self.parts)


class Or(Condition):
    def __init__(self, parts: list[Condition]) -> None:
        self.parts = parts

    def test(self, record: Record) -> bool:
        return any(part.test(record) for part in self.parts)


class Not(Condition):
    def __init__(self, inner: Condition) -> None:
        self.inner = inner

    def test(self, record: Record) -> bool:
        return not self.inner.test(record)


class Exists(Condition):
    def __init__(self, getter: Getter) -> None:
        self.getter = getter

    def test(self, record: Record) -> bool:
        return self.getter.get(record) is not _MISSING


class LevelCompare(Condition):
    """``level OP NAME``: by rank, so ``level>=warn`` passes warn, error and fatal."""

    def __init__(self, op: str, rank: int) -> None:
        self.op = op
        self.rank = rank

    def test(self, record: Record) -> bool:
        level = record.level
        if level is None:
            return self.op == "!="
        return _ordered(self.op, LEVEL_RANK.get(level, -1), self.rank)


class NumberCompare(Condition):
    """``NAME OP NUMBER``: the value read as a number; a value that is none passes only !=."""

    def __init__(self, getter: Getter, op: str, number: float) -> None:
        self.getter = getter
        self.op = op
        self.number = number

    def test(self, record: Record) -> bool:
        value = _number(self.getter.get(record))
        if value is None:
            return self.op == "!="
        return _ordered(self.op, value, self.number)


class TextCompare(Condition):
    """``NAME OP "text"``: compared as text."""

    def __init__(self, getter: Getter, op: str, text: str) -> None:
        self.getter = getter
        self.op = op
        self.text = text

    def test(self, record: Record) -> bool:
        value = text_of(self.getter.get(record))
        if value is None:
            return self.op == "!="
        return _ordered(self.op, value, self.text)


class Search(Condition):
    """``NAME ~ "RE"`` (RE2, linear time), or ``NAME contains "text"``."""

    def __init__(self, getter: Getter, search: Matcher | None, text: str) -> None:
        self.getter = getter
        self.search = search
        self.text = text

    def test(self, record: Record) -> bool:
        value = text_of(self.getter.get(record))
        if value is None:
            return False
        if self.search is None:
            return self.text in value
        return bool(self.search(value))


class In(Condition):
    """``NAME in (v1, v2, …)``: equal to any (numbers as numbers, levels by name)."""

    def __init__(self, getter: Getter, texts: frozenset[str], numbers: frozenset[float]) -> None:
        self.getter = getter
        self.texts = texts
        self.numbers = numbers

    def test(self, record: Record) -> bool:
        value = self.getter.get(record)
        if value is _MISSING:
            return False
        if self.numbers:
            number = _number(value)
            if number is not None and number in self.numbers:
                return True
        text = text_of(value)
        return text is not None and text in self.texts


def _ordered(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)
