"""A worker's region for json output, parsed a line at a time (``stamps_and_tails``), gives
what every line parsed into columns and then through ``json_tail`` gave (issue #27), and with
``where``s the verdicts ``judge`` gave over those columns (issue #29)."""

import json
import random
import runpy
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.parse.codecs import make_codec, parse_lines
from aggregator.parse.worker import CodecSpec, parse_region, stamps_and_tails
from aggregator.record.formats import json_tail
from aggregator.record.verdicts import Rows, judge, row_judge
from tests.parse.test_judged_stamps import ANY_LINE, expressions, production_wheres

WORKLOAD = Path(__file__).parents[2] / "bench" / "workload.py"
STAMP = "2026-11-25T10:00:00.123456Z"
CODECS = ["auto", "json", "logfmt", "syslog", "raw"]


def through_columns(
    codec: str, texts: Sequence[str], truncated: Sequence[int], wheres: tuple[str, ...] = ()
) -> tuple[list[int | None], list[str], bytes | None]:
    """The path ``stamps_and_tails`` replaces: columns, then ``json_tail`` over them, and
    ``judge`` over them for ``wheres`` (lines of the lane ``app``, ``a.log``)."""
    stamps, levels, fields, errors = parse_lines(make_codec(codec), texts)
    cut = [index in truncated for index in range(len(texts))]
    verdicts = judge(wheres, Rows("app", "a.log", texts, levels, fields)) if wheres else None
    return list(stamps), list(map(json_tail, levels, fields, cut, errors)), verdicts


def line_at_a_time(
    codec: str, texts: Sequence[str], truncated: Sequence[int], wheres: tuple[str, ...] = ()
) -> tuple[list[int | None], list[str], bytes | None]:
    """What ``stamps_and_tails`` gives, judging ``wheres`` if any."""
    judge_row = row_judge(wheres, "app", "a.log") if wheres else None
    return stamps_and_tails(make_codec(codec), texts, truncated, judge_row)


@lru_cache(maxsize=1)
def _workload() -> dict[str, Any]:
    """bench/workload.py's names: the production-shaped lines the merge is measured on."""
    return runpy.run_path(str(WORKLOAD))


def workload_lines(kind: str, count: int = 300) -> list[str]:
    workload, rng = _workload(), random.Random(kind)
    lines: list[str] = []
    for number in range(count):
        made = workload["MAKERS"][kind](rng, 1_764_064_800_000_000 + number, f"id=0-{number}")
        lines.extend(line.decode() for _, line in made)
    return lines


@pytest.mark.parametrize("kind", sorted(set(_workload()["KINDS"])))
@pytest.mark.parametrize("codec", CODECS)
def test_each_kind_of_production_line(kind: str, codec: str) -> None:
    lines = workload_lines(kind)
    truncated = list(range(0, len(lines), 7))
    assert line_at_a_time(codec, lines, truncated) == through_columns(codec, lines, truncated)


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from([STAMP, "INFO", "warning", "30", "1764064800"]),
)  # fmt: skip
KEYS = st.sampled_from(
    ["ts", "time", "timestamp", "@timestamp", "level", "lvl", "severity", "loglevel",
     "log.level", "log", "msg", "http", "x", "\u00e9"]
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def json_lines(draw: st.DrawFn) -> str:
    value = draw(st.dictionaries(KEYS, VALUES, max_size=6))
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=draw(st.booleans()))
    return draw(st.sampled_from([text, text[:-1], f"[{text}]", text.replace(":", ": ")]))


@st.composite
def other_lines(draw: st.DrawFn) -> str:
    head = draw(
        st.sampled_from(
            [STAMP, "2026-11-25 10:00:00,041", "Nov 25 10:00:00 host app[1]:", "<134>",
             "<134>1 2026-11-25T10:00:00Z host app 12 - -", f'time="{STAMP}"', "level=warn",
             "10.0.0.1 - - [25/Nov/2026:10:00:00 +0000]", "", "{"]
        )
    )  # fmt: skip
    words = draw(st.lists(st.sampled_from(["ERROR", "[debug]", "a=b", 'k="v w"', "x"])))
    return " ".join([head, *words])


LINES = st.lists(st.one_of(json_lines(), other_lines(), st.text(max_size=30)), max_size=20)


