"""Fuzzing the doors where untrusted bytes come in (issue #16): any exception other than the
documented error is a bug.

The budget is fixed for CI (100 examples a door, 40 where an example is costly: about 15 s in
all, the same examples each run); set ``AGGREGATOR_FUZZ=long`` for a long run that explores
(``AGGREGATOR_FUZZ_EXAMPLES`` examples a door, default 20000):
``AGGREGATOR_FUZZ=long python -m pytest tests/parse/test_fuzz.py``.
"""

import asyncio
import os
import string
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect

from aggregator.config import ConfigError, load_config, parse_config
from aggregator.parse.codecs import make_codec, parse_lines
from aggregator.parse.framing import FramingError, OctetCountedSplitter
from aggregator.parse.lines import LineSplitter
from aggregator.parse.timestamps import (
    line_start,
    make_parser,
    parse_auto,
    parse_clf,
    parse_iso,
    parse_syslog_time,
)
from aggregator.sinks import SinkContext
from aggregator.web.stream import WebSocketSink
from aggregator.web.subscription import SubscriptionError, filter_from_json, request_from_query

LONG = os.environ.get("AGGREGATOR_FUZZ") == "long"
EXAMPLES = int(os.environ.get("AGGREGATOR_FUZZ_EXAMPLES", "20000")) if LONG else 100
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=not LONG,  # CI runs the same examples every time; a long run explores
)
FUZZ_COSTLY = settings(FUZZ, max_examples=EXAMPLES if LONG else 40)
"""For doors whose examples are large (configs, JSON values, a round trip on a socket)."""

# Text that looks like what the parsers look for, so that fuzzing gets past their first checks.
TIMESTAMPISH = st.one_of(
    st.from_regex(r"\A\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d([.,]\d{1,12})?([Zz]|[+-]\d\d:?\d\d)?\Z"),
    st.from_regex(r"\A[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(\.\d{1,6})?\Z"),
    st.from_regex(r"\A\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]\Z"),
    st.from_regex(r"\A-?\d{1,30}(\.\d{0,20})?([eE][+-]?\d{1,4})?\Z"),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "-1e400", "Infinity", "1_000", " 12 "]),
)
LINEISH = st.one_of(
    st.text(),
    TIMESTAMPISH,
    st.tuples(TIMESTAMPISH, st.text()).map(" ".join),
    st.from_regex(r"\A<\d{1,5}>(\d )?.{0,60}\Z"),
    st.from_regex(r"\A(\w{1,8}=(\"[^\"]{0,10}\"|\S{0,10}) ?){1,5}\Z"),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    TIMESTAMPISH,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


def json_line_of(fields: dict[str, Any]) -> str:
    return orjson.dumps(fields).decode()


JSON_LINES = st.one_of(
    st.dictionaries(
        st.sampled_from(
            [
                "ts",
                "time",
                "timestamp",
                "@timestamp",
                "level",
                "lvl",
                "severity",
                "msg",
                "log.level",
                "loglevel",
            ]
        ),
        JSON_VALUES,
    ).map(json_line_of),
    JSON_VALUES.map(lambda value: orjson.dumps(value).decode()),
    st.text(max_size=40).map(lambda text: "{" + text),
    st.sampled_from(['{"ts": 1e400}', '{"ts": -1e400}', '{"ts": 1' + "0" * 400 + "}"]),
)


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(min_value=1, max_value=64))
def test_line_splitting(chunks: list[bytes], limit: int) -> None:
    """Lines cut anywhere split as if fed at once; none is longer than the limit."""
    splitter, whole = LineSplitter(limit), LineSplitter(limit)
    texts: list[str] = []
    for chunk in chunks:
        texts += splitter.feed(chunk).text
    texts += splitter.flush().text
    expected = whole.feed(b"".join(chunks)).text + whole.flush().text
    assert texts == expected
    # U+FFFD stands for at most one byte each... a replaced byte may grow to three bytes.
    assert all(len(text.encode("utf-8", "surrogatepass")) <= 3 * limit for text in texts)


OCTET_STREAMS = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.one_of(
            st.binary(max_size=40).map(lambda frame: b"%d %s" % (len(frame), frame)),
            st.binary(max_size=12),
        ),
        max_size=10,
    ).map(b"".join),
)


@FUZZ
@given(OCTET_STREAMS, st.integers(min_value=1, max_value=80), st.integers(1, 50))
def test_octet_counted_framing(stream: bytes, limit: int, cut: int) -> None:
    """Any byte stream gives frames or sets FramingError, however it is cut; no other error."""
    splitter, whole = OctetCountedSplitter(limit), OctetCountedSplitter(limit)
    texts: list[str] = []
    for start in range(0, len(stream), cut):
        texts += splitter.feed(stream[start : start + cut]).text
    texts += splitter.flush().text
    expected = whole.feed(stream).text + whole.flush().text
    assert texts == expected
    assert (splitter.error is None) == (whole.error is None)
    assert splitter.error is None or isinstance(splitter.error, FramingError)


