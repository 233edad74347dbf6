"""What a parse worker runs: split a region of whole lines, parse each line, say what it found.

A worker is a Python process running ``serve``: it reads requests on its stdin and answers on
its stdout, in order, one length-prefixed pickle each way (a request is ``(CodecSpec, region,
max_line_bytes, origin)``; a reply is ``R`` and an ``Answer``, or ``E`` and why). The event loop's
side is ``aggregator.parse.pool``. This module imports no asyncio, config or websockets, so a
worker starts about as fast as the interpreter does.
"""

import contextlib
import fcntl
import gc
import marshal
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from aggregator.fdio import read_exact, write_all
from aggregator.lazyjson import loads
from aggregator.parse.codecs import (
    LEVEL_KEYS,
    NOTHING,
    AutoCodec,
    Codec,
    Columns,
    FieldPicker,
    JsonCodec,
    LevelNames,
    level_in,
    logfmt_like,
    make_codec,
    names_of_levels,
    parse_lines,
)
from aggregator.parse.container import Carry, EnvelopeCodec, EnvelopeReader, EnvelopeRegion
from aggregator.parse.lines import split_region
from aggregator.parse.needs import Needs
from aggregator.record.formats import json_tail
from aggregator.record.verdicts import RowJudge, Rows, judge, reads_of, row_judge


class CodecSpec(NamedTuple):
    """How to parse: what ``make_codec`` takes, and what is needed. Picklable, and a worker
    builds each codec once."""

    codec: str
    timestamp_field: str | None
    timestamp_format: str
    pattern: str | None
    needs: Needs = "everything"
    envelope: str | None = None
    """"cri" or "docker": each line is a container runtime's, ``codec`` reads its message."""
    fields: tuple[tuple[str, Any], ...] = ()
    """With ``envelope``: the lane's fixed fields, added to each message's."""
    source: str = ""
    """The source the lines are from (what a ``where`` reads as ``source``)."""
    wheres: tuple[str, ...] = ()
    """The sinks' ``where``s to judge on each line (``aggregator.record.verdicts``)."""

    def make_codec(self) -> Codec:
        codec = make_codec(self.codec, self.timestamp_field, self.timestamp_format, self.pattern)
        if self.envelope is not None:
            return EnvelopeCodec(self.envelope, codec, dict(self.fields))
        return codec


PIPE_BYTES = 1 << 20
"""Pipe buffers are raised to this (Linux allows 1 MiB unprivileged), so that the loop writes
several requests (256 KiB reads) while the worker is busy, and the worker all its answers."""
HEADER_BYTES = 5  # 4 bytes of length, then b"R" (a result) or b"E" (an error message)


class ParsedRegion(NamedTuple):
    """A region's lines, the indexes of those truncated, what the codec said of each line
    (as columns: they pickle in a third of the time rows take) and, if needed, each line's
    JSON after its line (``json_tail``; then the columns hold only the times), and its verdicts
    on the spec's ``wheres`` (``aggregator.record.verdicts.judge``)."""

    texts: list[str]
    truncated: list[int]
    columns: Columns
    json_tails: list[str] | None = None
    verdicts: bytes | None = None
    carry: Carry | None = None
    """A container's region (``EnvelopeRegion``): its lane's partial lines after it; the
    lines are then the messages, read by the inner codec."""


Answer = tuple[Columns, list[str] | None, bytes | None] | bytes | ParsedRegion
"""What a worker sends back for a region: a ``ParsedRegion`` without the lines. The main
process splits the region it sent again (``with_lines``: the same function, the same lines),
which costs it about what unpickling them did, and spares the worker pickling them and the
pipe carrying them (an answer is a fraction of the region's size). A container's region
(its messages are not its lines): the whole ``ParsedRegion`` in ``marshal``'s bytes, which
a worker writes for a list of strings much faster than pickle, which memoizes each string
(pickled as it is if a field holds what marshal cannot write; no codec makes a bytearray or
a memoryview, which marshal would write as bytes)."""


def answer_of(parsed: ParsedRegion) -> Answer:
    """What a worker sends back of ``parsed``."""
    if parsed.carry is not None:  # a container's messages are not its region's lines
        whole: tuple[Any, ...] = tuple(parsed)
        try:
            return marshal.dumps(whole)
        except ValueError:
            return parsed
    return parsed.columns, parsed.json_tails, parsed.verdicts


def with_lines(answer: Answer, region: bytes | EnvelopeRegion, limit: int) -> ParsedRegion:
    """The ``ParsedRegion`` a worker's ``answer`` for ``region`` stands for."""
    if isinstance(answer, bytes):  # a container's: objects shared stay shared (``_build``)
        return ParsedRegion(*marshal.loads(answer))
    if isinstance(answer, ParsedRegion):
        return answer
    lines = split_region(region if isinstance(region, bytes) else region.data, limit)
    return ParsedRegion(lines.text, lines.truncated, *answer)


