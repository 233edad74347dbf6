"""``where``s judged where lines are parsed, before their records exist (issue #29).

A sink's ``where`` that reads levels or fields would make the codecs find every level and field
and carry them, as objects, to the main process, which then tests each record there: that cost
a third of the ordered merge's throughput. Instead the pipeline gives such ``where``s to the
decoders (``Judged.current``): each is tested where the lines are parsed (a parse worker), over
the columns the codec gave, and each record carries its verdicts (``Record.verdicts``) that its
sink reads instead of testing the record. The codecs then find only what the sinks show.

``Record.verdicts``, for a ``where`` whose bit is ``B`` (``Judged.bit``): ``B`` set, it passes;
``B << MARKS_SHIFT`` set, it was judged on that ``where`` (so an unset ``B`` means it fails).
A record not judged on a sink's ``where`` is tested by the sink itself (correct, slower):

- ``COMPLETE``: the record holds the level and fields its codec found (read while ``where``s
  were judged, but not in a worker): tested as it is;
- otherwise the record may hold less than a ``where`` reads (decoded before a reload gave its
  sink this ``where``, with only what the sinks then showed): ``Judged.complete`` finds its
  level and fields again, with its source's codec, before the test. A record of a source
  that parses no lines here (nats, websocket) has them all: tested as it is.

Bits are given for the pipeline's life, never reused: a decoder judging the ``where``s of
before a reload sets bits that still mean what they meant. Judging gives the same answer as
testing the record: the columns are what the record would hold, and nothing changes a record's
line, level, fields, source, origin or node between its parse and its sinks (the decoders judge
only where no fields are added after the parse).
"""

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, Final, NamedTuple

from aggregator.record.conditions import (
    CONTAINS,
    MISSING,
    PATTERN,
    PREFIX,
    SUFFIX,
    And,
    Condition,
    Getter,
    Leaf,
    Not,
    NumberTest,
    Or,
    SearchTest,
    ValueTest,
    lookup_field,
)
from aggregator.record.levels import LEVELS
from aggregator.record.record import Record
from aggregator.record.where import Where, where_of

MAX_JUDGED: Final = 8
"""Most ``where``s the decoders judge at once (a worker's verdicts on a line fit in a byte);
the sinks of any more test their records themselves."""
MAX_BITS: Final = 16
"""Most ``where``s given a bit in a pipeline's life (each reload that changes one uses one)."""
MARKS_SHIFT: Final = MAX_BITS + 1
"""``bit << MARKS_SHIFT``: the record was judged on the ``where`` of ``bit``."""
COMPLETE: Final = 1
"""Bit 0 of ``Record.verdicts``: the record holds all its codec found (test it as it is)."""

_ABSENT: Final[object] = MISSING
"""``MISSING`` as compiled code reads it once a row: a C static (a name imported from a module
that is not compiled is otherwise looked up in this module's dict at each use)."""
_CONTAINS: Final[int] = CONTAINS
_PREFIX: Final[int] = PREFIX
_SUFFIX: Final[int] = SUFFIX

Completer = Callable[[Record], Record]
"""A source's way to find again what its decoding left out of a record (``Judged.complete``)."""


class Judged:
    """The ``where``s a pipeline's decoders judge for its sinks, and their bits."""

    def __init__(self) -> None:
        self.bits: dict[str, int] = {}
        """Each ``where`` given a bit, by its text, for the pipeline's life."""
        self.current: tuple[str, ...] = ()
        """What the decoders judge now (``use``), in the order of a worker's byte."""
        self._tables: dict[tuple[str, ...], list[int]] = {}
        self._completers: dict[str, Completer] = {}

    def bit(self, text: str) -> int:
        """The bit that says a record passes ``text`` (given now if it is new); 0 when
        ``MAX_BITS`` are given already: the sink tests its records itself."""
        bit = self.bits.get(text)
        if bit is None:
            if len(self.bits) >= MAX_BITS:
                return 0
            bit = self.bits[text] = 2 << len(self.bits)
        return bit

    def use(self, texts: Iterable[str]) -> None:
        """From now on the decoders judge ``texts`` (those that have a bit; at most
        ``MAX_JUDGED``): the ``where``s of the pipeline's sinks, at start and after a reload."""
        chosen = [text for text in dict.fromkeys(texts) if self.bit(text)]
        self.current = tuple(chosen[:MAX_JUDGED])

    def table(self, texts: tuple[str, ...]) -> list[int]:
        """For a worker's byte on ``texts`` (bit N: passes ``texts[N]``), ``Record.verdicts``."""
        found = self._tables.get(texts)
        if found is None:
            bits = [self.bits[text] for text in texts]
            marks = sum(bits) << MARKS_SHIFT
            found = self._tables[texts] = [
                marks | sum(bit for number, bit in enumerate(bits) if byte >> number & 1)
                for byte in range(256)
            ]
        return found

    def register(self, source: str, completer: Completer) -> None:
        """``source`` parses lines here; ``completer`` finds what its decoding left out."""
        self._completers[source] = completer

    def complete(self, record: Record) -> Record:
        """``record``, or a copy of it with the level and fields its source's codec finds, for
        a sink to test when its ``where`` was not judged on it (``COMPLETE`` records as they
        are)."""
        if record.verdicts & COMPLETE:
            return record
        completer = self._completers.get(record.source)
        return record if completer is None else completer(record)


