"""A worker judging ``where``s for an output that shows only times parses no more than they
read, and judges each line as it reads it (``judged_stamps``, issue #29): its times and
verdicts are those of every line parsed whole."""

import importlib.util
import random
from pathlib import Path
from types import ModuleType

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import LineSourceConfig
from aggregator.parse.codecs import LEVEL_KEYS, Codec, make_codec, parse_lines
from aggregator.parse.decode import Decoding
from aggregator.parse.worker import CodecSpec, judged_stamps, parse_region
from aggregator.record.verdicts import Rows, judge, reads_of
from aggregator.record.where import where_of

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


def whole(parser: Codec, lines: list[str], wheres: tuple[str, ...]) -> tuple[list[object], bytes]:
    """The times of ``lines`` parsed whole, and their verdicts judged over those columns."""
    stamps, levels, fields, _ = parse_lines(parser, lines)
    return list(stamps), judge(wheres, Rows("app", "a.log", lines, levels, fields))


def short(parser: Codec, lines: list[str], wheres: tuple[str, ...]) -> tuple[list[object], bytes]:
    """The times and verdicts ``judged_stamps`` gives, or as parsed whole where it gives none
    (as ``parse_region`` does)."""
    found = judged_stamps(parser, lines, wheres, "app", "a.log")
    if found is None:
        return whole(parser, lines, wheres)
    return list(found[0]), found[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(expressions(), min_size=1, max_size=3), st.sampled_from(["auto", "json"]))
def test_judged_stamps_give_the_verdicts_of_a_whole_parse(wheres: list[str], codec: str) -> None:
    """Whatever the ``where``s read (the time and level keys too), their verdicts on the
    lines read with less work are those on the lines parsed whole, and so are the times."""
    parser = make_codec(codec)
    texts = tuple(wheres)
    assert short(parser, LINES, texts) == whole(parser, LINES, texts)


@pytest.mark.parametrize("codec", ["auto", "json"])
def test_a_time_key_that_is_a_level_key_is_not_a_level(codec: str) -> None:
    """With ``ts_field`` a level key (``lvl``), that key is the line's time, never its level:
    a JSON line is judged as parsed whole."""
    parser = make_codec(codec, "lvl")
    lines = ['{"lvl": 30, "ts": "x", "msg": 1}', '{"lvl": "2026-11-25T10:00:00Z", "level": "warn"}']
    where = ("level=info", "level=warn")
    assert judged_stamps(parser, lines, where, "app", "a.log") is None
    assert short(parser, lines, where) == whole(parser, lines, where)


@pytest.mark.parametrize("codec", ["raw", "logfmt", "syslog"])
def test_other_codecs_parse_whole(codec: str) -> None:
    """A codec that is not JSON's or ``auto``'s parses every line whole for its ``where``s."""
    assert judged_stamps(make_codec(codec), LINES, ("status >= 500",), "app", "a.log") is None


def test_a_json_line_is_judged_on_its_object_and_text_on_its_level() -> None:
    """The short ways: a JSON line judged on the object read (its time left in), a text line
    on its level, found only where a ``where`` reads levels."""
    parser = make_codec("auto")
    assert LINES[0].startswith('{"ts"') and LINES[10].startswith(f"{STAMP} ERROR")
    for wheres in [("status >= 500",), ("level >= warn and status >= 500", "level = error")]:
        found = judged_stamps(parser, LINES, wheres, "app", "a.log")
        assert found is not None and (list(found[0]), found[1]) == whole(parser, LINES, wheres)
    assert found[1][0] == 0b01 and found[1][10] == 0b10


def test_reads_of_names_every_key_a_lookup_may_try() -> None:
    """A dotted name is looked up whole and by each of its prefixes (``lookup_field``)."""
    reads = reads_of(("level >= warn and not a.b.c = 1 or exists(d)", "source = x"))
    assert reads.levels == {"warn", "error", "fatal"}
    assert reads.keys == {"a", "a.b", "a.b.c", "d"}
    assert not reads_of(("line contains x",)).levels


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


