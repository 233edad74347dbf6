"""Container-runtime envelopes (cri, docker): the message, the runtime's time and stream, partial
lines joined, wherever the reads cut them."""

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import FileSourceConfig
from aggregator.parse.codecs import make_codec
from aggregator.parse.container import (
    EnvelopeCodec,
    EnvelopeReader,
    EnvelopeRegion,
    LastSecond,
    common_cri_time,
    looks_like,
    runtime_time,
    unwrap_cri,
    unwrap_cri_searched,
    unwrap_docker,
)
from aggregator.parse.decode import Decoding
from aggregator.parse.lines import Lines
from aggregator.parse.pool import ParsePool
from aggregator.parse.timestamps import parse_iso
from aggregator.parse.worker import CodecSpec, ParsedRegion, answer_of, parse_region, with_lines
from aggregator.record.formats import json_tail
from aggregator.record.record import Record

T0 = 1_796_464_800_000_000  # 2026-12-05T10:00:00Z
TS = "2026-12-05T10:00:00.100000000Z"


def docker(log: str, stream: str = "stdout", time: str = TS) -> str:
    return orjson.dumps({"log": log, "stream": stream, "time": time}).decode()


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2026-12-05T10:00:00.100000000Z", T0 + 100_000),
        ("2026-12-05T10:00:00.123456789Z", T0 + 123_456),  # nanoseconds cut, not rounded
        ("2026-12-05T11:00:00.5+01:00", T0 + 500_000),  # CRI-O writes local time
        ("2026-12-05T10:00:00Z", T0),
        ("2026-12-05T10:00:00.1Zjunk", None),
        ("yesterday", None),
    ],
)
def test_runtime_time(text: str, micros: int | None) -> None:
    """A runtime's RFC 3339 time is read to the microsecond; anything else is no time."""
    assert runtime_time(text) == micros


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"{TS} stdout F hello world", (T0 + 100_000, "stdout", False, "hello world")),
        (f"{TS} stderr P part one", (T0 + 100_000, "stderr", True, "part one")),
        (f"{TS} stdout F ", (T0 + 100_000, "stdout", False, "")),
        (f"{TS} stdout F", (T0 + 100_000, "stdout", False, "")),
        (f"{TS} stdout F:x  two  spaces ", (T0 + 100_000, "stdout", False, " two  spaces ")),
        (f"{TS} stdout X hello", None),
        (f"{TS} stdin F hello", None),  # two streams only: what a lane holds stays bounded
        (f"{TS} stdout Full hello", None),
        ("not a timestamp stdout F hello", None),
        ("plain line", None),
        ("", None),
    ],
)
def test_unwrap_cri(line: str, expected: object) -> None:
    """CRI: TIME STREAM TAG MESSAGE, the message exactly as written after one space."""
    assert unwrap_cri(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (docker("hello\n"), (T0 + 100_000, "stdout", False, "hello")),
        (docker("part", "stderr"), (T0 + 100_000, "stderr", True, "part")),
        (docker("\n"), (T0 + 100_000, "stdout", False, "")),
        (docker('{"level":"error"}\n'), (T0 + 100_000, "stdout", False, '{"level":"error"}')),
        ('{"log": "x\\n", "time": 5}', None),
        (docker("x", "other"), None),
        ('{"log": 1, "time": "' + TS + '"}', None),
        ("[1]", None),
        ("{not json", None),
    ],
)
def test_unwrap_docker(line: str, expected: object) -> None:
    """docker json-file: log (its final newline the end of a whole line), stream, time."""
    assert unwrap_docker(line) == expected


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (f"{TS} stdout F hi", "cri"),
        (docker("hi\n"), "docker"),
        ('{"level": "info"}', None),
        ("2026-12-05T10:00:00Z INFO started", None),
    ],
)
def test_looks_like(line: str, kind: str | None) -> None:
    """``auto`` tells a container's log file from its first line."""
    assert looks_like(line) == kind