class Rows(NamedTuple):
    """What a ``where`` reads of lines just parsed: those of one lane (one source and origin;
    no node: the lines were read here), with what the codec found, as columns."""

    source: str
    origin: str
    lines: Sequence[str]
    levels: Sequence[str | None]
    fields: Sequence[dict[str, Any] | None]


@lru_cache(maxsize=64)
def wheres_of(texts: tuple[str, ...]) -> tuple[Where, ...]:
    """Each of ``texts`` parsed once (a parse worker gets them as text)."""
    return tuple(where_of(text) for text in texts)


class Reads(NamedTuple):
    """What ``where``s read of a line's parse: which keys of its fields, and which levels."""

    keys: frozenset[str]
    """Each key a field name may be looked up by at the top of the fields (``lookup_field``:
    the whole dotted name, and each of its dotted prefixes)."""
    levels: frozenset[str] = frozenset()
    """The levels the ``where``s tell apart from no level: a level that is not one of them
    gives every ``where`` the verdict no level gives (``telling_levels``; none: the
    ``where``s need no level)."""
    line: bool = False
    """Whether a ``where`` reads the line itself."""


@lru_cache(maxsize=64)
def reads_of(texts: tuple[str, ...]) -> Reads:
    """What the ``where``s ``texts`` read (a worker parses only that where it can)."""
    line, keys = False, set()
    level_leaves: list[Leaf] = []
    pending: list[Condition] = [where.root for where in wheres_of(texts)]
    while pending:
        condition = pending.pop()
        if isinstance(condition, Leaf):
            getter = condition.getter
            line = line or getter.attribute == "line"
            if getter.attribute == "level":
                level_leaves.append(condition)
            if getter.attribute == "":
                keys.add(getter.name)
                parts = getter.parts
                keys.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
        elif isinstance(condition, Not):
            pending.append(condition.inner)
        elif isinstance(condition, And | Or):
            pending.extend(condition.parts)
    levels = telling_levels(level_leaves)
    return Reads(frozenset(keys), levels, line)


def telling_levels(leaves: Iterable[Leaf]) -> frozenset[str]:
    """The levels on which one of ``leaves`` (each on ``level``) gives another verdict than
    on no level (``MISSING``). A ``where`` reads a record's level only through such leaves,
    so its verdict on a record whose level is not one of these is its verdict on the record
    without a level: a worker need not find such a level (``codecs.names_of_levels``)."""
    telling: set[str] = set()
    for leaf in leaves:
        test = leaf.check.test_value
        without = test(MISSING)
        telling.update(level for level in LEVELS if test(level) != without)
    return frozenset(telling)


def passing(
    batch: Sequence[Record], bit: int, where: Where, complete: Completer | None
) -> list[Record]:
    """The records of ``batch`` that pass ``where``, whose bit is ``bit``, in order: as judged,
    and those not judged on it (parsed on the loop: the first read of a file, small reads)
    tested here, each first made whole by ``complete`` if given. One compiled pass over a
    batch all judged (common); a batch with some not judged took interpreted passes over
    every record."""
    mark = bit << MARKS_SHIFT
    kept: list[Record] = []
    unjudged: list[Record] = []
    for record in batch:
        verdicts = record.verdicts
        if not verdicts & mark:
            unjudged.append(record)
        elif verdicts & bit:
            kept.append(record)
    if not unjudged:
        return kept
    tested = unjudged if complete is None else list(map(complete, unjudged))
    passing_tested = {id(record) for record in where.apply(tested)}
    passed = {
        id(record)
        for record, test in zip(unjudged, tested, strict=True)
        if id(test) in passing_tested
    }
    return [
        record
        for record in batch
        if (record.verdicts & bit if record.verdicts & mark else id(record) in passed)
    ]


