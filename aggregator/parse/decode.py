"""Bytes → records for one lane (a file, a connection): lines, multiline joining, the codec.

A ``Decoding`` is built once per source from its config (the codec and patterns are compiled
once); each lane gets its own ``LaneDecoder`` holding that lane's partial line and multiline
record. A container's log file (codec ``cri`` or ``docker``, or ``auto`` seeing one in the
lane's first line) goes through the lane's ``EnvelopeReader`` first (a large read's in a parse
worker, the lane's partial lines carried there and back), its messages through the multiline
joiner if the source has one, and then through the inner codec. A lane's fixed fields (the
source's ``fields``, and what a Kubernetes log path says) are added to each of its records.
"""

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from aggregator.config import LineSourceConfig
from aggregator.lazyjson import loads
from aggregator.parse.codecs import Codec, Columns, RawCodec, parse_lines
from aggregator.parse.container import (
    CONTAINER_CODECS,
    EnvelopeCodec,
    EnvelopeReader,
    EnvelopeRegion,
    Messages,
    looks_like,
    unwrap_cri,
    unwrap_docker,
)
from aggregator.parse.framing import OctetCountedSplitter
from aggregator.parse.kubernetes import path_fields
from aggregator.parse.lines import Lines, LineSplitter, Splitter, split_region
from aggregator.parse.multiline import MessageJoiner, MultilineJoiner
from aggregator.parse.needs import Needs
from aggregator.parse.pool import POOL_MIN_BYTES, ParsePool
from aggregator.parse.timestamps import line_start_span
from aggregator.parse.worker import CodecSpec, ParsedRegion
from aggregator.record.record import Batch, Record
from aggregator.record.verdicts import COMPLETE, Judged

