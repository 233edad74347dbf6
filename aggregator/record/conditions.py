"""What a parsed ``where`` expression is made of (``aggregator.record.where`` parses it): a tree
of ``and``, ``or`` and ``not`` over leaves, each a getter (reads a name from a record) and a
value test.

A name that a record does not have passes only ``!=`` (and ``not …``); numbers compare as
numbers (a logfmt ``"500"`` too), levels by rank, anything else as text.

A batch is filtered condition by condition (``Condition.filter``), not record by record through
the whole tree: each leaf runs one tight loop over what is left, and a leaf on a name of few
values (source, origin, node, level) decides each distinct value once.
"""

import math
import operator
from collections.abc import Callable
from typing import Any, Final

from aggregator.record.levels import LEVEL_RANK
from aggregator.record.patterns import Matcher
from aggregator.record.record import Record

RECORD_NAMES: Final = ("level", "source", "origin", "node", "line")
"""Names that mean the record's own attributes; ``fields.NAME`` reaches a field of that name."""


MISSING: Final = object()


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


def lookup_field(fields: dict[str, Any], parts: tuple[str, ...], whole: str) -> object:
    """``whole`` in ``fields``: a dotted key as it is (``k8s.pod.name``), or a walk into nested
    objects (``ctx.user``), trying the longest remaining dotted key at each level first."""
    value = fields.get(whole, MISSING)
    if value is not MISSING or len(parts) == 1:
        return value
    current: object = fields
    index = 0
    while index < len(parts):
        if not isinstance(current, dict):
            return MISSING
        for end in range(len(parts), index, -1):
            key = parts[index] if end == index + 1 else ".".join(parts[index:end])
            if key in current:
                current = current[key]
                index = end
                break
        else:
            return MISSING
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
            return record.level if record.level is not None else MISSING
        if attribute == "source":
            return record.source
        if attribute == "origin":
            return record.origin
        if attribute == "node":
            return record.node if record.node is not None else MISSING
        fields = record.fields
        if fields is None:
            return MISSING
        return lookup_field(fields, self.parts, self.name)


"""A compiled pattern's test (RE2 here): truthy when the text has a match."""
Compare = Callable[[Any, Any], bool]
COMPARE: Final[dict[str, Compare]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
COMPARE_CODES: Final = ("=", "!=", "<", "<=", ">", ">=")
"""The comparisons in the order of their codes (``NumberTest.code``)."""
MAX_CACHED: Final = 4096
"""Most verdicts a leaf on a name of few values keeps before it starts afresh."""
CACHED_NAMES: Final = ("level", "source", "origin", "node")
"""Names of few distinct values: a leaf keeps its verdict on each value."""


class ValueTest:
    """A test of one value read by a getter (``MISSING`` when the record has none)."""

    def test_value(self, value: object) -> bool:
        raise NotImplementedError


class Present(ValueTest):
    """``exists(NAME)``."""

    def test_value(self, value: object) -> bool:
        return value is not MISSING


class LevelRank(ValueTest):
    """``level OP NAME``: by rank, so ``level>=warn`` passes warn, error and fatal."""

    def __init__(self, op: str, rank: int) -> None:
        self.missing = op == "!="
        self.compare = COMPARE[op]
        self.rank = rank

    def test_value(self, value: object) -> bool:
        if not isinstance(value, str):
            return self.missing
        return self.compare(LEVEL_RANK.get(value, -1), self.rank)


class NumberTest(ValueTest):
    """``NAME OP NUMBER``: the value read as a number; a value that is none passes only !=."""

    def __init__(self, op: str, number: float) -> None:
        self.missing = op == "!="
        self.compare = COMPARE[op]
        self.code = COMPARE_CODES.index(op)
        """``op`` as a number (``verdicts._compared`` tests it without a call)."""
        self.number = number

    def test_value(self, value: object) -> bool:
        number = _number(value)
        if number is None:
            return self.missing
        return self.compare(number, self.number)


class TextTest(ValueTest):
    """``NAME OP "text"``: compared as text."""

    def __init__(self, op: str, text: str) -> None:
        self.missing = op == "!="
        self.compare = COMPARE[op]
        self.text = text

    def test_value(self, value: object) -> bool:
        text = value if isinstance(value, str) else text_of(value)
        if text is None:
            return self.missing
        return self.compare(text, self.text)


CONTAINS, PREFIX, SUFFIX, WHOLE, PATTERN = range(5)
"""How a ``SearchTest`` looks: a pattern that is a literal (maybe anchored) is a string test."""
_SPECIAL = frozenset("\\.^$|?*+()[]{}")


def literal_of(pattern: str) -> tuple[int, str] | None:
    """A pattern that is a literal, maybe with ``^`` and ``$`` (RE2: start and end of the
    text): (CONTAINS, PREFIX, SUFFIX or WHOLE, the literal); None for a real pattern. ``\\.``
    and other escaped punctuation are literals too."""
    start = pattern.startswith("^")
    body = pattern[1:] if start else pattern
    end = body.endswith("$") and not body.endswith("\\$")
    body = body[:-1] if end else body
    chars: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1 : index + 2]
            if not escaped or escaped.isalnum() or escaped == "_" or not escaped.isascii():
                return None
            chars.append(escaped)
            index += 2
            continue
        if char in _SPECIAL:
            return None
        chars.append(char)
        index += 1
    mode = WHOLE if start and end else PREFIX if start else SUFFIX if end else CONTAINS
    return mode, "".join(chars)