def judge(texts: tuple[str, ...], rows: Rows) -> bytes:
    """Each row's verdicts on the ``where``s ``texts``: bit N set, it passes ``texts[N]``.

    Unless a ``where`` reads the line, rows without fields (a text line's, or one whose
    fields hold nothing the ``where``s read) are judged by their level alone, once for each
    level, where they are most of the rows (a region is one file's: most often all of its
    rows or none)."""
    count = len(rows.lines)
    fields: list[dict[str, Any] | None] = (
        rows.fields if isinstance(rows.fields, list) else list(rows.fields)
    )
    without_fields = 0
    for found in fields:
        if found is None:
            without_fields += 1
    if without_fields * 2 < count or reads_of(texts).line:
        return bytes(_judged(texts, rows, list(range(count)), bytearray(count)))
    by_level = _verdicts_by_level(texts, rows)
    if without_fields == count:
        return bytes(map(by_level.__getitem__, rows.levels))
    levels: list[str | None] = list(rows.levels)
    verdicts = bytearray(
        [by_level[levels[index]] if found is None else 0 for index, found in enumerate(fields)]
    )
    rich = [index for index, found in enumerate(fields) if found is not None]
    return bytes(_judged(texts, rows, rich, verdicts))


def _verdicts_by_level(texts: tuple[str, ...], rows: Rows) -> dict[str | None, int]:
    """The verdicts on ``texts`` of a row of ``rows``' lane without fields, for each of the
    levels in ``rows`` (no ``where`` of ``texts`` reads the line)."""
    levels = list(set(rows.levels))
    count = len(levels)
    one_a_level = Rows(rows.source, rows.origin, [""] * count, levels, [None] * count)
    verdicts = _judged(texts, one_a_level, list(range(count)), bytearray(count))
    return dict(zip(levels, verdicts, strict=True))


def _judged(
    texts: tuple[str, ...], rows: Rows, indices: list[int], verdicts: bytearray
) -> bytearray:
    """``verdicts`` with the bits of the rows ``indices`` (their bytes 0) set: in a list of
    ints (compiled: native items; a bytearray's are a Python call each)."""
    count = len(verdicts)
    bits: list[int] | None = None
    everyone: list[int] = []  # the wheres every row passes (common): set in one go
    for number, where in enumerate(wheres_of(texts)):
        passed = select(where.root, rows, indices)
        if len(passed) == count:
            everyone.append(number)
            continue
        if bits is None:
            bits = list(verdicts)
        bit = 1 << number
        for index in passed:
            bits[index] |= bit
    if bits is not None:
        verdicts = bytearray(bits)
    for number in everyone:
        verdicts = verdicts.translate(_WITH_BIT[number])
    return verdicts


_WITH_BIT: Final = [bytes(byte | 1 << number for byte in range(256)) for number in range(8)]
"""For each ``where``'s bit, the table that sets it in a byte (``bytes.translate``)."""


def select(
    condition: Condition, rows: Rows, indices: list[int], negated: bool = False
) -> list[int]:
    """The ``indices`` of the rows that pass ``condition`` (``negated``: that fail it), in
    order: ``Condition.filter`` over columns, a condition at a time, a name of few values
    decided once per value, and ``not`` taken down to the leaves (De Morgan), where it costs
    nothing."""
    if not indices:
        return indices
    if isinstance(condition, Leaf):
        return _select_leaf(condition, rows, indices, negated)
    if isinstance(condition, Not):
        return select(condition.inner, rows, indices, not negated)
    if not isinstance(condition, And | Or):
        raise TypeError(f"not a condition: {condition!r}")
    if isinstance(condition, And) != negated:  # and, or not (or): each part narrows
        for part in condition.parts:
            indices = select(part, rows, indices, negated)
        return indices
    passed: set[int] = set()  # or, or not (and): each part sees only what none passed
    rest = indices
    for part in condition.parts:
        found = select(part, rows, rest, negated)
        if found:
            passed.update(found)
            rest = [index for index in rest if index not in passed]
    return [index for index in indices if index in passed]


