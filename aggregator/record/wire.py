"""Records read back from what another aggregator wrote: the one validating decoder of remote
records (SPEC §9).

A remote record comes from a peer that may be broken or hostile: an upstream's WebSocket
frames (``aggregator connect``, the websocket source: the JSON of ``formats.encode_json``) and
the rows of a NATS message (``aggregator.jetstream.messages``). Every member is checked for its
type (a level must be one of the six, ``fields`` an object, a time a time a calendar shows);
anything else is an ``InvalidRecord``, which the caller drops and counts. What is kept is taken
member by member into a ``Record`` and encoded again by this program: nothing a peer sent is
copied into the output as it came, so it cannot forge lines of NDJSON or WebSocket frames.
"""

from datetime import datetime
from typing import Any

import orjson

from aggregator.record.levels import LEVEL_RANK
from aggregator.record.record import Record

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00Z")
MAX_TS = 253_402_300_800 * 1_000_000
"""The first microsecond of the year 10000: times from 1970 up to before it are accepted."""


class InvalidRecord(ValueError):
    """What a peer sent is not a record this program wrote; the text says which member."""


def parse_ts(text: str) -> int:
    """Microseconds since the epoch from an RFC 3339 time as ``formats`` writes it; 0 for a
    time that cannot be read."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        return 0
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def checked_ts(value: object, key: str = "ts") -> int:
    """A time in µs since the epoch, within what a calendar shows; InvalidRecord if not."""
    if type(value) is not int or not 0 <= value < MAX_TS:
        raise InvalidRecord(f"{key}: expected a time, got {_shown(value)}")
    return value


def _time_text(value: object, key: str) -> int:
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidRecord(f"{key}: expected an RFC 3339 time, got {_shown(value)}")
    ts = parse_ts(value)
    if ts <= 0:
        raise InvalidRecord(f"{key}: expected an RFC 3339 time, got {_shown(value)}")
    return checked_ts(ts, key)


def _text(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise InvalidRecord(f"{key}: expected a string, got {_shown(value)}")
    return value


def _optional_text(value: object, key: str) -> str | None:
    return None if value is None else _text(value, key)


def _flag(value: object, key: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRecord(f"{key}: expected true or false, got {_shown(value)}")
    return value


def checked_level(value: object) -> str | None:
    """None or one of the six levels; a remote peer cannot bring a seventh."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in LEVEL_RANK:
        raise InvalidRecord(f"level: expected a level, got {_shown(value)}")
    return value


def checked_fields(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRecord(f"fields: expected an object, got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    """A value's type, for a message: what it held may be long or hostile."""
    return "null" if value is None else type(value).__name__


def record_from_json(data: object) -> Record:
    """A Record from one JSON object as ``encode_json`` writes it (``seq``, ``ts``,
    ``source``, ``origin``, ``line`` and the optional members); InvalidRecord if it is not."""
    if not isinstance(data, dict):
        raise InvalidRecord(f"expected a JSON object, got {_shown(data)}")
    seq = data.get("seq")
    if type(seq) is not int or seq < 0:
        raise InvalidRecord(f"seq: expected a whole number, got {_shown(seq)}")
    record = Record(
        _time_text(data.get("ts"), "ts"),
        _text(data.get("source"), "source"),
        _text(data.get("origin", ""), "origin"),
        _text(data.get("line"), "line"),
        checked_level(data.get("level")),
        checked_fields(data.get("fields")),
        _flag(data.get("truncated"), "truncated"),
        _optional_text(data.get("parse_error"), "parse_error"),
    )
    record.seq = seq
    record.late = _flag(data.get("late"), "late")
    record.node = _optional_text(data.get("node"), "node")
    if _flag(data.get("future"), "future"):
        record.ts_claimed = _time_text(data.get("ts_claimed"), "ts_claimed")
    return record


def apply_tail(record: Record, tail: str) -> None:
    """Level, fields and flags from a record's JSON tail as a NATS row carries it (the members
    after ``"line"``: ``formats.json_tail``), checked; the tail itself is not kept."""
    if not tail:
        return
    if not tail.startswith(","):
        raise InvalidRecord("tail: expected JSON members")
    try:
        members = orjson.loads("{" + tail[1:] + "}")
    except orjson.JSONDecodeError:
        raise InvalidRecord("tail: not JSON members") from None
    record.level = checked_level(members.get("level"))
    record.fields = checked_fields(members.get("fields"))
    record.truncated = _flag(members.get("truncated"), "truncated")
    record.parse_error = _optional_text(members.get("parse_error"), "parse_error")