def test_partials_are_joined_per_stream_at_their_first_time() -> None:
    """P pieces join the F that ends them, per stream, at the first piece's time; a line of
    the other stream between them comes out on its own."""
    reader = EnvelopeReader("cri", 1000)
    out = reader.feed(
        Lines(
            [
                "2026-12-05T10:00:01.000000000Z stdout P one ",
                "2026-12-05T10:00:02.000000000Z stderr F err",
                "2026-12-05T10:00:03.000000000Z stdout P two ",
                "2026-12-05T10:00:04.000000000Z stdout F three",
                "plain",
            ]
        )
    )
    assert out.texts == ["err", "one two three", "plain"]
    assert out.stamps == [T0 + 2_000_000, T0 + 1_000_000, None]
    assert out.streams == ["stderr", "stdout", None]
    assert out.errors == [None, None, "not a CRI log line"]
    assert not reader.holds_partial


def test_a_partial_held_across_feeds_and_flushed_at_the_end() -> None:
    """A partial waits for its rest across feeds; at the end of the input it comes out as is."""
    reader = EnvelopeReader("docker", 1000)
    assert reader.feed(Lines([docker("a")])).texts == []
    assert reader.holds_partial
    assert reader.feed(Lines([docker("b")])).texts == []
    assert reader.flush().texts == ["ab"]
    assert not reader.holds_partial


def test_joined_lines_are_bounded_and_flagged_truncated() -> None:
    """A joined line is cut at max_bytes (at a code point) and flagged; the next is whole."""
    reader = EnvelopeReader("cri", 10)
    out = reader.feed(
        Lines(
            [
                f"{TS} stdout P 12345678",
                f"{TS} stdout P 9é0",  # é's two bytes would end past 10: the cut leaves it out
                f"{TS} stdout P more",
                f"{TS} stdout F end",
                f"{TS} stdout F next",
            ]
        )
    )
    assert out.texts == ["123456789", "next"]
    assert out.truncated == [0]


def test_a_line_the_splitter_truncated_stays_flagged() -> None:
    """A whole line cut by the splitter keeps its truncated flag through the envelope."""
    out = EnvelopeReader("cri", 100).feed(Lines([f"{TS} stdout F cut", f"{TS} stdout F ok"], [0]))
    assert out.truncated == [0]


@given(
    st.lists(st.tuples(st.text(max_size=20), st.booleans(), st.sampled_from(["stdout", "stderr"]))),
    st.data(),
)
def test_any_cut_of_the_bytes_gives_the_same_messages(
    pieces: list[tuple[str, bool, str]], data: st.DataObject
) -> None:
    """Whatever reads cut the file into, a lane gives the same records (partials included)."""
    text = "".join(
        f"{TS} {stream} {'P' if partial else 'F'} {piece.replace(chr(10), ' ')}\n"
        for piece, partial, stream in pieces
    ).encode()
    decoding = Decoding("k8s", FileSourceConfig(type="file", paths=["x"], codec="cri"))

    def run(cuts: list[int]) -> list[tuple[str, dict[str, object] | None]]:
        lane = decoding.lane("x")
        records: list[Record] = []
        start = 0
        for cut in sorted(cuts):
            records += lane.feed(text[start:cut])
            start = cut
        records += lane.feed(text[start:])
        records += lane.flush()
        return [(r.line, r.fields) for r in records]

    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=6))
    assert run(cuts) == run([])