def _select_leaf(leaf: Leaf, rows: Rows, indices: list[int], negated: bool) -> list[int]:
    test = leaf.check.test_value  # a bool, so that ``!= negated`` says whether a row is kept
    getter = leaf.getter
    attribute = getter.attribute
    if attribute in ("source", "origin", "node"):  # one value for the whole lane
        value = rows.source if attribute == "source" else MISSING
        value = rows.origin if attribute == "origin" else value
        return indices if test(value) != negated else []
    if attribute == "line":
        lines = rows.lines
        return [index for index in indices if test(lines[index]) != negated]
    if attribute == "level":
        levels = rows.levels
        seen = set(levels) if len(indices) == len(levels) else {levels[i] for i in indices}
        kept = {level for level in seen if test(MISSING if level is None else level) != negated}
        if len(kept) == len(seen):  # every level there passes: no row to look at
            return indices
        return [index for index in indices if levels[index] in kept] if kept else []
    values = _field_values(rows.fields, indices, getter.name, getter.parts)
    return _passing(leaf.check, values, indices, negated)


def _field_values(
    columns: Sequence[dict[str, Any] | None],
    indices: list[int],
    name: str,
    parts: tuple[str, ...],
) -> list[object]:
    """What ``lookup_field`` finds of ``name`` in the fields of each of ``indices``
    (``MISSING`` on a line without fields), without a call a row for one or two parts
    (compiled: a dict's ``get`` where the fields are known to be a dict)."""
    fields = columns if isinstance(columns, list) else list(columns)  # compiled: a list's get
    absent = MISSING
    values: list[object] = []
    row: dict[str, Any]  # typed apart from ``found``: compiled, a dict's ``get``, not a call
    if len(parts) == 1:
        for index in indices:
            found = fields[index]
            if found is None:
                values.append(absent)
                continue
            row = found
            values.append(row.get(name, absent))
        return values
    if len(parts) == 2:  # the whole dotted key, else the first part's object's second part
        first, second = parts
        for index in indices:
            found = fields[index]
            if found is None:
                values.append(absent)
                continue
            row = found
            value = row.get(name, absent)
            if value is absent:
                inner = row.get(first, absent)
                value = inner.get(second, absent) if isinstance(inner, dict) else absent
            values.append(value)
        return values
    for index in indices:
        found = fields[index]
        values.append(absent if found is None else lookup_field(found, parts, name))
    return values


def _literal_found(mode: int, literal: str, text: str) -> bool:
    """What ``SearchTest.test_value`` finds of a literal pattern in a string (compiled, a
    native call: no Python call a row)."""
    if mode == _CONTAINS:
        return literal in text
    if mode == _PREFIX:
        return text.startswith(literal)
    if mode == _SUFFIX:
        return text.endswith(literal)
    return text == literal  # WHOLE


def _compared(code: int, value: float, number: float) -> bool:
    """``value OP number``, OP the comparison of ``code`` (``COMPARE_CODES``; compiled: no
    call)."""
    if code == 5:
        return value >= number
    if code == 4:
        return value > number
    if code == 3:
        return value <= number
    if code == 2:
        return value < number
    if code == 1:
        return value != number
    return value == number


def _passing(
    check: ValueTest, values: list[object], indices: list[int], negated: bool
) -> list[int]:
    """The ``indices`` whose value (in ``values``, in the same order) passes ``check``
    (``negated``: fails it): ``check.test_value`` for each, without a Python call a row for what
    most values are (a string for a text test or a literal pattern, a number for a number
    test: read as ``test_value`` reads them)."""
    test = check.test_value
    absent = MISSING
    missing = test(absent) != negated
    if isinstance(check, SearchTest) and check.mode != PATTERN:
        mode, literal = check.mode, check.text
        return [
            indices[k]
            for k, v in enumerate(values)
            if (
                _literal_found(mode, literal, v) != negated
                if isinstance(v, str)
                else missing
                if v is absent
                else test(v) != negated
            )
        ]
    if isinstance(check, NumberTest):  # ``_number`` of an int or a float is itself as a float
        code, number = check.code, check.number
        kept: list[int] = []
        for k, v in enumerate(values):
            if isinstance(v, float):
                passes = _compared(code, v, number) != negated
            elif isinstance(v, int) and not isinstance(v, bool):
                passes = _compared(code, float(v), number) != negated
            else:
                passes = missing if v is absent else test(v) != negated
            if passes:
                kept.append(indices[k])
        return kept
    return [
        indices[k] for k, v in enumerate(values) if (missing if v is absent else test(v) != negated)
    ]


