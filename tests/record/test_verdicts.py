"""``where``s judged where lines are parsed (``Record.verdicts``) give what testing the records
gives, and a sink's filter reads the verdict instead of testing the record (issue #29)."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import FilterSpec
from aggregator.parse.codecs import make_codec, parse_lines
from aggregator.record.conditions import COMPARE, COMPARE_CODES
from aggregator.record.filters import RecordFilter
from aggregator.record.formats import FormatName
from aggregator.record.record import Record
from aggregator.record.verdicts import (
    COMPLETE,
    MARKS_SHIFT,
    MAX_BITS,
    MAX_JUDGED,
    Judged,
    Rows,
    _compared,
    judge,
    row_judge,
)
from aggregator.record.where import where_of
from aggregator.sinks.encoded import FilteredEncoder
from tests.record.test_where import RECORDS, TABLE, expressions


def local(records: list[Record]) -> list[Record]:
    """``records`` as one lane read here would hold them: no node (judging sees none)."""
    return [Record(r.ts, r.source, r.origin, r.line, r.level, r.fields) for r in records]


LANE = local(RECORDS)


def rows_of(records: list[Record]) -> Rows:
    first = records[0]
    return Rows(
        first.source,
        first.origin,
        [record.line for record in records],
        [record.level for record in records],
        [record.fields for record in records],
    )


def judged_passing(texts: tuple[str, ...], records: list[Record], number: int) -> list[Record]:
    verdicts = judge(texts, rows_of(records))
    assert len(verdicts) == len(records)
    return [
        record for record, verdict in zip(records, verdicts, strict=True) if verdict & (1 << number)
    ]


def row_verdicts(texts: tuple[str, ...], records: list[Record]) -> bytes:
    """Each record judged alone (``RowJudge``, as a worker judges a line while it reads it);
    one without fields both ways a worker judges it."""
    first = records[0]
    rows = row_judge(texts, first.source, first.origin)
    found = bytes(rows.verdicts(r.level, r.fields, r.line) for r in records)
    bare = [r for r in records if r.fields is None]
    assert [rows.without_fields(r.level, r.line) for r in bare] == [
        rows.verdicts(r.level, None, r.line) for r in bare
    ]
    return found


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_judging_the_table_passes_what_testing_passes(text: str, expected: list[Record]) -> None:
    """Each expression of the where table, judged over columns, passes exactly the records
    that testing them one by one passes."""
    batch = LANE * 2
    tested = [record for record in batch if where_of(text).test(record)]
    assert judged_passing((text,), batch, 0) == tested
    alone = row_verdicts((text,), batch)
    assert [r for r, byte in zip(batch, alone, strict=True) if byte] == tested


@settings(max_examples=200, deadline=None)
@given(st.lists(expressions(), min_size=1, max_size=MAX_JUDGED))
def test_judging_agrees_with_testing_for_any_expressions(texts: list[str]) -> None:
    """Up to MAX_JUDGED random expressions judged together: each record's bit for each is
    what testing the record says."""
    batch = LANE * 3
    alone = row_verdicts(tuple(texts), batch)
    for number, text in enumerate(texts):
        where = where_of(text)
        tested = [record for record in batch if where.test(record)]
        assert judged_passing(tuple(texts), batch, number) == tested
        assert [r for r, byte in zip(batch, alone, strict=True) if byte >> number & 1] == tested


def test_source_and_origin_are_the_lane_s() -> None:
    """``source`` and ``origin`` read the lane the lines came from."""
    rows = Rows("web", "/var/log/web.log", ["a", "b"], [None, None], [None, None])
    texts = ('source = web and origin ~ "web"', "source = db", "exists(node)", "node != x")
    assert list(judge(texts, rows)) == [0b1001, 0b1001]
    assert row_judge(texts, "web", "/var/log/web.log").verdicts(None, None, "a") == 0b1001
    assert row_judge(texts, "db", "/var/log/web.log").verdicts(None, None, "a") == 0b1010


def test_bits_last_the_pipeline_s_life_and_too_many_are_left_to_their_sinks() -> None:
    """The same text gets the same bit, a new one a new bit even once the old is no longer
    used (a decoder may still judge it); past MAX_BITS, 0 (the sink tests its records)."""
    judged = Judged()
    bits = [judged.bit(f"status = {number}") for number in range(MAX_BITS)]
    assert bits == [2 << number for number in range(MAX_BITS)]
    assert judged.bit("status = 0") == bits[0]
    assert judged.bit("status = 99") == 0
    judged.use(["status = 3", "status = 99", "status = 1", "status = 3"])
    assert judged.current == ("status = 3", "status = 1")  # no bit, no judging; once each
    judged.use(f"status = {number}" for number in range(MAX_BITS))
    assert len(judged.current) == MAX_JUDGED


def test_a_worker_byte_maps_to_the_pipeline_s_bits_with_their_marks() -> None:
    """``Judged.table``: bit N of a worker's byte is the bit of ``texts[N]``; every record
    of the region is marked judged on each of ``texts``, on no other."""
    judged = Judged()
    first, second, other = (judged.bit(text) for text in ("a = 1", "b = 1", "c = 1"))
    table = judged.table(("b = 1", "a = 1"))
    marks = (first | second) << MARKS_SHIFT
    assert table[0] == marks
    assert table[1] == marks | second
    assert table[2] == marks | first
    assert table[3] == marks | first | second
    assert not any(verdicts & (other | other << MARKS_SHIFT) for verdicts in table)
    assert not any(verdicts & COMPLETE for verdicts in table)


def judged_record(line: str, fields: dict[str, object] | None, verdicts: int) -> Record:
    record = Record(1, "a", "a.log", line, fields=fields)  # type: ignore[arg-type]
    record.verdicts = verdicts
    return record


def test_a_filter_reads_the_verdict_of_a_judged_record_and_tests_the_others() -> None:
    """A judged record passes by its bit alone (here against its own fields, to show the
    bit is what is read); a record not judged (from a remote source) is tested; the order
    is kept."""
    where = where_of("status >= 500")
    bit = 4
    mark = bit << MARKS_SHIFT
    judged_fail = judged_record("judged, fails", {"status": 503}, mark)
    judged_pass = judged_record("judged, passes", {"status": 200}, mark | bit)
    tested_pass = Record(3, "b", "b.log", "tested, passes", fields={"status": 500})
    tested_fail = Record(4, "b", "b.log", "tested, fails", fields={"status": 404})
    batch = [judged_fail, tested_pass, judged_pass, tested_fail]
    kept = RecordFilter(where=where, verdict=bit).apply(batch)
    assert kept == [tested_pass, judged_pass]
    assert RecordFilter(where=where, verdict=bit).apply([judged_fail, judged_pass]) == [judged_pass]
    assert RecordFilter(where=where).apply(batch) == [judged_fail, tested_pass]


def test_a_record_judged_on_other_wheres_is_completed_then_tested() -> None:
    """A record judged only on other ``where``s (decoded before a reload gave the sink its
    ``where``), or on none, holds only what the sinks showed then: its fields are found
    again before the test, so it is neither dropped nor passed by a bit that is not its
    sink's; a ``COMPLETE`` record and a record of a source that parses nothing here are
    tested as they are."""
    judged = Judged()
    old, new = judged.bit("status >= 400"), judged.bit("status >= 500")
    codec = make_codec("logfmt", None, "auto", None)

    def complete(record: Record) -> Record:
        _, levels, fields, _ = parse_lines(codec, [record.line])
        whole = Record(record.ts, record.source, record.origin, record.line, levels[0], fields[0])
        return whole

    judged.register("a", complete)
    other_mark = old << MARKS_SHIFT
    before_500 = judged_record("status=500", None, other_mark | old)  # judged on the old only
    before_404 = judged_record("status=404", None, other_mark | old)
    unmarked_503 = judged_record("status=503", None, 0)  # decoded when nothing was judged
    whole_501 = judged_record("status=999", {"status": 501}, COMPLETE)  # as it is: passes
    remote = Record(2, "remote", "r.log", "status=200", fields={"status": 502})
    judged_600 = judged_record("status=100", None, new << MARKS_SHIFT | new)
    batch = [before_500, before_404, unmarked_503, whole_501, remote, judged_600]
    kept = RecordFilter(where=where_of("status >= 500"), verdict=new, complete=judged.complete)
    assert kept.apply(batch) == [before_500, unmarked_503, whole_501, remote, judged_600]
    assert before_500.fields is None  # the sinks' records are not changed


@pytest.mark.parametrize(
    ("where", "fmt", "needs"),
    [
        ("level >= warn", "raw", "stamps"),
        ('status >= 500 and msg contains "x"', "json", "json"),
        ('source = "app"', "raw", "stamps"),
    ],
)
def test_a_judged_where_asks_the_codecs_only_for_what_is_shown(
    where: str, fmt: FormatName, needs: str
) -> None:
    """With the decoders judging its where, a sink needs only what it shows; without, a
    where that reads levels or fields needs everything."""
    spec = FilterSpec(where=where)
    judged = Judged()
    assert FilteredEncoder(spec, fmt, ["app"], judged=judged).needs == needs
    reads = where_of(where).reads_parsed
    assert list(judged.bits) == ([where] if reads else [])
    unjudged = FilteredEncoder(spec, fmt, ["app"]).needs
    assert unjudged == ("everything" if reads else needs)


FIELD_VALUES = st.one_of(
    st.sampled_from([500, 200, 1000.5, 499.9, True, "/health", "x/health", "/h", "500"]),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.sampled_from(["500", "/health", "/healthz", "x/health", "", "1e3", "nan", "warn"]),
    st.text(max_size=6),
    st.lists(st.integers(0, 3), max_size=2),
)
NESTED = st.fixed_dictionaries(
    {}, optional={"status": FIELD_VALUES, "path": FIELD_VALUES, "b": FIELD_VALUES}
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "status": FIELD_VALUES,
        "path": FIELD_VALUES,
        "http": st.one_of(NESTED, FIELD_VALUES),
        "http.path": FIELD_VALUES,
        "a": st.fixed_dictionaries({}, optional={"b": NESTED, "b.c": FIELD_VALUES}),
        "a.b": NESTED,
    },
)
FIELD_NAMES = st.sampled_from(
    ["status", "path", "http.status", "http.path", "a.b.c", "fields.http"]
)
LEAVES = st.one_of(
    st.builds(
        "{} ~ {}".format,
        FIELD_NAMES,
        st.sampled_from(['"/health"', '"^/health"', '"health$"', '"^/health$"', '"^/h.*"']),
    ),
    st.builds("{} contains {}".format, FIELD_NAMES, st.sampled_from(['"health"', '"50"'])),
    st.builds(
        "{} {} {}".format,
        FIELD_NAMES,
        st.sampled_from(["=", "!=", "<", ">="]),
        st.sampled_from(["500", "1000.5", '"500"', '"/health"']),
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), FIELDS), min_size=1, max_size=12), LEAVES, st.booleans())
def test_a_field_is_judged_as_tested_whatever_its_value(
    fields: list[dict[str, object] | None], leaf: str, negated: bool
) -> None:
    """A leaf on a field (one part, two, three; a number test, a literal pattern or a real
    one) judged over columns passes what testing each record passes, whatever the fields hold:
    strings, numbers, booleans, null, lists, nested objects, dotted keys, nothing."""
    text = f"not {leaf}" if negated else leaf
    records = [Record(0, "app", "a.log", "line", None, found) for found in fields]
    where = where_of(text)
    verdicts = judge((text,), rows_of(records))
    assert [bool(verdict & 1) for verdict in verdicts] == [where.test(r) for r in records]
    assert list(row_verdicts((text,), records)) == [int(where.test(r)) for r in records]


@pytest.mark.parametrize("op", COMPARE_CODES)
def test_a_comparison_by_code_is_the_operator_s(op: str) -> None:
    """``_compared`` (a number leaf judged without a call) compares as ``COMPARE`` does,
    not-a-number included."""
    values = [1.0, 2.0, float("nan"), float("inf")]
    for value, number in itertools.product(values, repeat=2):
        assert _compared(COMPARE_CODES.index(op), value, number) == COMPARE[op](value, number)