def test_decoding_cri_with_the_inner_codec() -> None:
    """A CRI file's records: the message as line, the runtime's time (not the message's own),
    the stream and the JSON message's level and fields."""
    decoding = Decoding("k8s", FileSourceConfig(type="file", paths=["x"], codec="cri"))
    lane = decoding.lane("/x/app.log")
    records = lane.feed(
        f'{TS} stdout F {{"ts": "2020-01-01T00:00:00Z", "level": "error", "user": "ann"}}\n'
        f"{TS} stderr P a \n{TS} stderr F b\nnot cri\n".encode()
    )
    assert [r.line for r in records][1:] == ["a b", "not cri"]
    first = records[0]
    assert (first.ts, first.level, first.fields) == (
        T0 + 100_000,
        "error",
        {"user": "ann", "stream": "stdout"},
    )
    assert records[1].fields == {"stream": "stderr"}
    assert records[2].parse_error == "not a CRI log line"
    assert records[2].ts == T0 + 100_000  # a line without a time takes the one before


def test_auto_recognises_each_lane_by_its_first_line() -> None:
    """``auto`` reads a docker lane and a CRI lane as such, and a plain lane as plain lines."""
    decoding = Decoding("any", FileSourceConfig(type="file", paths=["x"]))
    docker_lane, cri_lane, plain_lane = (decoding.lane(name) for name in "abc")
    first = docker("hel")
    assert docker_lane.feed(first[:5].encode()) == []  # the first line is not complete yet
    records = docker_lane.feed((first[5:] + "\n" + docker("lo\n") + "\n").encode())
    assert [r.line for r in records] == ["hello"]
    assert [r.line for r in cri_lane.feed(f"{TS} stdout F hi\n".encode())] == ["hi"]
    plain = plain_lane.feed(b"2026-12-05T10:00:00Z WARN disk\n")
    assert [(r.line, r.level) for r in plain] == [("2026-12-05T10:00:00Z WARN disk", "warn")]


async def test_a_worker_reads_large_reads_and_the_lane_joins_partials() -> None:
    """With a parse worker, a container's large reads give the same records as read on the
    loop: messages read by the worker (level, fields, the lane's fields), partial lines joined
    by the lane, across reads."""
    lines = []
    for n in range(3000):
        ts = f"2026-12-05T10:00:{n // 1000:02d}.{n % 1000:03d}000000Z"
        message = f'{{"level": "warn", "n": {n}, "msg": "{"x" * (n % 50)}"}}'
        if n % 10 == 0:
            lines += [f"{ts} stderr P {message[:7]}", f"{ts} stderr F {message[7:]}"]
        else:
            lines.append(f"{ts} stdout F {message}")
    data = "".join(f"{line}\n" for line in lines).encode()
    config = FileSourceConfig(type="file", paths=["x"], codec="cri", fields={"team": "a"})
    origin = f"/var/log/containers/web_prod_app-{'0' * 64}.log"

    def shown(records: list[Record]) -> list[tuple[object, ...]]:
        return [(r.ts, r.line, r.level, r.fields, r.json_tail) for r in records]

    pool = ParsePool(1)
    try:
        for needs in ("everything", "json"):
            on_loop = Decoding("k8s", config, needs).lane(origin)  # type: ignore[arg-type]
            expected = on_loop.feed(data) + on_loop.flush()
            lane = Decoding("k8s", config, needs, pool).lane(origin)  # type: ignore[arg-type]
            records = []
            for start in range(0, len(data), 100_000):  # each read large enough for the pool
                records += await lane.decode(data[start : start + 100_000])
            records += lane.flush()
            assert len(records) == 3000
            assert records[10].fields == {
                "n": 10, "msg": "x" * 10, "stream": "stderr", "team": "a",
                "k8s.namespace.name": "prod", "k8s.pod.name": "web",
                "k8s.container.name": "app", "container.id": "0" * 64,
            } if needs == "everything" else True  # fmt: skip
            if needs == "json":  # a worker's records carry their JSON; the loop's their fields
                assert [r.json_tail is not None for r in records].count(True) > 2000
                records = [_as_fields(r) for r in records]
                expected = [_as_fields(r) for r in expected]
            assert shown(records) == shown(expected)
        assert pool.pids and not pool.broken
    finally:
        await pool.close()


