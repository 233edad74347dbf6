"""Bytes → records for one lane (a file, a connection): lines, multiline joining, the codec.

A ``Decoding`` is built once per source from its config (the codec and patterns are compiled
once); each lane gets its own ``LaneDecoder`` holding that lane's partial line and multiline
record.
"""

import re
import time
from collections.abc import Sequence

from aggregator.config import LineSourceConfig
from aggregator.parse.codecs import Codec, Columns, RawCodec, parse_lines
from aggregator.parse.framing import OctetCountedSplitter
from aggregator.parse.lines import Lines, LineSplitter, Splitter, split_region
from aggregator.parse.multiline import MultilineJoiner
from aggregator.parse.needs import Needs
from aggregator.parse.pool import POOL_MIN_BYTES, ParsePool
from aggregator.parse.timestamps import line_start_span
from aggregator.parse.worker import CodecSpec, ParsedRegion
from aggregator.record.record import Batch, Record


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

    def records(
        self,
        origin: str,
        lines: Lines,
        read_ts: int | None = None,
        previous: int | None = None,
    ) -> tuple[Batch, int | None]:
        """Records for ``lines`` from ``origin``, and the lane's time after them (see
        ``LaneDecoder.last_ts``). A line's time is its own; else that of the record before
        it, ``previous`` for the first line (SPEC §4: a trace stays beside its error); else,
        where no record before had a time, ``read_ts`` (now)."""
        if not lines.text:
            return [], previous
        read_at = now_micros() if read_ts is None else read_ts
        source = self.source
        last = previous
        if isinstance(self.codec, RawCodec):  # the hot path, without a tuple per line
            stamp = line_start_span
            batch = [
                Record(
                    (last := ts[0])
                    if (ts := stamp(text)) is not None
                    else (read_at if last is None else last),
                    source,
                    origin,
                    text,
                )
                for text in lines.text
            ]
        else:
            columns = parse_lines(self.codec, lines.text, stamps_only=self.spec.needs == "stamps")
            batch, last = self._build(origin, lines.text, columns, read_at, previous)
        self._flag_truncated(batch, lines.truncated)
        return batch, last

    def parsed_records(
        self, origin: str, region: ParsedRegion, read_at: int, previous: int | None = None
    ) -> tuple[Batch, int | None]:
        """Records for a region a worker has parsed, timed as ``records`` times them: the
        worker says only which lines have a time of their own, so a region's first lines
        take the time the lane had before it, wherever it was parsed."""
        batch, last = self._build(
            origin, region.texts, region.columns, read_at, previous, region.json_tails
        )
        self._flag_truncated(batch, region.truncated)
        return batch, last

    def _build(
        self,
        origin: str,
        texts: Sequence[str],
        columns: Columns,
        read_at: int,
        previous: int | None,
        json_tails: Sequence[str] | None = None,
    ) -> tuple[Batch, int | None]:
        source = self.source
        stamps, levels, fields, errors = columns
        last = previous
        if json_tails is not None:  # the times, and the rest of the JSON (``ParsedRegion``)
            batch = [
                Record(
                    (last := ts) if ts is not None else (read_at if last is None else last),
                    source,
                    origin,
                    text,
                    json_tail=tail,
                )
                for text, ts, tail in zip(texts, stamps, json_tails, strict=True)
            ]
        elif levels is fields is errors:  # stamps only (see ``parse_lines``)
            batch = [
                Record(
                    (last := ts) if ts is not None else (read_at if last is None else last),
                    source,
                    origin,
                    text,
                )
                for text, ts in zip(texts, stamps, strict=True)
            ]
        else:
            batch = [
                Record(
                    (last := ts) if ts is not None else (read_at if last is None else last),
                    source,
                    origin,
                    text,
                    level,
                    extra,
                    False,  # truncated: set after (_flag_truncated)
                    error,  # positional: keywords cost a third more a record, interpreted
                )
                for text, ts, level, extra, error in zip(
                    texts, stamps, levels, fields, errors, strict=True
                )
            ]
        return batch, last

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
        self.last_ts: int | None = None
        """The time of the lane's last record that had one (its own, or one it took from a
        record before it): what its next line without a time of its own takes."""

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

    def prime(self, before: bytes, lines: int = 1000) -> None:
        """Take the time of the last line in ``before`` that has one, as if it had been read:
        ``before`` holds the whole lines just before where reading starts (``tail -n``), so
        that untimed lines at the start (a trace cut by the start) take their error's time.
        At most the last ``lines`` of them are looked at."""
        if not before:
            return
        stamp = self.decoding.codec.stamp
        texts = split_region(before.removesuffix(b"\n"), self.decoding.config.max_line_bytes).text
        for text in reversed(texts[-lines:]):
            ts = stamp(text) if text else None
            if ts is not None:
                self.last_ts = ts
                return

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
        batch, self.last_ts = decoding.records(self.origin, head, read_at, self.last_ts)
        if region is not None:
            limit = decoding.config.max_line_bytes
            parsed = await pool.parse(decoding.spec, region, limit)
            # The lane's time is read only now, once the region is back: a lane's reads are
            # decoded one after the other, so nothing else has moved it meanwhile.
            rest, self.last_ts = decoding.parsed_records(self.origin, parsed, read_at, self.last_ts)
            batch += rest
        return batch

    def feed(self, data: bytes) -> Batch:
        lines = self.splitter.feed(data)
        if self.joiner is not None:
            lines = self.joiner.feed(lines, time.monotonic())
        return self._records(lines)

    def _records(self, lines: Lines) -> Batch:
        batch, self.last_ts = self.decoding.records(self.origin, lines, None, self.last_ts)
        return batch

    def expire(self) -> Batch:
        """The held multiline record, if it has waited its timeout."""
        if self.joiner is None:
            return []
        return self._records(self.joiner.expire(time.monotonic()))

    def flush(self) -> Batch:
        """Everything held, at the end of the input (or of a file rotated away)."""
        lines = self.splitter.flush()
        if self.joiner is not None:
            joined = self.joiner.feed(lines, time.monotonic())
            tail = self.joiner.flush()
            joined.truncated += [len(joined.text) + index for index in tail.truncated]
            joined.text += tail.text
            lines = joined
        return self._records(lines)