@lru_cache(maxsize=64)
def _codec(spec: CodecSpec) -> Codec:
    """A worker builds each codec once."""
    return spec.make_codec()


def parse_region(
    spec: CodecSpec, region: bytes | EnvelopeRegion, limit: int, origin: str = ""
) -> ParsedRegion:
    """Split ``region`` (whole lines of the lane ``origin``) and parse each line; a
    container's: unwrap each line, join the partial ones, and read each message."""
    codec, needs, wheres, carry = _codec(spec), spec.needs, spec.wheres, None
    stamps_only = needs == "stamps" and not wheres
    if isinstance(region, EnvelopeRegion):
        assert isinstance(codec, EnvelopeCodec) and spec.envelope is not None
        reader = EnvelopeReader(spec.envelope, region.max_bytes)
        reader.restore(region.carry)
        messages = reader.feed(split_region(region.data, limit))
        texts, truncated, carry = messages.texts, messages.truncated, reader.carry
        if needs == "json" and not wheres:
            times, tails = codec.json_columns(messages)
            blank: list[None] = [None] * len(texts)
            return ParsedRegion(texts, truncated, (times, blank, blank, blank), tails, None, carry)
        columns = codec.read(messages, stamps_only=stamps_only)
    else:
        split = split_region(region, limit)
        texts, truncated = split.text, split.truncated
        if needs == "json":  # each line parsed, made JSON and judged at once
            judge_row = row_judge(wheres, spec.source, origin) if wheres else None
            times, tails, found = stamps_and_tails(codec, texts, truncated, judge_row)
            nothing = [None] * len(texts)
            return ParsedRegion(texts, truncated, (times, nothing, nothing, nothing), tails, found)
        if wheres and needs == "stamps":  # only what the wheres read, judged at once
            judged = judged_stamps(codec, texts, wheres, spec.source, origin)
            if judged is not None:
                times, found = judged
                blank = [None] * len(texts)  # one list: ``_build``'s stamps-only test
                return ParsedRegion(texts, truncated, (times, blank, blank, blank), None, found)
        columns = parse_lines(codec, texts, stamps_only=stamps_only)
    verdicts = None
    if wheres:
        stamps, levels, fields, errors = columns
        verdicts = judge(wheres, Rows(spec.source, origin, texts, levels, fields))
        if needs == "stamps":
            nothing = [None] * len(texts)  # one list: ``_build``'s stamps-only test
            columns = (stamps, nothing, nothing, nothing)
    if needs != "json":
        return ParsedRegion(texts, truncated, columns, None, verdicts, carry)
    stamps, levels, fields, errors = columns
    tails = list(map(json_tail, levels, fields, cut_lines(texts, truncated), errors))
    nothing = [None] * len(texts)
    return ParsedRegion(
        texts, truncated, (stamps, nothing, nothing, nothing), tails, verdicts, carry
    )


def cut_lines(texts: Sequence[str], truncated: Sequence[int]) -> list[bool]:
    """Whether each of ``texts`` was truncated, from the indexes of those that were."""
    cut = [False] * len(texts)
    for index in truncated:
        cut[index] = True
    return cut


def stamps_and_tails(
    codec: Codec, texts: Sequence[str], truncated: Sequence[int], judge_row: RowJudge | None = None
) -> tuple[list[int | None], list[str], bytes | None]:
    """Each line's time and ``json_tail``, and with ``judge_row`` its verdicts: what
    ``parse_lines``' columns give through ``json_tail`` and ``judge``, made a line at a time,
    without a tuple a line nor the columns built from them (an ``auto`` codec's ``parse`` is
    called natively, its answer never boxed); each line judged as it is parsed
    (``RowJudge.of_parsed``: by its level alone if its fields hold no key a ``where`` reads)."""
    auto = codec if isinstance(codec, AutoCodec) else None
    cut = cut_lines(texts, truncated)
    stamps: list[int | None] = []
    tails: list[str] = []
    verdicts: list[int] = []
    for index in range(len(texts)):
        text = texts[index]
        if not text:
            ts, level, fields, error = NOTHING
        elif auto is not None:
            ts, level, fields, error = auto.parse(text)
        else:
            ts, level, fields, error = codec.parse(text)
        stamps.append(ts)
        tails.append(json_tail(level, fields, cut[index], error))
        if judge_row is not None:
            verdicts.append(judge_row.of_parsed(level, fields, text))
    return stamps, tails, bytes(verdicts) if judge_row is not None else None


class ShortWay(NamedTuple):
    """What ``judged_stamps`` looks for in a line, from what its ``where``s read."""

    telling: LevelNames | None
    """What names a level the ``where``s tell apart (None: no level is needed)."""
    keys: tuple[str, ...]
    """The keys a ``where`` may read at the top of a line's fields (``Reads.keys``)."""
    marks: tuple[str, ...]
    """A logfmt line (its keys stand in it as they are) holds one of these if it has one of
    ``keys``: the keys that no other of them begins (a key's text holds those it begins
    with)."""


