"""The text, json and raw encodings of a record (SPEC §4)."""

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from aggregator.record.formats import (
    encode_json,
    encode_raw,
    escape_control,
    json_tail,
    rfc3339_micros,
    rfc3339_millis,
    text_encoder,
)
from aggregator.record.record import Record


def record_to_dict(record: Record) -> dict[str, Any]:
    """The JSON object of a record as SPEC §4 describes it, written plainly: the reference the
    fast encoder is checked against."""
    obj: dict[str, Any] = {
        "seq": record.seq,
        "ts": rfc3339_micros(record.ts),
        "source": record.source,
        "origin": record.origin,
    }
    if record.node is not None:
        obj["node"] = record.node
    obj["line"] = record.line
    if record.level is not None:
        obj["level"] = record.level
    if record.fields is not None:
        obj["fields"] = record.fields
    if record.truncated:
        obj["truncated"] = True
    if record.parse_error is not None:
        obj["parse_error"] = record.parse_error
    if record.ts_claimed:
        obj["future"] = True
        obj["ts_claimed"] = rfc3339_micros(record.ts_claimed)
    if record.late:
        obj["late"] = True
    return obj


TS = 1_795_600_800_123_456  # 2026-11-25T10:00:00.123456Z


def record(line: str = "original text", **extra: object) -> Record:
    item = Record(TS, "app", "/var/log/app/a.log", line)
    item.seq = 1042
    for key, value in extra.items():
        setattr(item, key, value)
    return item


def test_timestamps() -> None:
    """Microseconds in json, milliseconds in text, both UTC with Z."""
    assert rfc3339_micros(TS) == "2026-11-25T10:00:00.123456Z"
    assert rfc3339_millis(TS) == "2026-11-25T10:00:00.123Z"
    assert rfc3339_micros(0) == "1970-01-01T00:00:00.000000Z"


def test_times_beyond_the_calendar_are_their_number() -> None:
    """A hostile line's ``ts`` far before the year 1 or past 9999 has no date: every format
    shows its number instead of failing; the year 1 itself has four digits."""
    year_1 = -62_135_596_800_000_000
    assert rfc3339_micros(year_1) == "0001-01-01T00:00:00.000000Z"
    assert rfc3339_millis(year_1 - 1) == str(year_1 - 1)
    far = [record(ts=-(10**27), line="old"), record(ts=year_1, line="one"),
           record(ts=10**25, line="new")]  # fmt: skip
    lines = [orjson.loads(line) for line in encode_json(far).splitlines()]
    assert [line["ts"] for line in lines] == [str(-(10**27)), "0001-01-01T00:00:00.000000Z",
                                              str(10**25)]  # fmt: skip
    assert text_encoder()(far).decode().splitlines()[0].startswith(str(-(10**27)))


def test_json_has_the_spec_keys_in_order() -> None:
    """One object per line; optional keys only when they say something."""
    out = encode_json([record(level="error", fields={"user": "ann"})])
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    obj = orjson.loads(out)
    assert list(obj) == ["seq", "ts", "source", "origin", "line", "level", "fields"]
    assert obj["ts"] == "2026-11-25T10:00:00.123456Z"
    assert obj["fields"] == {"user": "ann"}


def test_json_flags_only_when_true() -> None:
    """late, truncated and parse_error appear only when set."""
    plain = orjson.loads(encode_json([record()]))
    assert "late" not in plain and "truncated" not in plain and "parse_error" not in plain
    flagged = orjson.loads(encode_json([record(late=True, truncated=True, parse_error="bad")]))
    assert flagged["late"] is True and flagged["truncated"] is True
    assert flagged["parse_error"] == "bad"


def test_raw_is_the_line() -> None:
    """raw writes each line as it was, newline-terminated."""
    assert encode_raw([record("a \x1b[31mred"), record("")]) == b"a \x1b[31mred\n\n"
    assert encode_raw([]) == b""


