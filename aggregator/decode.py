"""Bytes → records for one lane (a file, a connection): lines, multiline joining, the codec.

A ``Decoding`` is built once per source from its config (the codec and patterns are compiled
once); each lane gets its own ``LaneDecoder`` holding that lane's partial line and multiline
record.
"""

import re
import time

from aggregator.codecs import NOTHING, Codec, RawCodec, make_codec
from aggregator.config import LineSourceConfig
from aggregator.framing import OctetCountedSplitter
from aggregator.lines import Lines, LineSplitter, Splitter
from aggregator.multiline import MultilineJoiner
from aggregator.record import Batch, Record
from aggregator.timestamps import quick_line_start_span


def now_micros() -> int:
    """The wall-clock time in microseconds since the epoch: the ``ts`` of a line read now."""
    return time.time_ns() // 1000


class Decoding:
    """How one source turns bytes into records."""

    def __init__(self, source: str, config: LineSourceConfig) -> None:
        self.source = source
        self.config = config
        self.truncated_lines = 0  # counted for /metrics
        self.codec: Codec = make_codec(
            config.codec, config.timestamp.field, config.timestamp.format, config.pattern
        )
        multiline = config.multiline
        self._multiline_start = re.compile(multiline.start) if multiline else None

    def lane(self, origin: str, framing: str = "newline") -> "LaneDecoder":
        """A decoder for one lane; ``framing`` is "newline" or "octet-counted" (RFC 6587)."""
        limit = self.config.max_line_bytes
        splitter: Splitter = (
            OctetCountedSplitter(limit) if framing == "octet-counted" else LineSplitter(limit)
        )
        joiner = None
        if self.config.multiline is not None and self._multiline_start is not None:
            joiner = MultilineJoiner(
                self._multiline_start,
                self.config.multiline.max_lines,
                self.config.max_line_bytes,
                self.config.multiline.timeout,
            )
        return LaneDecoder(self, origin, splitter, joiner)

    def records(self, origin: str, lines: Lines, read_ts: int | None = None) -> Batch:
        """Records for ``lines`` from ``origin``; a line's own time, else ``read_ts`` (now)."""
        if not lines.text:
            return []
        read_at = now_micros() if read_ts is None else read_ts
        source = self.source
        if isinstance(self.codec, RawCodec):  # the hot path, without a tuple per line
            stamp = quick_line_start_span
            batch = [
                Record(read_at if (ts := stamp(text)) is None else ts[0], source, origin, text)
                for text in lines.text
            ]
        else:
            batch = self._parsed_records(origin, lines.text, read_at)
        for index in lines.truncated:
            batch[index].truncated = True
        self.truncated_lines += len(lines.truncated)
        return batch

    def _parsed_records(self, origin: str, texts: list[str], read_at: int) -> Batch:
        source = self.source
        parse = self.codec.parse
        batch = []
        for text in texts:
            ts, level, fields, error = parse(text) if text else NOTHING
            batch.append(
                Record(
                    read_at if ts is None else ts, source, origin, text, level, fields, False, error
                )
            )
        return batch


class LaneDecoder:
    """One lane's bytes → records."""

    def __init__(
        self,
        decoding: Decoding,
        origin: str,
        splitter: Splitter,
        joiner: MultilineJoiner | None,
    ) -> None:
        self.decoding = decoding
        self.origin = origin
        self.splitter = splitter
        self.joiner = joiner

    @property
    def deadline(self) -> float | None:
        """When a held multiline record must go out (monotonic seconds), if one is held."""
        return self.joiner.deadline if self.joiner is not None else None

    @property
    def pending_bytes(self) -> int:
        return self.splitter.pending_bytes

    @property
    def holds_record(self) -> bool:
        """Whether lines wait in the multiline joiner (whose bytes the splitter no longer has)."""
        return self.joiner is not None and self.joiner.deadline is not None

    @property
    def error(self) -> ValueError | None:
        """Why the lane's bytes cannot be split any further (a framing error), if they can't."""
        return self.splitter.error

    def feed(self, data: bytes) -> Batch:
        lines = self.splitter.feed(data)
        if self.joiner is not None:
            lines = self.joiner.feed(lines, time.monotonic())
        return self.decoding.records(self.origin, lines)

    def expire(self) -> Batch:
        """The held multiline record, if it has waited its timeout."""
        if self.joiner is None:
            return []
        return self.decoding.records(self.origin, self.joiner.expire(time.monotonic()))

    def flush(self) -> Batch:
        """Everything held, at the end of the input (or of a file rotated away)."""
        lines = self.splitter.flush()
        if self.joiner is not None:
            joined = self.joiner.feed(lines, time.monotonic())
            tail = self.joiner.flush()
            joined.truncated += [len(joined.text) + index for index in tail.truncated]
            joined.text += tail.text
            lines = joined
        return self.decoding.records(self.origin, lines)
