"""Records read back from the JSON they were written as (``formats.encode_json``): what a
remote aggregator's stream (``aggregator connect``, the websocket source) carries."""

from datetime import datetime
from typing import Any

from aggregator.record.record import Record

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00Z")


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


def record_from_json(data: dict[str, Any]) -> Record:
    """A Record as the server sent it, for the text and raw formats."""
    record = Record(
        parse_ts(str(data.get("ts", ""))),
        str(data.get("source", "")),
        str(data.get("origin", "")),
        str(data.get("line", "")),
        data.get("level"),
        data.get("fields"),
        bool(data.get("truncated")),
        data.get("parse_error"),
    )
    record.seq = int(data.get("seq", 0))
    record.late = bool(data.get("late"))
    node = data.get("node")
    record.node = None if node is None else str(node)
    return record