# --- one row at a time ---------------------------------------------------------------------
#
# A worker that parses a line only for its ``where``s judges it right away (``RowJudge``), while
# its object is fresh, and keeps no column of levels and fields for ``judge`` to pass over.


class RowTest:
    """A ``where``'s condition, made for one lane, as a worker tests a row while it parses its
    line: what ``Condition.test`` says of the row's record (compiled: a native call a node)."""

    def passes(self, level: str | None, fields: dict[str, Any] | None, line: str) -> bool:
        """Whether the record of ``line``, with ``level`` and ``fields``, passes."""
        raise NotImplementedError


class _Fixed(RowTest):
    """A leaf on what is the lane's (``source``, ``origin``, ``node``): decided once."""

    def __init__(self, verdict: bool) -> None:
        self.verdict = verdict

    def passes(self, level: str | None, fields: dict[str, Any] | None, line: str) -> bool:
        return self.verdict


class _AllOf(RowTest):
    def __init__(self, parts: list[RowTest]) -> None:
        self.parts = parts

    def passes(self, level: str | None, fields: dict[str, Any] | None, line: str) -> bool:
        return all(part.passes(level, fields, line) for part in self.parts)


class _AnyOf(RowTest):
    def __init__(self, parts: list[RowTest]) -> None:
        self.parts = parts

    def passes(self, level: str | None, fields: dict[str, Any] | None, line: str) -> bool:
        return any(part.passes(level, fields, line) for part in self.parts)


class _Negated(RowTest):
    def __init__(self, inner: RowTest) -> None:
        self.inner = inner

    def passes(self, level: str | None, fields: dict[str, Any] | None, line: str) -> bool:
        return not self.inner.passes(level, fields, line)


class _LevelTest(RowTest):
    """A leaf on ``level``: its verdict on each level kept (a row's level is one of few)."""

    def __init__(self, check: ValueTest) -> None:
        self.check = check
        self.verdicts: dict[str | None, bool] = {None: check.test_value(MISSING)}
        for name in LEVELS:
            self.verdicts[name] = check.test_value(name)

    def passes(self, level: str | None, fields: dict[str, Any] | None, line: str) -> bool:
        verdict = self.verdicts.get(level)
        if verdict is None:  # not a level a codec gives: tested as the record would be
            return self.check.test_value(MISSING if level is None else level)
        return verdict


class _ValueCheck:
    """A leaf's test of one value (``ValueTest.test_value``), without a Python call for what
    most values are: a string for a literal pattern, a number for a number test."""

    def __init__(self, check: ValueTest) -> None:
        self.check = check
        self.missing = check.test_value(MISSING)
        self.mode = -1  # a literal pattern's mode (``SearchTest.mode``), else -1
        self.literal = ""
        self.code = -1  # a number test's comparison (``NumberTest.code``), else -1
        self.number = 0.0
        if isinstance(check, SearchTest) and check.mode != PATTERN:
            self.mode, self.literal = check.mode, check.text
        elif isinstance(check, NumberTest):
            self.code, self.number = check.code, check.number

    def passes(self, value: object) -> bool:
        if value is _ABSENT:
            return self.missing
        if self.mode >= 0 and isinstance(value, str):
            return _literal_found(self.mode, self.literal, value)
        if self.code >= 0:  # ``_number`` of an int or a float is itself as a float
            if isinstance(value, float):
                return _compared(self.code, value, self.number)
            if isinstance(value, int) and not isinstance(value, bool):
                return _compared(self.code, float(value), self.number)
        return self.check.test_value(value)


class _LineTest(RowTest):
    def __init__(self, check: ValueTest) -> None:
        self.check = _ValueCheck(check)

    def passes(self, level: str | None, fields: dict[str, Any] | None, line: str) -> bool:
        return self.check.passes(line)