@settings(max_examples=400, deadline=None)
@given(LINES, st.sampled_from(CODECS), st.data())
def test_varied_lines(lines: list[str], codec: str, data: st.DataObject) -> None:
    lines = [line.replace("\n", " ") for line in lines]
    truncated = sorted(data.draw(st.sets(st.integers(0, max(0, len(lines) - 1)))))
    truncated = [index for index in truncated if index < len(lines)]
    assert line_at_a_time(codec, lines, truncated) == through_columns(codec, lines, truncated)


def test_a_region_for_json_output_carries_the_tails_of_the_columns() -> None:
    """``parse_region`` for json output: times and tails as the columns give them, the
    other columns empty, a truncated line flagged."""
    lines = workload_lines("api-json", 20) + workload_lines("syslog", 20) + ["", "x" * 6000]
    region = "\n".join(lines).encode()
    parsed = parse_region(CodecSpec("auto", None, "auto", None, "json"), region, 5000)
    stamps, tails, _ = through_columns("auto", parsed.texts, parsed.truncated)
    assert parsed.truncated == [len(lines) - 1]
    assert list(parsed.columns[0]) == stamps and parsed.json_tails == tails
    assert set(parsed.columns[1]) == {None} and parsed.verdicts is None


# With ``where``s (issue #29): each line judged as it is parsed (``RowJudge.of_parsed``), the
# verdicts those of ``judge`` over the columns, and the times and tails as without.

PRODUCTION_WHERES = (
    'not level<info and not http.status>=500 and not http.path~"^/health"',
    "level>=warn or http.status=404",
    'level=debug and not http.path contains "api"',
    'exists(job) or exists(http.status.x) or line contains "GET"',
    'source = "app" and origin = "b.log" or msg = "x"',
)


@pytest.mark.parametrize("kind", sorted(set(_workload()["KINDS"])))
@pytest.mark.parametrize("codec", CODECS)
def test_each_kind_of_production_line_judged(kind: str, codec: str) -> None:
    """Every kind of production line, a where at a time and all at once: the times, tails
    and verdicts of the columns (one where reads the line, one the lane)."""
    lines = [*workload_lines(kind, 200), "", f"{STAMP} DEBUG x", "{", '{"http": 1}']
    truncated = list(range(0, len(lines), 7))
    for wheres in [*((where,) for where in PRODUCTION_WHERES), PRODUCTION_WHERES]:
        found = line_at_a_time(codec, lines, truncated, wheres)
        assert found == through_columns(codec, lines, truncated, wheres)
    assert found[2] is not None and (len(set(found[2])) > 1 or codec != "auto")


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(ANY_LINE, json_lines(), other_lines()), max_size=20),
    st.lists(st.one_of(production_wheres(), expressions()), min_size=1, max_size=3),
    st.sampled_from(CODECS),
    st.data(),
)
def test_varied_lines_judged(
    lines: list[str], wheres: list[str], codec: str, data: st.DataObject
) -> None:
    """Lines of every kind, ``where``s on levels, fields (the time and level keys among
    them), the line and the lane: the verdicts of the columns, and their times and tails."""
    lines = [line.replace("\n", " ") for line in lines]
    truncated = sorted(data.draw(st.sets(st.integers(0, max(0, len(lines) - 1)))))
    truncated = [index for index in truncated if index < len(lines)]
    texts = tuple(dict.fromkeys(wheres))
    assert line_at_a_time(codec, lines, truncated, texts) == through_columns(
        codec, lines, truncated, texts
    )


@pytest.mark.parametrize("codec", ["auto", "json"])
def test_a_region_for_json_output_is_judged_as_for_every_column(codec: str) -> None:
    """``parse_region`` for json output with ``where``s: the verdicts of a region parsed
    whole (needs ``everything``), and the tails of its columns."""
    lines = [kind_line for kind in sorted(set(_workload()["KINDS"])) for kind_line in
             workload_lines(kind, 30)] + ["", "x" * 6000]  # fmt: skip
    region = "\n".join(lines).encode()
    spec = CodecSpec(codec, None, "auto", None, "json", source="app", wheres=PRODUCTION_WHERES)
    parsed = parse_region(spec, region, 5000, "a.log")
    whole = parse_region(spec._replace(needs="everything"), region, 5000, "a.log")
    assert parsed.verdicts == whole.verdicts and parsed.verdicts is not None
    stamps, levels, fields, errors = whole.columns
    cut = [index in whole.truncated for index in range(len(whole.texts))]
    assert parsed.json_tails == list(map(json_tail, levels, fields, cut, errors))
    assert list(parsed.columns[0]) == list(stamps) and set(parsed.columns[1]) == {None}