# Varied lines of every kind ``auto`` tells apart, with what the short ways look for (keys
# a where reads, written plainly, escaped or nested; levels right after the time, further
# on, bracketed, in any case, spelled with look-alike letters), to compare with a whole parse.
LEVEL_SPELLINGS = st.sampled_from(
    ["info", "INFO", "Info", "debug", "DEBUG", "[debug]", "<Trace>", "(TRACE)", "DBG", "D",
     "[d]", "FINE", "verbose", "warn", "WARNING", "[warning]", "ERR", "error", "(crit)",
     "FATAL", "notice", "[\u0130nfo]", "[\u0131nfo]", "[DEBU\u212a]", "xDEBUG", "DEBUGGING",
     "[debugx]", "chatty", "30", "panic:"]
)  # fmt: skip
WORDS = st.sampled_from(
    ["GET", "/healthz", "http", "http.status=500", "status", "dockerd[12]:", "user", "order",
     "[", "]", "(", "<", ">", ":", "-", "\u00e9", "\\", "\\u0068ttp", " ", "  ", "=", '"',
     "level=debug", "lvl=TRACE", "a=level=debug", 'msg="level=debug"', "\u2003level=debug"]
)  # fmt: skip
KEYS = st.sampled_from(
    ["http", "http.status", "http.path", "msg", "level", "lvl", "severity", "loglevel",
     "log.level", "log", "ts", "time", "@timestamp", "user", "htt", "httpx", "http"]
)  # fmt: skip
JSON_VALUES = st.one_of(
    st.sampled_from([500, 503, 200, "500", "/health", "/healthz/x", "/api", True, None, 2.5]),
    LEVEL_SPELLINGS,
    st.dictionaries(st.sampled_from(["status", "path", "level", "x"]),
                    st.sampled_from([500, 200, "/health", "/api", "debug"]), max_size=3),
)  # fmt: skip
TIMES = st.sampled_from(
    [STAMP, "2026-11-25 10:00:00,041", "Nov 25 10:00:00", "[2026-11-25T10:00:00Z]",
     "10.0.0.1 - - [25/Nov/2026:10:00:00 +0000]", "not a time", "1764064800", ""]
)  # fmt: skip


def _words(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(WORDS, LEVEL_SPELLINGS), max_size=12))
    return "".join(f"{part}{draw(st.sampled_from([' ', '', ':']))}" for part in parts)


@st.composite
def json_lines(draw: st.DrawFn) -> str:
    record = draw(st.dictionaries(KEYS, JSON_VALUES, max_size=6))
    if draw(st.booleans()):
        record[draw(st.sampled_from(["ts", "time", "@timestamp"]))] = draw(TIMES)
    if draw(st.booleans()):
        status, path = (
            draw(st.sampled_from([200, 500, "503"])),
            draw(st.sampled_from(["/api", "/healthz"])),
        )
        record[draw(st.sampled_from(["http", "http.status"]))] = {"status": status, "path": path}
    text = orjson.dumps(record).decode()
    if draw(st.booleans()):  # a key written with an escape: "\u0068ttp" is "http"
        text = text.replace('"http', '"\\u0068ttp', 1)
    return text


@st.composite
def text_lines(draw: st.DrawFn) -> str:
    time_first = draw(TIMES)
    level = draw(st.one_of(st.just(""), LEVEL_SPELLINGS))
    return f"{time_first} {level} {_words(draw)}".lstrip(" " if not time_first else "")


@st.composite
def logfmt_lines(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(KEYS, st.one_of(LEVEL_SPELLINGS, WORDS, TIMES)), max_size=6))
    if draw(st.booleans()):
        pairs.insert(draw(st.integers(0, len(pairs))), ("time", STAMP))
    quoted = [
        f'{key}="{value}"' if draw(st.booleans()) else f"{key}={value}" for key, value in pairs
    ]
    return " ".join(quoted)


@st.composite
def syslog_lines(draw: st.DrawFn) -> str:
    priority = draw(st.sampled_from(["<134>", "<11>", "<191>", "<999>", ""]))
    head = draw(
        st.sampled_from(
            ["1 2026-11-25T10:00:00Z host app 12 - - ", "Nov 25 10:00:00 host app[1]: "]
        )
    )
    return f"{priority}{head}{_words(draw)}"


ANY_LINE = st.one_of(
    json_lines(), text_lines(), logfmt_lines(), syslog_lines(), st.text(max_size=30)
)
WHERE_NAMES = st.sampled_from(
    ["level", "http.status", "http.path", "http", "msg", "user", "log.x", "line", "source"]
)
LEVEL_TESTS = st.sampled_from(
    ["level<info", "level>=warn", "level=debug", "level!=trace", "level>error", "level<=debug",
     "level in (debug, fatal)", "exists(level)", 'level~"^d"', 'level contains "r"',
     'level = "INFO"', "level!=info"]
)  # fmt: skip
FIELD_TESTS = st.sampled_from(
    ["http.status>=500", "http.status=200", 'http.path~"^/health"', "exists(http)",
     'http.path contains "api"', 'msg = "/api"', "user != 500", "exists(log.x)",
     "http.status in (500, 503)", 'line contains "DEBUG"', 'source = "app"', "http = 1"]
)  # fmt: skip