def _as_fields(record: Record) -> Record:
    """``record`` with its level and fields as values, not as a worker's JSON tail."""
    if record.json_tail is not None:
        tail = orjson.loads("{" + record.json_tail.removeprefix(",") + "}")
        record.level, record.fields, record.json_tail = tail.get("level"), tail.get("fields"), None
    return record


def test_a_worker_goes_on_from_the_partial_lines_its_lane_held() -> None:
    """A region given to a worker with the lane's partial lines (``EnvelopeRegion.carry``)
    joins them with their rest, and gives back what is still partial after it."""
    spec = CodecSpec("auto", None, "auto", None, "everything", "cri")
    carry = (("stdout", T0, "start ", 6, False), ("stderr", T0 + 5, "err ", 4, True))
    region = f"{TS} stdout F rest\n{TS} stderr P more\n{TS} stdout P next".encode()
    parsed = parse_region(spec, EnvelopeRegion(region, carry, 1000), 2000)
    assert parsed.texts == ["start rest"]
    assert parsed.columns[0] == [T0]  # its first piece's time
    assert parsed.carry == (
        ("stderr", T0 + 5, "err more", 8, True),
        ("stdout", T0 + 100_000, "next", 4, False),
    )


@pytest.mark.parametrize("kind", ["cri", "docker"])
@pytest.mark.parametrize("needs", ["stamps", "everything", "json"])
async def test_partial_lines_at_the_end_of_a_worker_s_region_are_joined(
    kind: str, needs: str
) -> None:
    """Each large read ends with a partial line whose rest (in one piece or more, stderr
    between) begins the next: a lane with a worker gives the records the loop gives."""

    def line(n: int, text: str, partial: bool = False, stream: str = "stdout") -> str:
        ts = f"2026-12-05T10:{n // 6000:02d}:{n // 100 % 60:02d}.{n % 100:02d}0000000Z"
        if kind == "cri":
            return f"{ts} {stream} {'P' if partial else 'F'} {text}\n"
        return docker(text if partial else text + "\n", stream, ts) + "\n"

    reads = []
    for n in range(6):  # each read ~40 KiB: over POOL_MIN_BYTES
        body = "".join(line(n * 1000 + i, f"INFO m{n}-{i} " + "x" * (i % 40)) for i in range(600))
        reads.append(
            line(n * 1000 + 500, f"end of {n - 1}")  # ends the partial the read before left
            + body
            + line(n * 1000 + 900, f"WARN part of {n} ", partial=True)
            + (line(n * 1000 + 901, "err", stream="stderr") if n % 2 else "")
            + (line(n * 1000 + 902, "and more ", partial=True) if n % 3 == 0 else "")
        )
    data = [read.encode() for read in reads]
    config = FileSourceConfig(type="file", paths=["x"], codec=kind, fields={"team": "a"})  # type: ignore[arg-type]
    on_loop = Decoding("k8s", config, needs).lane("x")  # type: ignore[arg-type]
    expected = [r for read in data for r in on_loop.feed(read)] + on_loop.flush()
    pool = ParsePool(1)
    try:
        lane = Decoding("k8s", config, needs, pool).lane("x")  # type: ignore[arg-type]
        records = [r for read in data for r in await lane.decode(read)] + lane.flush()
        assert pool.pids and not pool.broken
    finally:
        await pool.close()
    if needs == "json":
        assert all(r.json_tail is not None for r in records[1:-1])
        records = [_as_fields(r) for r in records]
        expected = [_as_fields(r) for r in expected]
    shown = [(r.ts, r.line, r.level, r.fields, r.truncated) for r in records]
    assert shown == [(r.ts, r.line, r.level, r.fields, r.truncated) for r in expected]
    joined = [r.line for r in records if "part of" in r.line]
    assert joined[0] == "WARN part of 0 and more end of 0"
    assert joined[1] == "WARN part of 1 end of 1"
    assert len(records) == 6 * 600 + 6 + 3 + 1  # lines, ends, stderr lines, the last partial