@FUZZ_COSTLY
@given(st.sampled_from(["raw", "json", "logfmt", "syslog", "auto"]),
       st.lists(st.one_of(LINEISH, JSON_LINES), min_size=1, max_size=8))  # fmt: skip
def test_codecs(name: str, lines: list[str]) -> None:
    """Every codec takes any line: what it cannot parse it says in its error, never raises;
    the stamp alone agrees with the full parse."""
    codec = make_codec(name)
    stamps, levels, fields, errors = parse_lines(codec, lines)
    assert parse_lines(codec, lines, stamps_only=True)[0] == list(stamps)
    for stamp, level, found, error in zip(stamps, levels, fields, errors, strict=True):
        assert stamp is None or isinstance(stamp, int)
        assert level is None or level in ("trace", "debug", "info", "warn", "error", "fatal")
        assert found is None or isinstance(found, dict)
        assert error is None or isinstance(error, str)
        orjson.dumps(found)  # fields go out as JSON


@FUZZ
@given(st.one_of(TIMESTAMPISH, st.text(max_size=40), JSON_SCALARS))
def test_timestamp_parsing(value: Any) -> None:
    """Every timestamp parser answers a time in µs or None, whatever it is given."""
    for parsed in (parse_auto(value), make_parser("%Y-%m-%d %H:%M:%S")(value)):
        assert parsed is None or isinstance(parsed, int)
    if isinstance(value, str):
        for span in (parse_iso(value), parse_syslog_time(value), parse_clf(value)):
            assert span is None or (isinstance(span[0], int) and 0 < span[1] <= len(value))
        assert line_start(value) is None or isinstance(line_start(value), int)


QUERY_KEYS = st.sampled_from(
    ["source", "level", "grep", "replay", "since", "run", "format", "pause", "token", "x", ""]
)
QUERIES = st.one_of(
    st.text(max_size=80),
    st.lists(st.tuples(QUERY_KEYS, st.text(max_size=20)), max_size=6).map(
        lambda pairs: "&".join(f"{key}={value}" for key, value in pairs)
    ),
)


@FUZZ
@given(QUERIES)
@example("replay=¹")  # found: str.isdigit() takes "¹", int() does not (a 500, not a 400)
@example("since=٣")  # other scripts' digits are not numbers here either
def test_websocket_url_filters(query: str) -> None:
    """A /ws query string gives a request or SubscriptionError (answered 400), nothing else."""
    try:
        request = request_from_query(query, max_replay=100)
    except SubscriptionError:
        return
    assert 0 <= request.replay <= 100
    request.filter.compile()


FILTERS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "sources": st.one_of(st.lists(st.text(max_size=10), max_size=4), JSON_VALUES),
            "level": st.one_of(st.sampled_from(["warn", "ERROR", "info", ""]), JSON_VALUES),
            "grep": st.one_of(st.text(alphabet="()[]{}*+?\\|^$.a-z", max_size=20), JSON_VALUES),
        },
    ),
)


@FUZZ_COSTLY
@given(FILTERS)
def test_live_filters(value: Any) -> None:
    """A live filter gives a filter or SubscriptionError (an error frame), nothing else."""
    try:
        client_filter = filter_from_json(value)
    except SubscriptionError:
        return
    client_filter.compile()
    orjson.dumps(client_filter.to_json())


COMMANDS = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60),
    JSON_VALUES.map(lambda value: orjson.dumps(value).decode()),
    st.fixed_dictionaries(
        {},
        optional={"filter": FILTERS, "pause": JSON_VALUES, "replay": JSON_VALUES},
    ).map(lambda command: orjson.dumps(command).decode()),
)


async def command_reply(client: ClientConnection, command: str | bytes, marker: str) -> None:
    """Send ``command`` then a marker filter; every frame before the marker's notice must be
    an error or a notice, and the connection must stay open."""
    await client.send(command)
    await client.send(orjson.dumps({"filter": {"grep": marker}}).decode())
    async with asyncio.timeout(10):
        while True:
            frame = orjson.loads(await client.recv())
            assert isinstance(frame, dict) and ({"error", "notice"} & frame.keys()), frame
            if frame.get("notice") == "filter" and frame["filter"].get("grep") == marker:
                return