class _FieldTest(RowTest):
    """A leaf on a field: ``lookup_field``, a dict's ``get`` natively for one or two parts."""

    def __init__(self, getter: Getter, check: ValueTest) -> None:
        self.name = getter.name
        self.parts = getter.parts
        self.first = self.parts[0]
        self.second = self.parts[1] if len(self.parts) == 2 else ""
        self.check = _ValueCheck(check)

    def passes(self, level: str | None, fields: dict[str, Any] | None, line: str) -> bool:
        return self.check.passes(self.value(fields))

    def value(self, fields: dict[str, Any] | None) -> object:
        """What ``lookup_field`` finds of the name in ``fields`` (``MISSING`` without)."""
        if fields is None:
            return _ABSENT
        value = fields.get(self.name, _ABSENT)
        if value is not _ABSENT or len(self.parts) == 1:
            return value
        if self.second:  # the whole dotted key, else the first part's object's second part
            inner = fields.get(self.first, _ABSENT)
            return inner.get(self.second, _ABSENT) if isinstance(inner, dict) else _ABSENT
        return lookup_field(fields, self.parts, self.name)


def row_test(condition: Condition, source: str, origin: str) -> RowTest:
    """``condition`` as a ``RowTest`` for the rows of the lane ``source``, ``origin`` (read
    here: no node)."""
    if isinstance(condition, Leaf):
        check, attribute = condition.check, condition.getter.attribute
        if attribute in ("source", "origin", "node"):  # one value for the whole lane
            value = source if attribute == "source" else MISSING
            value = origin if attribute == "origin" else value
            return _Fixed(check.test_value(value))
        if attribute == "level":
            return _LevelTest(check)
        if attribute == "line":
            return _LineTest(check)
        return _FieldTest(condition.getter, check)
    if isinstance(condition, Not):
        return _Negated(row_test(condition.inner, source, origin))
    if isinstance(condition, And):
        return _AllOf([row_test(part, source, origin) for part in condition.parts])
    if isinstance(condition, Or):
        return _AnyOf([row_test(part, source, origin) for part in condition.parts])
    raise TypeError(f"not a condition: {condition!r}")


class RowJudge:
    """The verdicts on some ``where``s of a lane's rows, one row at a time (bit N set: the row
    passes the Nth): what ``judge`` gives for that row."""

    def __init__(self, texts: tuple[str, ...], source: str, origin: str) -> None:
        self.tests = [row_test(where.root, source, origin) for where in wheres_of(texts)]
        self.by_level: dict[str | None, int] = {None: self.verdicts(None, None, "")}
        """Each level's verdicts on a row without fields, if no ``where`` reads the line."""
        for name in LEVELS:
            self.by_level[name] = self.verdicts(name, None, "")
        reads = reads_of(texts)
        self.reads_line = reads.line
        self.keys = tuple(sorted(reads.keys))
        """The keys a ``where`` may read at the top of a row's fields (``Reads.keys``)."""

    def verdicts(self, level: str | None, fields: dict[str, Any] | None, line: str) -> int:
        """The row's byte of verdicts."""
        byte = 0
        bit = 1
        for test in self.tests:
            if test.passes(level, fields, line):
                byte |= bit
            bit <<= 1
        return byte

    def without_fields(self, level: str | None, line: str) -> int:
        """``verdicts(level, None, line)``: looked up by level unless a ``where`` reads the
        line."""
        if self.reads_line:
            return self.verdicts(level, None, line)
        byte = self.by_level.get(level)
        return self.verdicts(level, None, line) if byte is None else byte

    def of_parsed(self, level: str | None, fields: dict[str, Any] | None, line: str) -> int:
        """``verdicts(level, fields, line)``: by ``without_fields`` if ``fields`` hold none of
        ``keys`` (every field a ``where`` reads is then missing, as without fields)."""
        if fields is not None:
            for key in self.keys:
                if key in fields:
                    return self.verdicts(level, fields, line)
        return self.without_fields(level, line)


@lru_cache(maxsize=256)
def row_judge(texts: tuple[str, ...], source: str, origin: str) -> RowJudge:
    """The ``RowJudge`` of ``texts`` for a lane (a worker makes each once)."""
    return RowJudge(texts, source, origin)
