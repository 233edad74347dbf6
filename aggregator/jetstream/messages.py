"""The messages the nats sink publishes and the nats source reads back.

A message holds many records of one (node, source): a first line of JSON *meta*, then the
records as one JSON array of rows (``encode_message`` says what a row holds). The meta says who
sent them and where each record is in its file (``Record.lane``, ``lane_seq``), so that a
consumer recognises records a sidecar sends again after a crash whatever the messages they come
in, and carries the sender's *watermark*: the highest event time it has sent, which no later
record of that sender undercuts except a late one (its merge sent everything in order).

Pure: encoding and decoding are tested directly.
"""

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from aggregator.record.formats import json_tail
from aggregator.record.record import Record
from aggregator.record.wire import MAX_TS, InvalidRecord, apply_tail, checked_ts

FORMAT_VERSION = 1

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(name: str) -> str:
    """``name`` as one subject token: dots, wildcards and spaces become ``_`` (the real
    names travel in the records, never parsed back from the subject)."""
    return _UNSAFE.sub("_", name) or "_"


def subject_for(prefix: str, node: str, source: str) -> str:
    return f"{prefix}.{subject_token(node)}.{subject_token(source)}"


class BadMessage(ValueError):
    """A message that is not one the nats sink wrote (a poison message)."""


@dataclass(slots=True)
class Message:
    """Records of one (node, source) on their way to the stream."""

    subject: str
    payload: bytes
    msg_id: str
    count: int
    first_seq: int
    last_seq: int


def message_id(node: str, source: str, records: Sequence[Record], fallback: str) -> str:
    """A ``Nats-Msg-Id`` the same for the same records: from their places in their files when
    they all have one (a restart that cuts the same messages is deduplicated by the server
    too), else ``fallback`` (the sender's run and the message's number)."""
    first, last = records[0], records[-1]
    if first.lane is None or last.lane is None:
        return fallback
    text = f"{node}\0{source}\0{first.lane}\0{first.lane_seq}\0{last.lane}\0{last.lane_seq}"
    return hashlib.blake2b(f"{text}\0{len(records)}".encode(), digest_size=16).hexdigest()


def encode_message(
    node: str, source: str, records: Sequence[Record], watermark: int, end: bool = False
) -> bytes:
    """The payload: a meta line (who sent it, its watermark, the origins and file lanes it
    names), then one JSON array of rows, one per record: ``[ts, origin, line, tail, lane,
    lane_seq, late, node]``, and ``ts_claimed`` after them for a record from the future
    (``Record.ts_claimed``). ``ts`` is in microseconds, ``origin`` and ``lane`` index the
    meta's lists (-1: none), ``tail`` is the record's JSON after ``"line"`` (level, fields,
    truncated, parse_error: ``Record.json_tail``), ``node`` is null but for a record that came
    from further away. Rows are what the consumer rebuilds records from without parsing a time
    or a JSON object per record (a third of the cost of NDJSON). ``end``: the sender stopped
    cleanly, nothing follows this message on its subject until it starts again."""
    origins: dict[str, int] = {}
    lanes: dict[str, int] = {}
    rows = []
    for r in records:
        tail = r.json_tail
        if tail is None:
            tail = json_tail(r.level, r.fields, r.truncated, r.parse_error)
        origin = origins.get(r.origin)
        if origin is None:
            origin = origins[r.origin] = len(origins)
        lane = -1
        if r.lane is not None:
            lane = lanes.get(r.lane, -1)
            if lane < 0:
                lane = lanes[r.lane] = len(lanes)
        row = (r.ts, origin, r.line, tail, lane, r.lane_seq, r.late, r.node)
        rows.append((*row, r.ts_claimed) if r.ts_claimed else row)
    meta: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "node": node,
        "source": source,
        "wm": watermark,
        "at": time.time_ns() // 1000,  # the sender's clock: the consumer estimates its skew
        "origins": list(origins),
        "lanes": list(lanes),
    }
    if end:
        meta["end"] = True
    return orjson.dumps(meta) + b"\n" + orjson.dumps(rows)


