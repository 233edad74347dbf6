"""Bytes → records for one lane (a file, a connection): lines, multiline joining, the codec.

A ``Decoding`` is built once per source from its config (the codec and patterns are compiled
once); each lane gets its own ``LaneDecoder`` holding that lane's partial line and multiline
record.
"""

import re
import time
from collections.abc import Sequence

from aggregator.config import LineSourceConfig
from aggregator.flow.record import Batch, Record
from aggregator.parse.codecs import Codec, Columns, RawCodec, parse_lines
from aggregator.parse.framing import OctetCountedSplitter
from aggregator.parse.lines import Lines, LineSplitter, Splitter
from aggregator.parse.multiline import MultilineJoiner
from aggregator.parse.needs import Needs
from aggregator.parse.pool import POOL_MIN_BYTES, ParsePool
from aggregator.parse.timestamps import line_start_span
from aggregator.parse.worker import CodecSpec, ParsedRegion


def now_micros() -> int:
    """The wall-clock time in microseconds since the epoch: the ``ts`` of a line read now."""
    return time.time_ns() // 1000


class Decoding:
    """How one source turns bytes into records."""

    def __init__(
        self,
        source: str,
        config: LineSourceConfig,
        needs: Needs = "everything",
        pool: ParsePool | None = None,
    ) -> None:
        """``needs``: what the sinks need the codec to find; ``pool``: where large reads are
        parsed (None: on the loop)."""
        self.source = source
        self.config = config
        self.truncated_lines = 0  # counted for /metrics
        timestamp = config.timestamp
        self.spec = CodecSpec(
            config.codec, timestamp.field, timestamp.format, config.pattern, needs
        )
        self.codec: Codec = self.spec.make_codec()
        self.pool = pool if pool is not None and pool.workers else None
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
            stamp = line_start_span
            batch = [
                Record(read_at if (ts := stamp(text)) is None else ts[0], source, origin, text)
                for text in lines.text
            ]
        else:
            columns = parse_lines(self.codec, lines.text, stamps_only=self.spec.needs == "stamps")
            batch = self._build(origin, lines.text, columns, read_at)
        self._flag_truncated(batch, lines.truncated)
        return batch

    def parsed_records(self, origin: str, region: ParsedRegion, read_at: int) -> Batch:
        """Records for a region a worker has parsed."""
        batch = self._build(origin, region.texts, region.columns, read_at, region.json_tails)
        self._flag_truncated(batch, region.truncated)
        return batch

    def _build(
        self,
        origin: str,
        texts: Sequence[str],
        columns: Columns,
        read_at: int,
        json_tails: Sequence[str] | None = None,
    ) -> Batch:
        source = self.source
        stamps, levels, fields, errors = columns
        if json_tails is not None:  # the times, and the rest of the JSON (``ParsedRegion``)
            return [
                Record(read_at if ts is None else ts, source, origin, text, json_tail=tail)
                for text, ts, tail in zip(texts, stamps, json_tails, strict=True)
            ]
        if levels is fields is errors:  # stamps only (see ``parse_lines``)
            return [
                Record(read_at if ts is None else ts, source, origin, text)
                for text, ts in zip(texts, stamps, strict=True)
            ]
        return [
            Record(
                read_at if ts is None else ts,
                source,
                origin,
                text,
                level=level,
                fields=extra,
                parse_error=error,
            )
            for text, ts, level, extra, error in zip(
                texts, stamps, levels, fields, errors, strict=True
            )
        ]

    def _flag_truncated(self, batch: Batch, truncated: list[int]) -> None:
        for index in truncated:
            batch[index].truncated = True
        self.truncated_lines += len(truncated)


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

    async def decode(self, data: bytes) -> Batch:
        """``feed``, with the lines of a large read parsed in a worker process if there are
        workers (see ``aggregator.parse.pool``)."""
        decoding = self.decoding
        pool = decoding.pool
        if (
            pool is None
            or pool.broken
            or len(data) < POOL_MIN_BYTES
            or self.joiner is not None
            or not isinstance(self.splitter, LineSplitter)
        ):
            return self.feed(data)
        read_at = now_micros()
        head, region = self.splitter.take(data)
        batch = decoding.records(self.origin, head, read_at)
        if region is not None:
            limit = decoding.config.max_line_bytes
            parsed = await pool.parse(decoding.spec, region, limit)
            batch += decoding.parsed_records(self.origin, parsed, read_at)
        return batch

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