@lru_cache(maxsize=64)
def short_way(wheres: tuple[str, ...]) -> ShortWay:
    """What ``judged_stamps`` looks for in a line, for ``wheres``."""
    reads = reads_of(wheres)
    keys = reads.keys
    shortest = sorted(key for key in keys if not any(key.startswith(k) for k in keys - {key}))
    telling = names_of_levels(reads.levels) if reads.levels else None
    return ShortWay(telling, tuple(sorted(keys)), tuple(shortest))


def judged_stamps(
    codec: Codec, texts: Sequence[str], wheres: tuple[str, ...], source: str, origin: str
) -> tuple[list[int | None], bytes] | None:
    """The times of ``texts`` (lines of the lane ``source``, ``origin``) and their verdicts on
    ``wheres``, for an output that needs only the times: each line read no more than the
    ``where``s read and judged at once (``verdicts.RowJudge``), with less work than
    ``parse_lines`` and ``judge`` over its columns, and the same verdicts:

    - a JSON line is judged on the object its time was read from (its time and level keys
      left in: no ``where`` reads those keys, else every line is parsed whole), or by its
      level alone when it has no key a ``where`` reads;
    - a line ``auto`` reads as logfmt: by its level alone if it cannot hold such a key, else
      parsed whole;
    - a line ``auto`` reads as text: by its level alone, looked for only if a ``where``
      tells levels apart, and then only those levels (a level that is none of them is
      given as no level: ``verdicts.telling_levels``).

    Any other line, or a JSON one without a time it can read, is parsed whole. None where
    the short ways do not apply (not JSON's or ``auto``'s codec, or a ``where`` reads a time
    or level key): then every line is parsed whole, and judged over the columns."""
    reads = reads_of(wheres)
    picker: FieldPicker | None = None
    if isinstance(codec, AutoCodec):
        picker = codec.json.picker
    elif isinstance(codec, JsonCodec):
        picker = codec.picker
    if (
        picker is None
        or not reads.keys.isdisjoint((*picker.ts_keys, *LEVEL_KEYS))
        or any(key in LEVEL_KEYS for key in picker.ts_keys)  # a time key that names a level
    ):
        return None
    auto = codec if isinstance(codec, AutoCodec) else None
    telling, keys, marks = short_way(wheres)
    judge_row = row_judge(wheres, source, origin)
    stamps: list[int | None] = []
    verdicts: list[int] = []
    for text in texts:
        first = text[:1]
        if first == "{":
            value = _json_object(text)
            ts = picker.stamp(value) if value is not None else None
            if value is not None and ts is not None:
                stamps.append(ts)
                level = level_in(value) if telling is not None else None
                if any(key in value for key in keys):
                    verdicts.append(judge_row.verdicts(level, value, text))
                else:
                    verdicts.append(judge_row.without_fields(level, text))
                continue
        elif auto is not None and first and not (first == "<" and text[1:2].isdigit()):
            if "0" <= first <= "9" or not logfmt_like(text):  # ``auto`` reads it as text
                if telling is None:
                    ts, level = auto.text.stamp(text), None
                else:
                    ts, level = auto.text.stamp_and_telling_level(text, telling)
                stamps.append(ts)
                verdicts.append(judge_row.without_fields(level, text))
                continue
            if not any(mark in text for mark in marks):
                ts, level = auto.logfmt.stamp_and_level(text)
                stamps.append(ts)
                verdicts.append(judge_row.without_fields(level if telling else None, text))
                continue
        ts, level, extra, _ = codec.parse(text) if text else NOTHING
        stamps.append(ts)
        verdicts.append(judge_row.verdicts(level, extra, text))
    return stamps, bytes(verdicts)


def _json_object(line: str) -> dict[str, Any] | None:
    """The object a JSON line holds, or None if it holds none."""
    try:
        value = loads(line)
    except ValueError:  # orjson's JSONDecodeError
        return None
    return value if isinstance(value, dict) else None


def _widen_pipe(fd: int) -> None:
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or a lower limit
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _frame(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload


def serve(requests: int, replies: int) -> None:
    """A worker's life: parse each request from the ``requests`` pipe, answer on ``replies``,
    until the main process closes the pipe.

    Parsing makes no reference cycles, and the collector's passes over the new objects cost
    a fifth of the time: it is off, as in the main process.
    """
    import pickle  # only a worker needs it, not the main process that imports this module

    gc.disable()
    _widen_pipe(requests)
    _widen_pipe(replies)
    while (header := read_exact(requests, 4)) is not None:
        request = read_exact(requests, int.from_bytes(header, "big"))
        if request is None:
            return
        spec, region, limit, origin = pickle.loads(request)
        try:
            answer = answer_of(parse_region(spec, region, limit, origin))
            reply = _frame(b"R", pickle.dumps(answer, protocol=5))
        except Exception as error:  # a bug: say it, and go on with the next region
            reply = _frame(b"E", repr(error).encode())
        write_all(replies, reply)