class SearchTest(ValueTest):
    """``NAME ~ "RE"`` (RE2, linear time), or ``NAME contains "text"``.

    RE2's Python binding costs microseconds a call: a pattern that is a literal (maybe
    anchored) is tested as a string instead."""

    def __init__(self, search: Matcher | None, text: str) -> None:
        self.search = search
        self.text = text
        self.mode = CONTAINS
        if search is not None:
            literal = literal_of(text)
            if literal is None:
                self.mode = PATTERN
            else:
                self.mode, self.text = literal

    def test_value(self, value: object) -> bool:
        text = value if isinstance(value, str) else text_of(value)
        if text is None:
            return False
        mode = self.mode
        if mode == CONTAINS:
            return self.text in text
        if mode == PREFIX:
            return text.startswith(self.text)
        if mode == SUFFIX:
            return text.endswith(self.text)
        if mode == WHOLE:
            return text == self.text
        return self.search is not None and bool(self.search(text))


class InTest(ValueTest):
    """``NAME in (v1, v2, …)``: equal to any (numbers as numbers, levels by name)."""

    def __init__(self, texts: frozenset[str], numbers: frozenset[float]) -> None:
        self.texts = texts
        self.numbers = numbers

    def test_value(self, value: object) -> bool:
        if value is MISSING:
            return False
        if self.numbers:
            number = _number(value)
            if number is not None and number in self.numbers:
                return True
        text = text_of(value)
        return text is not None and text in self.texts


class Condition:
    """A node of a parsed expression: ``test`` one record, ``filter`` a batch (in order)."""

    def test(self, record: Record) -> bool:
        raise NotImplementedError

    def filter(self, batch: list[Record]) -> list[Record]:
        raise NotImplementedError


class Leaf(Condition):
    """One condition: what ``getter`` reads, tested by ``check``."""

    def __init__(self, getter: Getter, check: ValueTest) -> None:
        self.getter = getter
        self.check = check
        self.verdicts: dict[object, bool] | None = {} if getter.attribute in CACHED_NAMES else None

    def test(self, record: Record) -> bool:
        value = self.getter.get(record)
        verdicts = self.verdicts
        if verdicts is None:
            return self.check.test_value(value)
        verdict = verdicts.get(value)
        if verdict is None:
            if len(verdicts) >= MAX_CACHED:
                verdicts.clear()
            verdict = verdicts[value] = self.check.test_value(value)
        return verdict

    def filter(self, batch: list[Record]) -> list[Record]:
        test_value = self.check.test_value
        attribute = self.getter.attribute
        if attribute == "line":
            return [record for record in batch if test_value(record.line)]
        if attribute == "" and len(self.getter.parts) == 1:
            name = self.getter.name
            return [
                record
                for record in batch
                if test_value(
                    MISSING if record.fields is None else record.fields.get(name, MISSING)
                )
            ]
        if attribute in CACHED_NAMES:  # few distinct values: each decided once a batch
            values = list(map(operator.attrgetter(attribute), batch))
            passing = {
                value for value in set(values) if test_value(MISSING if value is None else value)
            }
            return [record for record, value in zip(batch, values, strict=True) if value in passing]
        test = self.test
        return [record for record in batch if test(record)]


class And(Condition):
    def __init__(self, parts: list[Condition]) -> None:
        self.parts = parts

    def test(self, record: Record) -> bool:
        return all(part.test(record) for part in self.parts)

    def filter(self, batch: list[Record]) -> list[Record]:
        for part in self.parts:
            if not batch:
                break
            batch = part.filter(batch)
        return batch


class Or(Condition):
    def __init__(self, parts: list[Condition]) -> None:
        self.parts = parts

    def test(self, record: Record) -> bool:
        return any(part.test(record) for part in self.parts)

    def filter(self, batch: list[Record]) -> list[Record]:
        passed: set[int] = set()
        rest = batch
        for part in self.parts:  # each part sees only what no earlier part passed
            if not rest:
                break
            passed.update(map(id, part.filter(rest)))
            rest = [record for record in rest if id(record) not in passed]
        return [record for record in batch if id(record) in passed]


class Not(Condition):
    def __init__(self, inner: Condition) -> None:
        self.inner = inner

    def test(self, record: Record) -> bool:
        return not self.inner.test(record)

    def filter(self, batch: list[Record]) -> list[Record]:
        passed = set(map(id, self.inner.filter(batch)))
        if not passed:
            return batch
        return [record for record in batch if id(record) not in passed]
