"""Lines → records for one source: the codec, the event time, the truncation flags."""

import time

from aggregator.lines import Lines
from aggregator.record import Batch, Record


def now_micros() -> int:
    """The wall-clock time in microseconds since the epoch: the ``ts`` of a line read now."""
    return time.time_ns() // 1000


class RecordMaker:
    """Builds the records of one source from the lines it read."""

    def __init__(self, source: str) -> None:
        self.source = source

    def make(self, origin: str, lines: Lines, read_ts: int | None = None) -> Batch:
        """Records for ``lines`` read from ``origin``; ``read_ts`` defaults to now."""
        ts = now_micros() if read_ts is None else read_ts
        source = self.source
        batch = [Record(ts, source, origin, text) for text in lines.text]
        for index in lines.truncated:
            batch[index].truncated = True
        return batch
