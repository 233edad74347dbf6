"""The Record: one log line on its way from a source, through the merge, to the sinks."""

from typing import Any


class Record:
    """One line and what is known about it.

    ``ts`` is the event time in whole microseconds since the Unix epoch (UTC): integers compare
    fast in the merge and format exactly. ``seq`` is given by the merge, in the order records
    leave it; it is 0 until then. ``json_tail``, when a parse worker made it, is the record's
    JSON object after ``"line"`` (``aggregator.record.formats.json_tail``), and the level and fields
    are kept only there: a pipeline asks for it when no sink shows them otherwise.

    ``node`` is the machine the record was read on, for records that came through a remote source
    (nats, websocket); None for records read here. ``lane`` and ``lane_seq`` say where the record
    is in its file, in a way a restart from a checkpoint gives again: ``lane`` names the file and
    where counting began (kept in the checkpoint), ``lane_seq`` counts the file's records from
    there (1, 2, …). A consumer of the nats sink's messages drops a record whose (lane, lane_seq)
    it already has (a sidecar re-sending after a crash). None and 0 for other inputs.

    ``ts_claimed`` is the time a record claimed when that was too far ahead of when it was read
    (``aggregator.flow.future``): ``ts`` is then the read time, and the record is ``future``.
    0 for every other record.

    ``verdicts``: which of the pipeline's judged ``where``s the record passes, one bit each,
    set where its line was parsed (``aggregator.record.verdicts``); 0 when it was not judged.
    """

    __slots__ = (
        "fields",
        "json_tail",
        "lane",
        "lane_seq",
        "late",
        "level",
        "line",
        "node",
        "origin",
        "parse_error",
        "seq",
        "source",
        "truncated",
        "ts",
        "ts_claimed",
        "verdicts",
    )

    def __init__(
        self,
        ts: int,
        source: str,
        origin: str,
        line: str,
        level: str | None = None,
        fields: dict[str, Any] | None = None,
        truncated: bool = False,
        parse_error: str | None = None,
        json_tail: str | None = None,
    ) -> None:
        self.seq = 0
        self.ts = ts
        self.source = source
        self.origin = origin
        self.line = line
        self.level = level
        self.fields = fields
        self.late = False
        self.truncated = truncated
        self.parse_error = parse_error
        self.json_tail = json_tail
        self.node: str | None = None
        self.lane: str | None = None
        self.lane_seq = 0
        self.ts_claimed = 0
        self.verdicts = 0

    def __repr__(self) -> str:
        return f"Record(seq={self.seq}, ts={self.ts}, source={self.source!r}, line={self.line!r})"


Batch = list[Record]
"""Records move between stages in batches: a queue hop per line would cost more than the line."""