def test_websocket_commands(tmp_path: Path) -> None:
    """Whatever a client sends, it gets an error or a notice frame and stays connected: a
    real server on a real socket, one connection for every example."""
    config = parse_config(
        {"sources": {"in": {"type": "stdin"}},
         "sinks": {"ws": {"type": "websocket", "listen": "127.0.0.1:0"}}},
        "test",
    )  # fmt: skip
    sink = WebSocketSink("ws", config.sinks["ws"], SinkContext(["in"]))
    with asyncio.Runner() as runner:
        runner.run(sink.open())
        try:
            assert sink.address is not None
            host, port = sink.address

            async def connected() -> ClientConnection:
                return await connect(f"ws://{host}:{port}/ws")

            client = runner.run(connected())
            assert "hello" in orjson.loads(runner.run(client.recv()))
            counter = iter(range(10**9))

            @FUZZ_COSTLY
            @given(COMMANDS)
            def check(command: str | bytes) -> None:
                runner.run(command_reply(client, command, f"marker-{next(counter)}"))

            check()
            runner.run(client.close())
        finally:
            runner.run(sink.close())


CONFIG_KEYS = st.sampled_from(
    ["type", "paths", "listen", "path", "format", "codec", "filter", "level", "grep", "sources",
     "rotate", "max_bytes", "keep", "timestamp", "field", "multiline", "start", "timeout",
     "max_line_bytes", "state_dir", "order_window", "late", "idle_timeout", "auth_token",
     "replay", "tls", "cert", "key", "framing", "socket", "mode", "exclude", "start_at",
     "parse_workers", "checkpoint_interval", "pattern", "x"]
)  # fmt: skip


def config_tables(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and tables of ``inner``, with keys a config has."""
    return st.one_of(st.lists(inner, max_size=3), st.dictionaries(CONFIG_KEYS, inner, max_size=4))


CONFIG_VALUES = st.recursive(
    st.one_of(
        JSON_SCALARS,
        st.sampled_from(
            [
                "file",
                "tcp",
                "udp",
                "unix",
                "stdin",
                "stdout",
                "websocket",
                "json",
                "1s",
                "250ms",
                "5x",
                "1MiB",
                "-1",
                "127.0.0.1:0",
                "${HOME}",
                "${X:-y}",
                "${",
                "auto",
                "regex",
                "(?P<ts>\\S+)",
                "octet-counted",
                "datagram",
            ]
        ),
    ),
    lambda inner: config_tables(inner),
    max_leaves=25,
)
CONFIGS = st.fixed_dictionaries(
    {},
    optional={
        "aggregator": st.dictionaries(CONFIG_KEYS, CONFIG_VALUES, max_size=4),
        "sources": st.dictionaries(
            st.text(max_size=5), st.dictionaries(CONFIG_KEYS, CONFIG_VALUES, max_size=6),
            max_size=2,
        ),
        "sinks": st.dictionaries(
            st.text(max_size=5), st.dictionaries(CONFIG_KEYS, CONFIG_VALUES, max_size=6),
            max_size=2,
        ),
        "x": CONFIG_VALUES,
    },
)  # fmt: skip


@FUZZ_COSTLY
@given(CONFIGS)
def test_config_dicts(data: dict[str, Any]) -> None:
    """Any parsed TOML gives a Config or ConfigError with lines that name the file."""
    try:
        parse_config(data, "fuzz.toml", env={"HOME": "/root"})
    except ConfigError as error:
        assert error.errors and all(line.startswith("fuzz.toml: ") for line in error.errors)


TOML_TEXT = st.one_of(
    st.text(alphabet=string.printable, max_size=200),
    CONFIGS.map(
        lambda data: "\n".join(
            f"{key} = {orjson.dumps(value).decode()}" for key, value in data.items()
        )
    ),
)


@FUZZ_COSTLY
@given(TOML_TEXT)
def test_config_files(tmp_path: Path, text: str) -> None:
    """Any file text gives a Config or ConfigError (not TOML, not valid): nothing else."""
    path = tmp_path / "fuzz.toml"
    path.write_text(text)
    try:
        load_config(path, env={})
    except ConfigError as error:
        assert error.errors


def test_other_scripts_digits_are_not_digits() -> None:
    """Found by fuzzing: digits of other scripts passed for ASCII ones in a time's fraction,
    a port and a count; now none of them is taken."""
    assert parse_iso("2026-11-25T10:00:00.\u0663Z") == (1_795_600_800_000_000, 19)
    with pytest.raises(SubscriptionError):
        request_from_query("replay=\u00b9", max_replay=10)
    with pytest.raises(ConfigError):
        parse_config({"sinks": {"w": {"type": "websocket", "listen": "127.0.0.1:\u0668\u0660"}},
                      "sources": {"i": {"type": "stdin"}}}, "t")  # fmt: skip