@dataclass(slots=True)
class Decoded:
    node: str
    source: str
    watermark: int
    records: list[Record] = field(default_factory=list)
    sent_at: int | None = None
    """The sender's clock when it cut the message (µs since the epoch), if it said."""
    end: bool = False
    """The sender stopped cleanly: its lane ends here."""


def decode_message(payload: bytes) -> Decoded:
    """The records of a payload, each with its ``node``, ``lane`` and ``lane_seq``;
    ``BadMessage`` if it is not one ``encode_message`` made.

    Every member is checked for its type (``aggregator.record.wire``): a publisher may be
    broken or hostile, and a message that crashed the consumer would crash it again at every
    start. Records are rebuilt member by member (their tails too): nothing of the payload is
    copied into the output as it came."""
    try:
        head, _, body = payload.partition(b"\n")
        meta = orjson.loads(head)
        if not isinstance(meta, dict) or meta.get("v") != FORMAT_VERSION:
            raise BadMessage(f"not a message of format {FORMAT_VERSION}")
        node, source = _name(meta.get("node"), "node"), _name(meta.get("source"), "source")
        watermark = _whole(meta.get("wm"), "wm")
        origins = _names(meta.get("origins"), "origins")
        lanes = _names(meta.get("lanes"), "lanes")
        rows = orjson.loads(body)
        if not isinstance(rows, list):
            raise BadMessage("the records are not a list")
        records = [_record(row, node, source, origins, lanes) for row in rows]
    except BadMessage:
        raise
    except InvalidRecord as error:
        raise BadMessage(str(error)) from None
    except orjson.JSONDecodeError as error:
        raise BadMessage(f"cannot be read: {error}") from None
    sent_at = meta.get("at")
    return Decoded(
        node,
        source,
        watermark,
        records,
        sent_at if type(sent_at) is int else None,
        meta.get("end") is True,
    )


def _record(row: object, node: str, source: str, origins: list[str], lanes: list[str]) -> Record:
    """One row: ``[ts, origin, line, tail, lane, lane_seq, late, node(, ts_claimed)]``. The
    checks are written out (no call per member): this runs for every record at the central."""
    if type(row) is not list:
        raise BadMessage("a record is not a row of 8 or 9 members")
    claimed: object = 0
    if len(row) == 8:
        ts, origin, line, tail, lane, lane_seq, late, from_node = row
    elif len(row) == 9:
        ts, origin, line, tail, lane, lane_seq, late, from_node, claimed = row
    else:
        raise BadMessage("a record is not a row of 8 or 9 members")
    if type(ts) is not int or not 0 <= ts < MAX_TS:
        checked_ts(ts)  # raises, saying why
    if type(origin) is not int or not 0 <= origin < len(origins):
        raise BadMessage("origin: not an index into the origins")
    if type(line) is not str:
        raise BadMessage("line: expected a string")
    if type(tail) is not str:
        raise BadMessage("tail: expected a string")
    if type(late) is not bool:
        raise BadMessage("late: expected true or false")
    if type(lane) is not int or not -1 <= lane < len(lanes):
        raise BadMessage("lane: not an index into the lanes")
    record = Record(ts, source, origins[origin], line)
    if tail:
        apply_tail(record, tail)  # read, checked, and written again by this program
        record.json_tail = json_tail(
            record.level, record.fields, record.truncated, record.parse_error
        )
    record.node = node if from_node is None else _name(from_node, "node")
    if lane >= 0:
        record.lane = lanes[lane]
        record.lane_seq = _whole(lane_seq, "lane_seq")
    if late:
        record.late = True
    if claimed:
        record.ts_claimed = checked_ts(claimed, "ts_claimed")
    return record


def _name(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise BadMessage(f"{key}: expected a string")
    return value


def _names(value: object, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadMessage(f"{key}: expected a list of strings")
    return value


def _whole(value: object, key: str) -> int:
    if type(value) is not int:
        raise BadMessage(f"{key}: expected a whole number")
    return value