@st.composite
def production_wheres(draw: st.DrawFn, depth: int = 0) -> str:
    """Expressions on levels and the fields the lines above may hold."""
    if depth > 2 or draw(st.booleans()):
        return draw(st.one_of(LEVEL_TESTS, FIELD_TESTS))
    left, right = draw(production_wheres(depth + 1)), draw(production_wheres(depth + 1))
    joined = f"{left} {draw(st.sampled_from(['and', 'or']))} {right}"
    return f"not ({joined})" if draw(st.booleans()) else f"({joined})"


@settings(max_examples=400, deadline=None)
@given(
    st.lists(ANY_LINE, min_size=1, max_size=25),
    st.lists(production_wheres(), min_size=1, max_size=3),
    st.sampled_from(["auto", "json"]),
)
def test_the_short_ways_judge_varied_lines_as_a_whole_parse(
    lines: list[str], wheres: list[str], codec: str
) -> None:
    """On lines of every kind, a JSON line's fields left out, a logfmt line only timed and
    levelled, a text line's level looked for only among the levels a where tells apart:
    the same times, and each line the same verdicts, as parsed whole."""
    parser = make_codec(codec)
    texts = tuple(wheres)
    assert short(parser, lines, texts) == whole(parser, lines, texts)


def test_the_production_where_judges_lines_read_the_short_ways() -> None:
    """The production-shaped where: a JSON object without a key ``http`` (or ``http.path``,
    ``http.status``) and a logfmt line without ``http`` judged by their level, a text line
    by its level if it is trace or debug; the rest as the whole parse finds it."""
    where = ('not level<info and not http.status>=500 and not http.path~"^/health"',)
    lines = [
        orjson.dumps({"ts": STAMP, "level": "debug", "job": {"id": 1}}).decode(),
        orjson.dumps({"ts": STAMP, "level": "info", "http": {"status": 500}}).decode(),
        orjson.dumps({"ts": STAMP, "level": "info", "\u00e9": "a\\b"}).decode(),
        f'time="{STAMP}" level=debug msg="x y"',
        f"time={STAMP} level=info http.status=500",
        f"Nov 25 10:00:00 node-3 sshd[12]: order [error] {STAMP}",
        f"{STAMP} node-3 [debug] x",
        f"{STAMP} DEBUG x",
    ]
    found = judged_stamps(make_codec("auto"), lines, where, "app", "a.log")
    assert found is not None and None not in found[0]
    assert list(found[1]) == [0, 0, 1, 0, 0, 1, 0, 0]
    assert (list(found[0]), found[1]) == whole(make_codec("auto"), lines, where)


def test_a_key_written_with_an_escape_is_read() -> None:
    """A JSON key may be written with escapes (``"\\u0068ttp"`` is ``http``): its object is
    what counts, not the line's text."""
    line = f'{{"ts": "{STAMP}", "\\u0068ttp": {{"status": 500}}}}'
    where = ("http.status>=500",)
    found = judged_stamps(make_codec("auto"), [line], where, "app", "a.log")
    assert found is not None and found[1] == b"\x01"


# The worker's judging against the where itself: ``Where.test`` on each record decoded whole
# (``Decoding``, as a sink that judges nothing would test it), not against another judging.

PRODUCTION_WHERE = 'not level<info and not http.status>=500 and not http.path~"^/health"'
WORKLOAD = Path(__file__).parents[2] / "bench" / "workload.py"