@pytest.mark.parametrize("fields", [{}, {"k8s.pod.name": "web-1", "stream": "lane's"}])
def test_json_columns_are_read_s_columns_as_json_tails(fields: dict[str, str]) -> None:
    """A worker's JSON tails of a container's messages (made once per level and stream when
    the inner codec found no fields) are ``json_tail`` of what ``read`` finds, message by
    message: fields found or not, errors, truncation, lines not in the envelope."""
    lines = [
        f"{TS} stdout F 2026-12-05T10:00:01Z ERROR plain text",
        f"{TS} stderr F 2026-12-05T10:00:01Z ERROR plain text",
        f"{TS} stdout F no time, no level",
        f"{TS} stdout F " + orjson.dumps({"level": "warn", "user": "ann"}).decode(),
        f"{TS} stdout F " + orjson.dumps({"ts": "broken", "n": 1}).decode(),
        f"{TS} stdout F ts=2026-12-05T10:00:02Z level=info msg=logfmt",
        f"{TS} stdout P cut ",
        f"{TS} stdout F here",
        "not an envelope line at all",
        f"{TS} stdout F ",
        f"{TS} stdout F 2026-12-05T10:00:01Z ERROR plain text",
    ]
    reader = EnvelopeReader("cri", 12)
    messages = reader.feed(Lines(lines, [2]))
    codec = EnvelopeCodec("cri", make_codec("auto"), fields)
    stamps, levels, found, errors = codec.read(messages)
    cut = [index in messages.truncated for index in range(len(messages.texts))]
    assert messages.truncated
    times, tails = codec.json_columns(messages)
    assert times == list(stamps)
    assert tails == list(map(json_tail, levels, found, cut, errors))


def test_cri_lines_read_in_place_are_what_unwrap_cri_reads() -> None:
    """``EnvelopeReader.feed`` reads the commonest CRI line in place, a second like the last
    line's not looked up again: each message, time and stream is ``unwrap_cri``'s, for lines
    in and out of that form (a new second, stderr, a tag with options, a bad digit, a time
    before 1970, a line too short)."""
    lines = [
        f"{TS} stdout F first",
        "2026-12-05T10:00:00.900000001Z stderr F same second",
        "2026-12-05T10:00:01.000000000Z stdout F next second",
        "2031-01-01T00:00:07.123456789Z stdout F a second never seen",
        "2026-12-05T10:00:01.5000000x0Z stdout F bad digit",
        "2026-12-05T10:00:01.500000000Z stdout F:x tag options",
        "1969-12-31T23:59:59.250000000Z stdout F before 1970",
        "1969-12-31T23:59:59.500000000Z stdout F before 1970 again",
        "2026-12-05T10:00:01.600000000Z stdout F ",
        "2026-12-05T10:00:01.700000000Z stdout F",
        "2026-12-05T10:00:01.800000000Z stdin  F not a stream",
        f"{TS} stdout F last",
    ]
    messages = EnvelopeReader("cri", 1000).feed(Lines(lines, [0]))
    expected = [unwrap_cri(line) for line in lines]
    assert list(zip(messages.stamps, messages.streams, messages.texts, strict=True)) == [
        (found[0], found[1], found[3]) if found else (None, None, line)
        for line, found in zip(lines, expected, strict=True)
    ]
    assert messages.truncated == [0]
    assert messages.errors.count(None) == sum(found is not None for found in expected)


