"""A worker judging ``where``s for an output that shows only times parses no more than they
read (``judged_columns``, issue #29): its verdicts are those of every line parsed whole."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.parse.codecs import make_codec, parse_lines
from aggregator.parse.worker import CodecSpec, judged_columns, parse_region
from aggregator.record.verdicts import Rows, judge, reads_of

STAMP = "2026-11-25T10:00:00.123456Z"
LINES = [
    orjson.dumps({"ts": STAMP, "level": "warning", "status": 503, "msg": "zzz"}).decode(),
    orjson.dumps({"time": STAMP, "lvl": "INFO", "ctx": {"user": "ann"}, "msg": "ok"}).decode(),
    orjson.dumps({"ts": STAMP, "level": "chatty", "status": "200"}).decode(),  # no level found
    orjson.dumps({"ts": STAMP, "severity": 50, "log.level": "x", "ts.x": 1}).decode(),
    orjson.dumps({"ts": "not a time", "level": "error", "status": 500}).decode(),  # text, auto
    orjson.dumps({"level": "error", "status": 404}).decode(),  # no time
    orjson.dumps({"ts": STAMP}).decode(),  # nothing but a time
    orjson.dumps({"ts": STAMP, "log": {"level": "debug"}, "k8s.pod.name": "web-1"}).decode(),
    '{"ts": "broken',
    "[1, 2]",
    f"{STAMP} ERROR text line status=500",
    f"{STAMP} [warn] bracketed",
    f"ts={STAMP} level=debug msg=logfmt status=201",
    "<134>1 2026-11-25T10:00:00Z host app 12 - - syslog line",
    "no time at all",
    "",
]
NAMES = st.sampled_from(
    ["level", "line", "status", "msg", "ctx.user", "k8s.pod.name", "ts", "time", "lvl",
     "severity", "log.level", "log", "ts.x", "log.level.x"]
)  # fmt: skip
VALUES = st.sampled_from(["warn", "info", "error", "500", "200", '"zzz"', '"ann"', '"x"', "1"])
LEVELS = st.sampled_from(["warn", "info", "error"])
OPS = st.sampled_from(["=", "!=", "<", ">=", "contains", "~"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    """Valid expressions on the names above, the time and level keys among them."""
    if depth > 2 or draw(st.booleans()):
        name = draw(NAMES)
        if draw(st.integers(0, 4)) == 0:
            return f"exists({name})"
        value = draw(LEVELS if name == "level" else VALUES)
        return f"{name} {draw(OPS)} {value}"
    left, right = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    joined = f"{left} {draw(st.sampled_from(['and', 'or']))} {right}"
    return f"not ({joined})" if draw(st.booleans()) else f"({joined})"


def verdicts(columns: object, wheres: tuple[str, ...]) -> bytes:
    _, levels, fields, _ = columns  # type: ignore[misc]
    return judge(wheres, Rows("app", "a.log", LINES, levels, fields))


@settings(max_examples=300, deadline=None)
@given(st.lists(expressions(), min_size=1, max_size=3), st.sampled_from(["auto", "json"]))
def test_judged_columns_give_the_verdicts_of_a_whole_parse(wheres: list[str], codec: str) -> None:
    """Whatever the ``where``s read (the time and level keys too), their verdicts on the
    columns found with less work are those on the lines parsed whole, and so are the times."""
    parser = make_codec(codec)
    texts = tuple(wheres)
    whole = parse_lines(parser, LINES)
    found = judged_columns(parser, LINES, texts)
    assert list(found[0]) == list(whole[0])
    assert verdicts(found, texts) == verdicts(whole, texts)


@pytest.mark.parametrize("codec", ["raw", "logfmt", "syslog"])
def test_other_codecs_parse_whole(codec: str) -> None:
    """A codec that is not JSON's or ``auto``'s parses every line whole for its ``where``s."""
    parser = make_codec(codec)
    assert judged_columns(parser, LINES, ("status >= 500",)) == parse_lines(parser, LINES)


def test_a_json_line_s_fields_are_its_object_and_text_is_only_stamped() -> None:
    """The short way: a JSON line's fields are the object read (its time left in), and
    without a ``where`` on ``level`` a text line gets no level."""
    parser = make_codec("auto")
    stamps, levels, fields, _ = judged_columns(parser, LINES, ("status >= 500",))
    assert fields[0] == orjson.loads(LINES[0]) and levels[0] is None
    assert LINES[10].startswith(STAMP) and stamps[10] is not None and levels[10] is None
    _, levels, _, _ = judged_columns(parser, LINES, ("level >= warn and status >= 500",))
    assert levels[0] == "warn" and levels[10] == "error"


def test_reads_of_names_every_key_a_lookup_may_try() -> None:
    """A dotted name is looked up whole and by each of its prefixes (``lookup_field``)."""
    reads = reads_of(("level >= warn and not a.b.c = 1 or exists(d)", "source = x"))
    assert reads.level
    assert reads.keys == {"a", "a.b", "a.b.c", "d"}
    assert not reads_of(("line contains x",)).level


def test_a_region_judged_for_times_only_matches_a_whole_parse() -> None:
    """``parse_region`` judging for an output of times: the same verdicts and times as when
    the output needs everything (each line parsed whole)."""
    region = "\n".join(LINES).encode()
    wheres = ("level >= warn and not msg contains zzz", "status >= 500 or exists(ctx.user)")
    spec = CodecSpec("auto", None, "auto", None, "stamps", source="app", wheres=wheres)
    short = parse_region(spec, region, 4096, "a.log")
    whole = parse_region(spec._replace(needs="everything"), region, 4096, "a.log")
    assert short.verdicts == whole.verdicts and short.verdicts is not None
    assert list(short.columns[0]) == list(whole.columns[0])