def _workload() -> ModuleType:
    """bench/workload.py: the production-shaped files the where's cost is measured on."""
    spec = importlib.util.spec_from_file_location("workload", WORKLOAD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_where_tests(region: bytes, wheres: tuple[str, ...]) -> list[list[bool]]:
    """For each of ``wheres``, ``Where.test`` on each record of ``region`` decoded whole."""
    records = Decoding("app", LineSourceConfig()).lane("a.log").feed(region + b"\n")
    return [[where_of(text).test(record) for record in records] for text in wheres]


def as_judged(region: bytes, wheres: tuple[str, ...]) -> list[list[bool]]:
    """For each of ``wheres``, the worker's verdict on each line of ``region``, judged for an
    output that shows only lines and times (``judged_stamps``' short ways)."""
    spec = CodecSpec("auto", None, "auto", None, "stamps", source="app", wheres=wheres)
    verdicts = parse_region(spec, region, 1 << 20, "a.log").verdicts
    assert verdicts is not None
    return [[bool(byte >> number & 1) for byte in verdicts] for number in range(len(wheres))]


PRODUCTION_WHERES = (
    PRODUCTION_WHERE,
    "level>=warn or http.status=404",
    'level=debug and not http.path contains "api"',
    "not level<=debug",
    "level in (trace, debug) or exists(log.x) or exists(http)",  # no level key: short ways
)


@pytest.mark.parametrize("kind", sorted(set(_workload().KINDS)))
def test_the_worker_judges_each_production_kind_as_where_test(kind: str, tmp_path: Path) -> None:
    """Each kind of line of the production-shaped workload (JSON with and without the keys
    read, nginx, syslog, Python logging with tracebacks, logfmt), with debug and trace lines
    added in the ways text and logfmt write them: the worker's verdicts are ``Where.test``'s."""
    workload = _workload()
    rng = random.Random(29)
    lines: list[bytes] = []
    for number in range(400):
        for _, line in workload.MAKERS[kind](rng, 1_764_064_800_000_000 + number, f"id=0-{number}"):
            lines.append(line)
    extra = [
        f"{STAMP} DEBUG checkpoint",
        f"{STAMP} [trace] x",
        f"{STAMP} GET /x DEBUG",  # an upper-case word that names no level, then one
        "Nov 25 10:00:00 node-3 app[1]: <Debug> y",
        f'time="{STAMP}" level=trace msg="z"',
        f'time="{STAMP}" msg="level=debug" level=info',
        f"time={STAMP} loglevel=debug",
        '10.0.0.1 - - [25/Nov/2026:10:00:00 +0000] "GET /healthz HTTP/1.1" 200 1 DEBUG',
    ]
    assert reads_of(PRODUCTION_WHERES).keys.isdisjoint(LEVEL_KEYS)  # else all parsed whole
    region = b"\n".join(lines + [line.encode() for line in extra])
    judged, tested = as_judged(region, PRODUCTION_WHERES), as_where_tests(region, PRODUCTION_WHERES)
    assert judged == tested
    assert (any(tested[0]) and not all(tested[0])) or kind != "api-json"


@settings(max_examples=400, deadline=None)
@given(
    st.lists(ANY_LINE, min_size=1, max_size=25),
    st.lists(production_wheres(), min_size=1, max_size=3),
)
def test_the_worker_judges_varied_lines_as_where_test(lines: list[str], wheres: list[str]) -> None:
    """Lines of every kind ``auto`` tells apart (levels right after the time and further on,
    bracketed, in any case, look-alike letters; keys written plainly, quoted, escaped,
    nested): each line's verdict from the worker is ``Where.test`` on its record."""
    texts = tuple(dict.fromkeys(wheres))
    region = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines).encode()
    assert as_judged(region, texts) == as_where_tests(region, texts)


TRICKY_LOGFMT = [
    f'time={STAMP} msg="a level=debug"',  # in a quoted value: no pair
    f"time={STAMP} a=level=debug",  # in an unquoted value: no pair
    f"time={STAMP} level=info level=debug",  # the last pair of a key wins
    f"level=info time={STAMP} level=debug",  # the first pair, and a later one
    f"level=debug time={STAMP}",  # the first pair alone
    f'time="{STAMP}" level="debug" msg="x"',
    f"time={STAMP} loglevel=info level=debug",  # ``level`` before ``loglevel``
    f"time={STAMP} lvl=debug severity=info",  # ``lvl`` before ``severity``
    f"time={STAMP} xlevel=debug",
    f"time={STAMP}\u2003level=debug",  # white space outside ASCII
    f"time={STAMP} level=",
    f'time={STAMP} level="debug',  # an unclosed quote
    f"time={STAMP} level=chatty lvl=debug",  # the first key present wins, level or not
    f"time={STAMP} level=debug\tmsg=x",  # a value ends at any white space
    f'time={STAMP} level=debug"x',  # and at a quote
]


@pytest.mark.parametrize("line", TRICKY_LOGFMT)
def test_a_logfmt_level_found_by_find_is_the_parse_s(line: str) -> None:
    """Where ``str.find`` finds a logfmt line's level pair, it is the pair a whole parse reads:
    a key inside a value is none, the last of a key wins, the first key present wins."""
    wheres = ("not level<info", "level=debug", "exists(level)")
    region = line.encode()
    assert as_judged(region, wheres) == as_where_tests(region, wheres)