ENVELOPE_HEADROOM = 4096
"""Bytes a container runtime's line may have besides its message (time, stream, JSON)."""


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
        judged: Judged | None = None,
    ) -> None:
        """``needs``: what the sinks need the codec to find; ``pool``: where large reads are
        parsed (None: on the loop); ``judged``: the sinks' ``where``s to judge
        (``aggregator.record.verdicts``)."""
        self.source = source
        self.config = config
        self.truncated_lines = 0  # counted for /metrics
        timestamp = config.timestamp
        self.envelope = config.codec if config.codec in CONTAINER_CODECS else None
        """"cri" or "docker" for every lane; None: plain lines, or ``auto`` looks per lane."""
        codec = config.inner_codec if self.envelope is not None else config.codec
        self.spec = CodecSpec(codec, timestamp.field, timestamp.format, config.pattern, needs)
        self.fields: dict[str, Any] = dict(config.fields)
        self.codec: Codec = self.spec.make_codec()
        self.pool = pool if pool is not None and pool.workers else None
        multiline = config.multiline
        self._multiline_start = re.compile(multiline.start) if multiline else None
        self.judged = judged
        if judged is not None:
            judged.register(source, self.complete)

    @property
    def judging(self) -> tuple[str, ...]:
        """The ``where``s judged now: a worker judges them on a plain lane's regions; every
        other record is made whole while there are any (``needs_now``)."""
        return self.judged.current if self.judged is not None else ()

    @property
    def needs_now(self) -> Needs:
        """What the codec finds on the loop: everything while ``where``s are judged."""
        return "everything" if self.judging else self.spec.needs

    def complete(self, record: Record) -> Record:
        """``record`` with the level and fields that its codec finds (and its lane's fixed
        fields), for a sink whose ``where`` was not judged on it: it was decoded with only
        what the sinks then showed (``aggregator.record.verdicts.Judged.complete``)."""
        if record.json_tail is not None:
            found = loads("{" + record.json_tail[1:] + "}")
            level, fields = found.get("level"), found.get("fields")
        elif record.level is None and record.fields is None:
            _, levels, parsed, _ = parse_lines(self.codec, [record.line])
            level, fields = levels[0], parsed[0]
            extra = {**path_fields(record.origin), **self.fields}
            if extra:
                fields = {**(fields or {}), **extra}
        else:
            return record
        whole = Record(record.ts, record.source, record.origin, record.line, level, fields)
        whole.node = record.node
        return whole

    def region_spec(self, judging: tuple[str, ...], whole: bool) -> CodecSpec:
        """What a worker parses a plain lane's region with: the ``where``s ``judging`` judged
        there, or, with ``whole`` (fields are added to its records here), everything found."""
        if not judging:
            return self.spec
        if whole:
            return self.spec._replace(needs="everything")
        return self.spec._replace(source=self.source, wheres=judging)

    def mark(
        self,
        batch: Batch,
        needs: Needs,
        wheres: tuple[str, ...] = (),
        verdicts: bytes | None = None,
    ) -> None:
        """Each record's ``Record.verdicts``, while ``where``s are judged: as a worker judged
        them (``verdicts`` on ``wheres``), or ``COMPLETE`` if found with ``needs`` everything."""
        judged = self.judged
        if verdicts is not None and judged is not None:
            table = judged.table(wheres)
            for record, verdict in zip(batch, verdicts, strict=True):
                record.verdicts = table[verdict]
        elif needs == "everything" and self.judging:
            for record in batch:
                record.verdicts = COMPLETE

    def lane(self, origin: str, framing: str = "newline") -> "LaneDecoder":
        """A decoder for one lane; ``framing`` is "newline" or "octet-counted" (RFC 6587)."""
        limit = self.config.max_line_bytes
        if self.envelope is not None:  # the bound is the message's: room for the wrapper
            limit += ENVELOPE_HEADROOM
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
        decoder = LaneDecoder(
            self, origin, splitter, joiner, {**path_fields(origin), **self.fields}
        )
        if self.envelope is not None:
            decoder.use_envelope(self.envelope)
        elif self.config.codec == "auto" and framing == "newline":
            decoder.sniffing = True
        return decoder

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
        if self.envelope is not None:  # a datagram: one stands alone, nothing held over
            reader = EnvelopeReader(self.envelope, self.config.max_line_bytes)
            messages = reader.feed(lines)
            messages.extend(reader.flush())
            codec = EnvelopeCodec(self.envelope, self.codec, {})
            return self.message_records(origin, codec, messages, previous)
        read_at = now_micros() if read_ts is None else read_ts
        source = self.source
        last = previous
        needs = self.needs_now
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
            columns = parse_lines(self.codec, lines.text, stamps_only=needs == "stamps")
            batch, last = self._build(origin, lines.text, columns, read_at, previous)
        self._flag_truncated(batch, lines.truncated)
        self.mark(batch, needs)
        return batch, last

    def message_records(
        self, origin: str, codec: EnvelopeCodec, messages: Messages, previous: int | None
    ) -> tuple[Batch, int | None]:
        """Records for a container's messages, read by ``codec`` (``EnvelopeCodec.read``),
        timed as ``records`` times lines."""
        if not messages.texts:
            return [], previous
        needs = self.needs_now
        columns = codec.read(messages, stamps_only=needs == "stamps")
        batch, last = self._build(origin, messages.texts, columns, now_micros(), previous)
        self._flag_truncated(batch, messages.truncated)
        self.mark(batch, needs)
        return batch, last

    def add_fields(self, batch: Batch, extra: dict[str, Any], needs: Needs | None = None) -> None:
        """A lane's fixed fields added to each of its records (where the sinks show fields,
        or ``needs``, what the records were found with, says)."""
        if not extra or (needs or self.needs_now) == "stamps":
            return
        for record in batch:
            fields = record.fields
            if fields is None:
                record.fields = dict(extra)
            else:
                fields.update(extra)

    def parsed_records(
        self,
        origin: str,
        region: ParsedRegion,
        read_at: int,
        previous: int | None = None,
        spec: CodecSpec | None = None,
    ) -> tuple[Batch, int | None]:
        """Records for a region a worker has parsed, timed as ``records`` times them: the
        worker says only which lines have a time of their own, so a region's first lines
        take the time the lane had before it, wherever it was parsed."""
        batch, last = self._build(
            origin, region.texts, region.columns, read_at, previous, region.json_tails
        )
        self._flag_truncated(batch, region.truncated)
        spec = spec or self.spec  # what the region was sent with
        self.mark(batch, spec.needs, spec.wheres, region.verdicts)
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
            # By index, not ``zip(..., strict=True)``: its keyword builds a dict for each call,
            # a third of this for a live read of one line.
            count = len(texts)
            if len(stamps) != count:
                raise ValueError(f"{len(stamps)} stamps for {count} lines")
            batch = []
            for index in range(count):
                ts = stamps[index]
                if ts is not None:
                    last = ts
                batch.append(
                    Record(
                        ts if ts is not None else (read_at if last is None else last),
                        source,
                        origin,
                        texts[index],
                    )
                )
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
        extra: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> None:
        """``limit``: the splitter's ``max_line_bytes``, for the regions a worker splits."""
        self.decoding = decoding
        self.limit = decoding.config.max_line_bytes if limit is None else limit
        self.origin = origin
        self.splitter = splitter
        self.joiner = joiner
        self.extra: dict[str, Any] = extra or {}
        """Fields added to each record: the source's ``fields``, and a Kubernetes path's."""
        self.envelope: EnvelopeReader | None = None
        self.envelope_codec: EnvelopeCodec | None = None
        self.envelope_spec: CodecSpec | None = None
        self.message_joiner: MessageJoiner | None = None
        """A container's multiline joining: of its messages, once unwrapped."""
        self.sniffing = False
        """``auto``: the lane's first line has not been seen yet (it tells whether the lane
        is a container's log file)."""
        self._head = b""
        self.last_ts: int | None = None
        """The time of the lane's last record that had one (its own, or one it took from a
        record before it): what its next line without a time of its own takes."""

    @property
    def deadline(self) -> float | None:
        """When a held multiline record must go out (monotonic seconds), if one is held."""
        if self.message_joiner is not None:
            return self.message_joiner.deadline
        return self.joiner.deadline if self.joiner is not None else None

    @property
    def pending_bytes(self) -> int:
        return self.splitter.pending_bytes

    @property
    def holds_record(self) -> bool:
        """Whether lines wait in the multiline joiner or, partial, in the envelope reader
        (whose bytes the splitter no longer has)."""
        if self.envelope is not None and self.envelope.holds_partial:
            return True
        return self.deadline is not None

    def use_envelope(self, kind: str) -> None:
        """Read the lane's lines as a container runtime's (``cri`` or ``docker``); multiline
        joining, if configured, joins the messages."""
        decoding = self.decoding
        self.envelope = EnvelopeReader(kind, decoding.config.max_line_bytes)
        self.envelope_codec = EnvelopeCodec(kind, decoding.codec, self.extra)
        if self.joiner is not None:
            self.message_joiner = MessageJoiner(self.joiner)
            self.joiner = None
        self.sniffing = False
        self.envelope_spec = decoding.spec._replace(envelope=kind, fields=tuple(self.extra.items()))
        """What a worker reads this lane's regions with: the message by the inner codec (the
        source's own with ``auto``), the lane's fields added."""

    def _sniff(self, data: bytes) -> None:
        """``auto``: decide from the lane's first line (or its first 4 KiB) whether the lane
        is a container's log file."""
        self._head += data[: 4096 - len(self._head)]
        newline = self._head.find(b"\n")
        if newline < 0 and len(self._head) < 4096:
            return
        first = self._head[:newline] if newline >= 0 else self._head
        kind = looks_like(first.decode("utf-8", "replace").removesuffix("\r"))
        self.sniffing = False
        self._head = b""
        if kind is not None:
            self.use_envelope(kind)

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
        if self.sniffing:
            self._sniff(before[: before.find(b"\n") + 1] or before)
        stamp: Callable[[str], int | None] = self.decoding.codec.stamp
        if self.envelope is not None:
            stamp = _envelope_stamp(self.envelope.kind)
        texts = split_region(before.removesuffix(b"\n"), self.decoding.config.max_line_bytes).text
        for text in reversed(texts[-lines:]):
            ts = stamp(text) if text else None
            if ts is not None:
                self.last_ts = ts
                return

    async def decode(self, data: bytes) -> Batch:
        """``feed``, with the lines of a large read parsed in a worker process if there are
        workers (see ``aggregator.parse.pool``)."""
        if self.sniffing:
            self._sniff(data)
        decoding = self.decoding
        pool = decoding.pool
        judging = decoding.judging
        if (
            pool is None
            or pool.broken
            or len(data) < POOL_MIN_BYTES
            or self.joiner is not None
            or self.message_joiner is not None
            or self.sniffing
            # A worker's JSON has no room for a plain lane's fields (a container's: see below).
            or (self.extra and self.envelope is None and decoding.needs_now == "json")
            or not isinstance(self.splitter, LineSplitter)
            # While wheres are judged, a container's lines are read here, whole (the worker
            # judges plain lanes only).
            or (self.envelope is not None and judging)
        ):
            return self._feed(data)
        if self.envelope is not None:
            return await self._decode_envelope(data, pool)
        read_at = now_micros()
        head, region = self.splitter.take(data)
        batch, self.last_ts = decoding.records(self.origin, head, read_at, self.last_ts)
        if region is not None:
            limit = decoding.config.max_line_bytes
            spec = decoding.region_spec(judging, bool(self.extra))
            parsed = await pool.parse(spec, region, limit, self.origin)
            # The lane's time is read only now, once the region is back: a lane's reads are
            # decoded one after the other, so nothing else has moved it meanwhile.
            rest, self.last_ts = decoding.parsed_records(
                self.origin, parsed, read_at, self.last_ts, spec
            )
            decoding.add_fields(rest, self.extra, spec.needs)
            batch += rest
        return batch

    async def _decode_envelope(self, data: bytes, pool: ParsePool) -> Batch:
        """A container's large read: unwrapped, its partial lines joined and its messages
        read in a worker, which goes on from the partial lines the lane held and gives back
        those it holds after the region."""
        assert self.envelope is not None and self.envelope_spec is not None
        assert isinstance(self.splitter, LineSplitter)
        read_at = now_micros()
        head, region = self.splitter.take(data)
        batch = self._messages(self.envelope.feed(head))
        if region is not None:
            limit = self.decoding.config.max_line_bytes
            request = EnvelopeRegion(region, self.envelope.carry, limit)
            parsed = await pool.parse(self.envelope_spec, request, self.limit)
            assert parsed.carry is not None
            self.envelope.restore(parsed.carry)
            rest, self.last_ts = self.decoding.parsed_records(
                self.origin, parsed, read_at, self.last_ts, self.envelope_spec
            )
            batch += rest
        return batch

    def feed(self, data: bytes) -> Batch:
        if self.sniffing:
            self._sniff(data)
        return self._feed(data)

    def _feed(self, data: bytes) -> Batch:
        lines = self.splitter.feed(data)
        if self.envelope is not None:
            return self._messages(self.envelope.feed(lines))
        if self.joiner is not None:
            lines = self.joiner.feed(lines, time.monotonic())
        return self._records(lines)

    def _records(self, lines: Lines) -> Batch:
        batch, self.last_ts = self.decoding.records(self.origin, lines, None, self.last_ts)
        self.decoding.add_fields(batch, self.extra)
        return batch

    def _messages(self, messages: Messages) -> Batch:
        assert self.envelope_codec is not None
        if self.message_joiner is not None:
            messages = self.message_joiner.feed(messages, time.monotonic())
        return self._joined(messages)

    def _joined(self, messages: Messages) -> Batch:
        assert self.envelope_codec is not None
        batch, self.last_ts = self.decoding.message_records(
            self.origin, self.envelope_codec, messages, self.last_ts
        )
        return batch

    def expire(self) -> Batch:
        """The held multiline record, if it has waited its timeout."""
        if self.message_joiner is not None:
            return self._joined(self.message_joiner.expire(time.monotonic()))
        if self.joiner is None:
            return []
        return self._records(self.joiner.expire(time.monotonic()))

    def flush(self) -> Batch:
        """Everything held, at the end of the input (or of a file rotated away)."""
        if self.sniffing and self._head:  # a first line without its newline
            self._sniff(b"\n")
        lines = self.splitter.flush()
        if self.envelope is not None:
            messages = self.envelope.feed(lines)
            messages.extend(self.envelope.flush())
            if self.message_joiner is not None:
                messages = self.message_joiner.feed(messages, time.monotonic())
                messages.extend(self.message_joiner.flush())
            return self._joined(messages)
        if self.joiner is not None:
            joined = self.joiner.feed(lines, time.monotonic())
            tail = self.joiner.flush()
            joined.truncated += [len(joined.text) + index for index in tail.truncated]
            joined.text += tail.text
            lines = joined
        return self._records(lines)


def _envelope_stamp(kind: str) -> Callable[[str], int | None]:
    """The runtime's time of an envelope line (what ``prime`` looks for)."""
    unwrap = unwrap_cri if kind == "cri" else unwrap_docker

    def stamp(line: str) -> int | None:
        unwrapped = unwrap(line)
        return unwrapped[0] if unwrapped is not None else None

    return stamp