def test_text_escapes_control_characters() -> None:
    """ANSI escapes and other controls are shown, never obeyed; tabs stay."""
    out = text_encoder()([record("\x1b[2J\x07gone\tok\x9b")]).decode()
    assert out == "2026-11-25T10:00:00.123Z app | \\x1b[2J\\x07gone\tok\\x9b\n"
    assert escape_control("plain") == "plain"


def test_text_colours_sources_in_config_order() -> None:
    """With colour, each source gets its own colour, the same for the same config."""
    encode = text_encoder(["app", "db"], colour=True)
    first = encode([record()]).decode()
    assert first.startswith("2026-11-25T10:00:00.123Z \x1b[36mapp\x1b[0m | ")
    other = Record(TS, "db", "x", "y")
    assert "\x1b[33mdb\x1b[0m" in encode([other]).decode()


text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]))


@given(
    st.lists(
        st.builds(
            Record,
            # Times apart, within one millisecond, within one second, and back a second.
            st.integers(0, 4_000_000_000_000_000)
            | st.integers(-(2**70), 2**70)  # before 1970, and beyond the calendar
            | st.sampled_from([TS, TS + 7, TS + 1000, TS + 876_543, TS - 123_457]),
            text | st.sampled_from(["a", "b"]),  # lanes: an origin may repeat, in any source
            text | st.sampled_from(["x", "y"]),
            text,
            st.none() | st.sampled_from(["info", "warn"]) | text,
            # Fields come from orjson.loads, which never gives integers past 64 bits.
            st.none() | st.dictionaries(text, st.integers(-(2**63), 2**63 - 1) | text, max_size=3),
            st.booleans(),
            st.none() | text,
        ),
        max_size=5,
    ),
    st.booleans(),
    st.lists(
        st.tuples(st.none() | text | st.just("n1"), st.sampled_from([0, TS + 9]), st.booleans())
    ),
)
def test_json_encoder_matches_the_reference(
    records: list[Record], late: bool, extra: list[tuple[str | None, int, bool]]
) -> None:
    """The hand-written encoder gives exactly orjson's output for the record's dict: with a
    node or none, from the future or not, its tail made by a parse worker or here."""
    for seq, item in enumerate(records):
        item.seq, item.late = seq, late
        if seq < len(extra):
            item.node, item.ts_claimed, worker_made = extra[seq]
            if worker_made:
                item.json_tail = json_tail(
                    item.level, item.fields, item.truncated, item.parse_error
                )
    expected = b"".join(orjson.dumps(record_to_dict(r)) + b"\n" for r in records)
    assert encode_json(records) == expected


def test_json_shows_the_node_only_when_there_is_one() -> None:
    """A remote record's node comes after its origin; a local record's JSON is unchanged."""
    local = record()
    remote = record(node="web-1")
    assert b'"node"' not in encode_json([local])
    assert orjson.loads(encode_json([remote])) == record_to_dict(remote)
    assert encode_json([remote]).startswith(
        b'{"seq":1042,"ts":"2026-11-25T10:00:00.123456Z","source":"app",'
        b'"origin":"/var/log/app/a.log","node":"web-1","line":'
    )
    assert encode_json([local, remote, local]).count(b'"node"') == 1


def test_json_of_a_batch_larger_than_a_join() -> None:
    """A batch of more records than ``encode_json`` joins at a time (its pieces are joined in
    parts) is the reference's, record for record."""
    records = []
    for seq in range(1, 1001):
        item = record(f'line {seq} "quoted" \u00e9', level="info" if seq % 3 else None)
        item.seq, item.ts, item.late = seq, TS + seq * 7919, seq % 17 == 0
        item.fields = {"n": seq} if seq % 5 == 0 else None
        records.append(item)
    expected = b"".join(orjson.dumps(record_to_dict(r)) + b"\n" for r in records)
    assert encode_json(records) == expected
