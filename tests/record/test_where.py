"""``where``: the one filter language, from tables and properties."""

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.record.record import Record
from aggregator.record.where import (
    MAX_CHARS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    WhereError,
    tokenize,
    where_of,
)


def rec(
    line: str = "hello",
    level: str | None = None,
    fields: dict[str, Any] | None = None,
    source: str = "app",
    origin: str = "/var/log/app.log",
    node: str | None = None,
) -> Record:
    record = Record(0, source, origin, line, level=level, fields=fields)
    record.node = node
    return record


WARN_500 = rec("GET /api 500", "warn", {"status": 500, "path": "/api"})
INFO_200 = rec("GET /health 200", "info", {"status": "200", "path": "/health"})
ERROR_503_HEALTH = rec("GET /health 503", "error", {"status": 503, "path": "/health"})
NO_LEVEL = rec("plain text")
K8S = rec(
    "k8s",
    "info",
    {"k8s.pod.name": "web-1", "ctx": {"user": "ann", "id": 7, "deep": {"x": True}}},
    node="edge-1",
)
RECORDS = [WARN_500, INFO_200, ERROR_503_HEALTH, NO_LEVEL, K8S]

TABLE: list[tuple[str, list[Record]]] = [
    ("level>=warn", [WARN_500, ERROR_503_HEALTH]),
    ("level > warn", [ERROR_503_HEALTH]),
    ("level<=info", [INFO_200, K8S]),
    ("level=info", [INFO_200, K8S]),
    ('level = "INFO"', [INFO_200, K8S]),
    ("level!=info", [WARN_500, ERROR_503_HEALTH, NO_LEVEL]),
    ("level in (warn, error)", [WARN_500, ERROR_503_HEALTH]),
    ("status>=500", [WARN_500, ERROR_503_HEALTH]),
    ("status = 200", [INFO_200]),  # the logfmt string "200" compares as a number
    ('status = "503"', [ERROR_503_HEALTH]),  # and a JSON number as text
    ("status < 300", [INFO_200]),
    ("status in (500, 200)", [WARN_500, INFO_200]),
    ("status != 500", [INFO_200, ERROR_503_HEALTH, NO_LEVEL, K8S]),
    ('path~"^/health"', [INFO_200, ERROR_503_HEALTH]),
    ('path !~ "^/health"', [WARN_500, NO_LEVEL, K8S]),
    ('not path~"^/health"', [WARN_500, NO_LEVEL, K8S]),
    ('level>=warn and status>=500 and not path~"^/health"', [WARN_500]),
    ("level>=error or status=200", [INFO_200, ERROR_503_HEALTH]),
    ("(level>=error or status=200) and path=/health", [INFO_200, ERROR_503_HEALTH]),
    ("level>=error or status=200 and path=/api", [ERROR_503_HEALTH]),  # and binds tighter
    ('line contains "health"', [INFO_200, ERROR_503_HEALTH]),
    ('line not contains "GET"', [NO_LEVEL, K8S]),
    ("line ~ 'x'" if False else 'line ~ "^plain"', [NO_LEVEL]),
    ("exists(status)", [WARN_500, INFO_200, ERROR_503_HEALTH]),
    ("not exists(level)", [NO_LEVEL]),
    ("exists(node)", [K8S]),
    ("node = edge-1", [K8S]),
    ('k8s.pod.name = "web-1"', [K8S]),
    ("ctx.user = ann", [K8S]),
    ("ctx.id >= 7", [K8S]),
    ("ctx.deep.x = true", [K8S]),
    ("exists(ctx.deep)", [K8S]),
    ("ctx.missing = 1", []),
    ('source = "app" and origin ~ "app\\\\.log$"', RECORDS),
    ("source in (db, web)", []),
    ("status not in (500, 503)", [INFO_200, NO_LEVEL, K8S]),
    ("LEVEL >= warn AND NOT status = 503", [WARN_500]),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_expressions_select_the_records_the_table_says(text: str, expected: list[Record]) -> None:
    """Each expression of the table passes exactly the records it lists, in order."""
    assert where_of(text).apply(RECORDS) == expected


ERRORS: list[tuple[str, str]] = [
    ("level>=", 'at 8: expected a value after ">=", got end of input'),
    ("level>=warn and status>=", 'at 25: expected a value after ">=", got end of input'),
    ("", "at 1: expected a condition, got end of input"),
    ("level>=loud", "at 8: expected a level (trace, debug, info, warn, error, fatal), got"),
    ("status 500", "at 8: expected an operator (= != < <= > >= ~ contains in) after the name"),
    ("(level=info", 'at 12: expected ")" or "and" or "or", got end of input'),
    ("level=info)", 'at 11: expected "and", "or" or the end, got ")"'),
    ('path~"(unclosed"', "at 6: not a usable regular expression"),
    ('path="open', "at 6: expected a closing"),
    ("a ! b", 'at 3: expected "!=" or "!~", got "!"'),
    ("a = 1 and", "at 10: expected a name"),
    ("exists status", 'at 8: expected "(" after exists, got "status"'),
    ("status in 500", 'at 11: expected "(" after in, got "500"'),
    ("status in (500 501)", 'at 16: expected "," or ")", got "501"'),
    ("a = 1 ; b", 'at 7: expected a name, a value or an operator, got ";"'),
    ("and = 1", "at 1: expected a name"),
    ("a..b = 1", 'at 1: expected a field name, got "a..b"'),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_wrong_expressions_name_the_position_and_what_was_expected(text: str, message: str) -> None:
    """A wrong expression is a WhereError whose message starts with its position."""
    with pytest.raises(WhereError) as caught:
        where_of(text)
    assert str(caught.value).startswith(message), str(caught.value)


def test_bounds_on_size_depth_and_conditions() -> None:
    """Too long, too deep or too many conditions are refused, not run."""
    with pytest.raises(WhereError, match="at most"):
        where_of('line contains "' + "x" * MAX_CHARS + '"')
    with pytest.raises(WhereError, match="nested deeper"):
        where_of("(" * (MAX_DEPTH + 1) + "a=1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(WhereError, match="nested deeper"):
        where_of("not " * (MAX_DEPTH + 1) + "a=1")
    with pytest.raises(WhereError, match="conditions"):
        where_of(" or ".join(["a=1"] * (MAX_CONDITIONS + 1)))
    where_of("(" * (MAX_DEPTH - 1) + "a=1" + ")" * (MAX_DEPTH - 1))
    where_of(" or ".join(["a=1"] * MAX_CONDITIONS))


def test_reads_parsed_says_when_the_codecs_must_find_levels_and_fields() -> None:
    """Only names the codec finds (level, fields) ask the codecs for everything."""
    assert not where_of('source=a and line~"x" and origin=b and exists(node)').reads_parsed
    assert where_of("level>=warn").reads_parsed
    assert where_of("status=1").reads_parsed
    assert where_of("fields.level=x").reads_parsed


def test_fields_prefix_reaches_a_field_named_like_a_record_attribute() -> None:
    """``fields.line`` is the field "line", not the record's line."""
    record = rec("the line", fields={"line": "a field", "level": "loud"})
    assert where_of('fields.line = "a field"').test(record)
    assert where_of("fields.level = loud").test(record)
    assert not where_of('line = "a field"').test(record)


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    """(a+)+$ over a long line of a's, which backtracks forever in re, is fast in RE2."""
    record = rec("a" * 100_000 + "!")
    started = time.perf_counter()
    assert not where_of('line ~ "^(a+)+$"').test(record)
    assert time.perf_counter() - started < 1.0


def test_strings_take_escapes() -> None:
    """A double-quoted string takes \\" and \\\\; a bare word is a string value."""
    record = rec('say "hi" \\ bye')
    assert where_of('line contains "\\"hi\\" \\\\"').test(record)
    assert [t.text for t in tokenize('a>=-1.5 and b=10.0.0.1')][:7] == [
        "a", ">=", "-1.5", "and", "b", "=", "10.0.0.1",
    ]  # fmt: skip
    assert where_of("ip = 10.0.0.1").test(rec(fields={"ip": "10.0.0.1"}))


NAMES = st.sampled_from(["level", "source", "line", "status", "ctx.user", "k8s.pod.name"])
VALUES = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["warn", "info", "error"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    ),
)
OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "contains"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    """Valid expressions with random nesting."""
    if depth > 3 or draw(st.booleans()):
        name = draw(NAMES)
        value = draw(VALUES)
        if name == "level":
            value = draw(st.sampled_from(["warn", "info", "error"]))
        return f"{name} {draw(OPS)} {value}"
    left = draw(expressions(depth + 1))
    right = draw(expressions(depth + 1))
    joined = f"{left} {draw(st.sampled_from(['and', 'or']))} {right}"
    return f"not ({joined})" if draw(st.booleans()) else f"({joined})"


@settings(max_examples=200, deadline=None)
@given(expressions())
def test_valid_expressions_parse_and_not_is_the_complement(text: str) -> None:
    """Every generated expression parses, ``not (E)`` passes exactly what E does not, and a
    batch filtered at once keeps exactly the records that pass one by one, in order."""
    where = where_of(text)
    negated = where_of(f"not ({text})")
    for record in RECORDS:
        assert where.test(record) != negated.test(record)
    batch = RECORDS * 3
    assert where.apply(batch) == [record for record in batch if where.test(record)]
    assert negated.apply(batch) == [record for record in batch if negated.test(record)]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_either_parses_or_is_a_where_error(text: str) -> None:
    """No input crashes the parser: it parses, or raises WhereError with a position in it."""
    try:
        where = where_of(text)
    except WhereError as error:
        assert 1 <= error.position <= len(text) + 1
    else:
        for record in RECORDS:
            where.test(record)


PATTERN_CHARS = st.sampled_from([*"ab.^$\\|*()-/", "\\.", "\\$", "\\^", "é"])


@settings(max_examples=400, deadline=None)
@given(st.lists(PATTERN_CHARS, max_size=6).map("".join), st.text("ab.$^\\-/é\n", max_size=8))
def test_a_literal_pattern_tested_as_a_string_agrees_with_re2(pattern: str, text: str) -> None:
    """A pattern taken for a literal (``^/health``, ``app\\.log$``) passes exactly what RE2
    finds; the string test is only a shortcut."""
    from aggregator.record.conditions import literal_of
    from aggregator.record.patterns import compile_pattern as compile_re2

    if literal_of(pattern) is None:
        return
    search = compile_re2(pattern)
    where = where_of('line ~ "' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"')
    assert where.test(rec(text)) == bool(search(text)), (pattern, text)


def test_verdicts_on_names_of_few_values_are_kept_and_bounded() -> None:
    """A pattern on source is run once per distinct source, and the cache stays bounded."""
    from aggregator.record.conditions import MAX_CACHED, Leaf

    where = where_of('source ~ "^(web|db)-[0-9]+$"')
    assert isinstance(where.root, Leaf) and where.root.verdicts is not None
    for number in range(MAX_CACHED + 10):
        assert where.test(rec(source=f"web-{number}"))
        assert not where.test(rec(source=f"cache-{number}"))
    assert len(where.root.verdicts) <= MAX_CACHED


def test_the_direct_re2_test_agrees_with_the_binding_s_search() -> None:
    """compile_pattern's shortcut to RE2 finds what the binding's own search finds."""
    import re2

    from aggregator.record.patterns import compile_pattern as compile_re2

    for pattern, texts in [
        ("u[se]+r c", ["GET user cache", "no", "usr c", ""]),
        ("(?i)ERR(OR)?\\b", ["an error here", "errors", "ERR", "terror"]),
        ("é+$", ["café", "cafe", "éé\n"]),
        ("", ["", "x"]),
    ]:
        found = compile_re2(pattern)
        for text in texts:
            assert bool(found(text)) == (re2.search(pattern, text) is not None), (pattern, text)