@pytest.mark.parametrize(
    "line",
    [
        f"{TS} stdout F first",
        "2026-12-05T10:00:00.999999999Z stderr P x",  # any tag: the time only
        "2026-12-05T10:00:01.000001000Z stdout F a second not seen yet",
        "2031-01-01T00:00:07.123456789Z stdout F a second never seen",
        "2026-12-05T10:00:00.5000000x0Z stdout F a bad digit",
        "2026-12-05T10:00:00.50000000٣Z stdout F a digit of another script",
        "2026-12-05T10:00:00.+50000000Z stdout F a sign",
        "2026-12-05T10:00:00.50000000Z stdout F eight digits",
        "2026-12-05T10:00:00.500000000+00:00 stdout F a zone",
        "2026-12-05T10:00:00.500000000Zstdout F no space",
        "1969-12-31T23:59:59.250000000Z stdout F before 1970",
        "2026-12-05 10:00:00.500000000Z stdout F a space for the T (not a CRI time)",
        "2026-12-05T10:00:00.500000000Z",
        "",
    ],
)
def test_common_cri_time_is_the_runtime_s_time_or_leaves_the_line_to_the_full_path(
    line: str,
) -> None:
    """The commonest CRI time, read digit by digit, is what ``runtime_time`` reads of it
    (with a second looked up before or not); any other line gives -1 (the full path)."""
    runtime_time("2026-12-05T10:00:00Z")  # the second seen before
    parse_iso("2026-12-05 10:00:00")  # and in the form with a space (another file's)
    last = LastSecond()
    first, again = common_cri_time(line, last), common_cri_time(line, last)
    assert first == again
    if first >= 0:
        assert first == runtime_time(line[:30])
        assert unwrap_cri_searched(line) is not None  # a CRI line for the full path too
    else:
        assert not (
            line[19:20] == "." and line[29:31] == "Z " and line[20:29].isascii()
            and line[20:29].isdecimal() and line.startswith("2026-12-05T10:00:00")
        )  # fmt: skip


@pytest.mark.parametrize("needs", ["stamps", "everything", "json"])
def test_a_container_s_answer_is_the_parsed_region_the_worker_made(needs: str) -> None:
    """What a worker sends back of a container's region (marshal's bytes) is the region it
    parsed, with a column it sends three times (only the times found) still one list."""
    spec = CodecSpec("auto", None, "auto", None, needs, "cri", (("k8s.pod.name", "web"),))
    lines = [f"{TS} stdout F " + orjson.dumps({"level": "warn", "n": [1, 2.5, None]}).decode()]
    lines += [f"{TS} stderr P part ", f"{TS} stderr F rest", f"{TS} stdout P held"]
    region = EnvelopeRegion("\n".join(lines).encode(), (), 1000)
    parsed = parse_region(spec, region, 2000)
    answer = answer_of(parsed)
    assert isinstance(answer, bytes)
    back = with_lines(answer, region, 2000)
    assert back == parsed
    _, levels, fields, errors = back.columns
    _, *made = parsed.columns
    assert (levels is fields is errors) == (made[0] is made[1] is made[2])
    assert levels is fields or needs == "everything"


def test_a_container_s_answer_marshal_cannot_write_is_sent_as_it_is() -> None:
    """A value marshal cannot write leaves the answer as it is (pickled, as before)."""
    parsed = ParsedRegion(["m"], [], ([T0], [None], [{"odd": object()}], [None]), carry=())
    assert answer_of(parsed) is parsed
    assert with_lines(answer_of(parsed), EnvelopeRegion(b"", (), 10), 10) is parsed


@pytest.mark.parametrize("head", ["stdout F", "stderr F", "stdout P", "stderr P", "stdout F:x"])
@pytest.mark.parametrize("message", ["", " ", "text", "  spaced  ", "stdout F inner"])
def test_the_commonest_cri_lines_read_at_fixed_places_are_what_the_full_path_reads(
    head: str, message: str
) -> None:
    """A line in the commonest form (read at fixed places, a partial piece too) unwraps to
    what the same line with its time in another form (read by the full path) does."""
    runtime_time("2026-12-05T10:00:00Z")  # the second seen before
    common = unwrap_cri(f"{TS} {head} {message}")
    assert common == unwrap_cri(f"2026-12-05T10:00:00.100000000+00:00 {head} {message}")
    assert common is not None and common[3] == message
