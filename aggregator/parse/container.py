"""Pure container-runtime envelopes: Kubernetes' log files in, the programs' own lines out.

Two formats wrap each line a container writes (SPEC §3 "Kubernetes"):

- ``cri`` (containerd, CRI-O): ``TIME STREAM TAG MESSAGE``, TIME in RFC 3339 with nanoseconds,
  STREAM ``stdout`` or ``stderr``, TAG ``F`` (full) or ``P`` (partial: the runtime split a long
  line, the rest follows), perhaps with more ``:``-separated tags after it.
- ``docker`` (json-file): ``{"log": "MESSAGE\\n", "stream": "stdout", "time": TIME}``; a ``log``
  without its final newline is a partial (dockerd splits lines at 16 KiB).

An ``EnvelopeReader`` holds one lane's partial lines, per stream (a runtime may interleave
stdout's pieces with a line of stderr), and gives each line whole once its last piece comes:
its time is its first piece's, its text bounded by ``max_bytes`` (cut and flagged truncated).
A line that is not in the envelope is kept as it is, with the reason in its error. What it
holds can be handed to a parse worker with a region and taken back after it (``carry``,
``EnvelopeRegion``): a large read is unwrapped, joined and read in the worker, as a plain
file's region is parsed there, and a partial line may span regions.
"""

from typing import Any, Final, NamedTuple

from aggregator.lazyjson import loads
from aggregator.parse.codecs import NOTHING, Codec, Columns, Parsed
from aggregator.parse.lines import Lines, cut_utf8
from aggregator.parse.timestamps import _second_epochs, parse_iso
from aggregator.record.formats import json_tail

CONTAINER_CODECS: Final = ("cri", "docker")
STDOUT: Final = "stdout"
STDERR: Final = "stderr"

Unwrapped = tuple[int, str, bool, str]
"""One envelope line: (runtime time in µs, stream, partial, message)."""


def runtime_time(text: str) -> int | None:
    """A runtime's RFC 3339 time, nanoseconds cut to microseconds; None if it is not one.

    The commonest form (``...:SS.fffffffffZ``, a second seen before) costs a dict lookup."""
    if len(text) == 30 and text[19] == "." and text[29] == "Z":
        seconds = _second_epochs.get(text[:19])
        fraction = text[20:26]
        if seconds is not None and fraction.isascii() and fraction.isdecimal():
            return seconds * 1_000_000 + int(fraction)
    parsed = parse_iso(text)
    if parsed is None or parsed[1] != len(text):
        return None
    return parsed[0]


class LastSecond:
    """The second of the last CRI line read (most often the next line's too) and its epoch in
    µs: a line of that second is read without slicing and looking its second up again, nor
    multiplying it (compiled, a product over 2**31 takes the slow path: Python's own ints)."""

    __slots__ = ("micros", "text")

    def __init__(self) -> None:
        self.text = ""
        self.micros = 0


def common_cri_time(line: str, last: LastSecond) -> int:
    """The runtime's time (µs) of a line that begins as the commonest CRI line does (a UTC time
    with nine digits of fraction, a second since 1970 seen before, then a space); else -1, and
    the full path reads it. The digits are read one by one: no slice, no ``int()``."""
    if (
        len(line) < 31
        or line[29] != "Z"
        or line[19] != "."
        or line[30] != " "
        or line[10] != "T"  # a second cached from a time "YYYY-MM-DD HH:MM:SS" is not CRI's
    ):
        return -1
    if not last.text or not line.startswith(last.text):
        second = line[:19]
        epoch = _second_epochs.get(second, -1)
        if epoch < 0:
            return -1
        last.text, last.micros = second, epoch * 1_000_000
    micros = 0
    for index in range(20, 29):
        digit = ord(line[index]) - 48
        if digit < 0 or digit > 9:  # what isascii() and isdecimal() leave out
            return -1
        if index < 26:  # nanoseconds cut to microseconds
            micros = micros * 10 + digit
    return last.micros + micros


_HEADS: Final[dict[str, tuple[str, bool]]] = {
    " stdout F ": (STDOUT, False),
    " stderr F ": (STDERR, False),
    " stdout P ": (STDOUT, True),
    " stderr P ": (STDERR, True),
}
"""The commonest heads after a time that ``common_cri_time`` read: (stream, partial)."""


def common_cri_head(line: str) -> tuple[str, bool] | None:
    """(stream, partial) of a line whose time ``common_cri_time`` read, if its tag is a bare
    ``F`` or ``P`` followed by a space; else None (the full path reads it)."""
    return _HEADS.get(line[30:40])


def unwrap_cri(line: str, last: LastSecond | None = None) -> Unwrapped | None:
    """``TIME STREAM TAG MESSAGE``, or None if ``line`` is not one.

    The commonest line (``common_cri_time``, ``common_cri_head``) is read at fixed places,
    without a search; ``last``: the second of a line read before, if any."""
    micros = common_cri_time(line, last if last is not None else LastSecond())
    head = common_cri_head(line) if micros >= 0 else None
    if head is not None:
        return micros, head[0], head[1], line[40:]
    return unwrap_cri_searched(line)


def unwrap_cri_searched(line: str) -> Unwrapped | None:
    """``unwrap_cri`` for a line not in the commonest form: its parts found by a search."""
    time_end = line.find(" ")
    stream_end = line.find(" ", time_end + 1, time_end + 9) if time_end > 0 else -1
    if stream_end < 0:
        return None
    tag_end = line.find(" ", stream_end + 1)
    if tag_end < 0:  # an empty message, its space left out
        tag_end = len(line)
    tag = line[stream_end + 1 : tag_end]
    first = tag[:1]
    if (first != "F" and first != "P") or (len(tag) > 1 and tag[1] != ":"):
        return None
    stream = line[time_end + 1 : stream_end]
    if stream != "stdout" and stream != "stderr":
        return None  # a lane holds a partial line per stream: two at most
    ts = runtime_time(line[:time_end])
    if ts is None:
        return None
    return ts, stream, first == "P", line[tag_end + 1 :]


def unwrap_docker(line: str) -> Unwrapped | None:
    """A json-file line, or None if ``line`` is not one."""
    if line[:1] != "{":
        return None
    try:
        value = loads(line)
    except ValueError:  # orjson's JSONDecodeError
        return None
    if not isinstance(value, dict):
        return None
    log = value.get("log")
    stamp = value.get("time")
    stream = value.get("stream")
    if not isinstance(log, str) or not isinstance(stamp, str):
        return None
    ts = runtime_time(stamp)
    if ts is None:
        return None
    partial = not log.endswith("\n")
    message = log if partial else log[:-1]
    if stream != "stdout" and stream != "stderr":
        return None  # a lane holds a partial line per stream: two at most
    return ts, stream, partial, message


def looks_like(line: str) -> str | None:
    """Which envelope ``line`` is in ("cri" or "docker"), if any: how ``auto`` tells a
    container's log file from the first line of it."""
    if unwrap_cri(line) is not None:
        return "cri"
    if line.startswith('{"') and unwrap_docker(line) is not None:
        return "docker"
    return None


class EnvelopeCodec:
    """How a container's messages are read: each by ``inner``, at the runtime's time, with its
    stream and the lane's ``fields`` (``read``). As a ``Codec``, one envelope line at a time
    (a partial line says only its time: its message is read once it is whole)."""

    def __init__(self, kind: str, inner: Codec, fields: dict[str, Any]) -> None:
        self.unwrap = unwrap_cri if kind == "cri" else unwrap_docker
        self.inner = inner
        self.fields = fields
        self.error = f"not a {'CRI' if kind == 'cri' else 'docker json-file'} log line"

    def parse(self, line: str) -> Parsed:
        unwrapped = self.unwrap(line)
        if unwrapped is None:
            return None, None, None, self.error
        ts, stream, partial, message = unwrapped
        if partial:
            return ts, None, None, None
        _, level, found, error = self.inner.parse(message) if message else NOTHING
        fields = found or {}
        fields["stream"] = stream
        fields.update(self.fields)
        return ts, level, fields, error

    def stamp(self, line: str) -> int | None:
        unwrapped = self.unwrap(line)
        return unwrapped[0] if unwrapped is not None else None

    def read(self, messages: "Messages", stamps_only: bool = False) -> Columns:
        """What ``messages`` say, as ``parse_lines``' columns: the runtime's time (a line not
        in the envelope: its own, if the inner codec finds one), and unless ``stamps_only``
        the inner codec's level and fields, with the stream and the lane's fields added (its
        time does not count), and the envelope's error or the inner codec's."""
        texts, own = messages.texts, messages.stamps
        inner = self.inner
        if stamps_only:
            stamps = own
            if None in own:
                stamps = [
                    ts if ts is not None else (inner.stamp(text) if text else None)
                    for ts, text in zip(own, texts, strict=True)
                ]
            nothing: list[None] = [None] * len(texts)
            return stamps, nothing, nothing, nothing
        parse = inner.parse
        streams, envelope_errors = messages.streams, messages.errors
        stamps = list(own)
        levels: list[str | None] = []
        fields: list[dict[str, Any] | None] = []
        errors: list[str | None] = []
        for index, text in enumerate(texts):
            ts, level, found, error = parse(text) if text else NOTHING
            if stamps[index] is None:
                stamps[index] = ts
            levels.append(level)
            fields.append(self._fields_of(found, streams[index]))
            errors.append(envelope_errors[index] or error)
        return stamps, levels, fields, errors

    def json_columns(self, messages: "Messages") -> tuple[list[int | None], list[str]]:
        """``read``'s columns as a parse worker sends them for JSON output: the times, and
        each record's ``json_tail``. A message whose inner codec found no fields (nor an
        error, nor was it cut) holds only its stream's and the lane's fields: its tail is
        made once per level and stream, not once per record."""
        texts, stamps = messages.texts, list(messages.stamps)
        parse = self.inner.parse
        streams, envelope_errors = messages.streams, messages.errors
        cut = [False] * len(texts)
        for index in messages.truncated:
            cut[index] = True
        tails: list[str] = []
        made: dict[str | None, dict[str | None, str]] = {}  # stream: {level: tail}
        for index, text in enumerate(texts):
            ts, level, found, error = parse(text) if text else NOTHING
            if stamps[index] is None:
                stamps[index] = ts
            error = envelope_errors[index] or error
            stream = streams[index]
            if found is None and error is None and not cut[index]:
                of_stream = made.get(stream)
                if of_stream is None:
                    of_stream = made[stream] = {}
                tail = of_stream.get(level)
                if tail is None:
                    tail = json_tail(level, self._fields_of(None, stream), False, None)
                    of_stream[level] = tail
                tails.append(tail)
            else:
                tails.append(json_tail(level, self._fields_of(found, stream), cut[index], error))
        return stamps, tails

    def _fields_of(self, found: dict[str, Any] | None, stream: str | None) -> dict[str, Any] | None:
        """A message's fields: what the inner codec ``found``, its stream and the lane's."""
        if stream is not None:
            found = found or {}
            found["stream"] = stream
        if self.fields:
            found = found or {}
            found.update(self.fields)
        return found or None


class Messages:
    """What an ``EnvelopeReader`` gave, as columns: the messages, their runtime times (None
    for a line not in the envelope), streams, errors, and which were truncated."""

    __slots__ = ("errors", "stamps", "streams", "texts", "truncated")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.stamps: list[int | None] = []
        self.streams: list[str | None] = []
        self.errors: list[str | None] = []
        self.truncated: list[int] = []

    def add(
        self, text: str, ts: int | None, stream: str | None, error: str | None, truncated: bool
    ) -> None:
        if truncated:
            self.truncated.append(len(self.texts))
        self.texts.append(text)
        self.stamps.append(ts)
        self.streams.append(stream)
        self.errors.append(error)

    def extend(self, other: "Messages") -> None:
        offset = len(self.texts)
        self.truncated += [offset + index for index in other.truncated]
        self.texts += other.texts
        self.stamps += other.stamps
        self.streams += other.streams
        self.errors += other.errors


Carry = tuple[tuple[str, int, str, int, bool], ...]
"""A lane's partial lines, as a worker is sent them and sends them back: per stream, (stream,
time, text so far, its bytes, truncated)."""


class EnvelopeRegion(NamedTuple):
    """A region of a container's log file (whole lines) for a parse worker, with the partial
    lines its lane held before it and the bound of a joined line: the worker gives back the
    region's messages and the partial lines held after it (``ParsedRegion.carry``)."""

    data: bytes
    carry: Carry
    max_bytes: int


class _Partial:
    """The pieces of one stream's line so far, within the byte limit."""

    __slots__ = ("pieces", "size", "truncated", "ts")

    def __init__(self, ts: int) -> None:
        self.ts = ts
        self.pieces: list[str] = []
        self.size = 0
        self.truncated = False


class EnvelopeReader:
    """One lane's envelope lines → messages, partial lines joined (see the module)."""

    def __init__(self, kind: str, max_bytes: int) -> None:
        if kind not in CONTAINER_CODECS:
            raise ValueError(f"not a container log format: {kind!r}")
        self.kind = kind
        self.max_bytes = max_bytes
        self._cri = kind == "cri"
        self._error = f"not a {'CRI' if self._cri else 'docker json-file'} log line"
        self._partials: dict[str, _Partial] = {}

    @property
    def holds_partial(self) -> bool:
        """Whether a partial line waits for its rest (a restart must read it again)."""
        return bool(self._partials)

    @property
    def pending_bytes(self) -> int:
        """Bytes of partial lines held (at most ``max_bytes`` a stream)."""
        return sum(partial.size for partial in self._partials.values())

    @property
    def carry(self) -> Carry:
        """The partial lines held, for a parse worker to go on from (``EnvelopeRegion``)."""
        return tuple(
            (stream, held.ts, "".join(held.pieces), held.size, held.truncated)
            for stream, held in self._partials.items()
        )

    def restore(self, carry: Carry) -> None:
        """Hold the partial lines a parse worker held after the region it read."""
        self._partials = {}
        for stream, ts, text, size, truncated in carry:
            held = self._partials[stream] = _Partial(ts)
            held.pieces.append(text)
            held.size = size
            held.truncated = truncated

    def feed(self, lines: Lines) -> Messages:
        """The messages that ``lines`` complete; partial lines are held for their rest."""
        out = Messages()
        texts, stamps, streams, errors = out.texts, out.stamps, out.streams, out.errors
        cri = self._cri
        cut = set(lines.truncated) if lines.truncated else None
        partials = self._partials
        last = LastSecond()
        for index, line in enumerate(lines.text):
            truncated = cut is not None and index in cut
            # The commonest CRI line read here, in place (no tuple), a piece of a partial too.
            ts = common_cri_time(line, last) if cri else -1
            head = common_cri_head(line) if ts >= 0 else None
            if head is not None:
                stream, partial = head
                message = line[40:]
            else:
                # Called by name, not through a variable: compiled, that is a native call.
                unwrapped = unwrap_cri_searched(line) if cri else unwrap_docker(line)
                if unwrapped is None:
                    out.add(line, None, None, self._error, truncated)
                    continue
                ts, stream, partial, message = unwrapped
            if not partial and not partials:  # the commonest line: whole, nothing held
                if truncated:
                    out.truncated.append(len(texts))
                texts.append(message)
                stamps.append(ts)
                streams.append(stream)
                errors.append(None)
                continue
            held = partials.get(stream)
            if held is None and not partial:
                out.add(message, ts, stream, None, truncated)
                continue
            if held is None:
                held = partials[stream] = _Partial(ts)
            self._hold(held, message, truncated)
            if not partial:
                del partials[stream]
                self._give(out, held, stream)
        return out

    def flush(self) -> Messages:
        """Every partial line held, as it is (the end of the input, or of a rotated file)."""
        out = Messages()
        for stream, held in self._partials.items():
            self._give(out, held, stream)
        self._partials.clear()
        return out

    def _hold(self, held: _Partial, message: str, truncated: bool) -> None:
        held.truncated = held.truncated or truncated
        if held.size >= self.max_bytes:
            held.truncated = held.truncated or bool(message)
            return
        size = len(message) if message.isascii() else len(message.encode())
        if held.size + size > self.max_bytes:
            room = self.max_bytes - held.size
            message = cut_utf8(message.encode(), room).decode("utf-8", "replace")
            held.truncated = True
            size = room
        held.pieces.append(message)
        held.size += size

    @staticmethod
    def _give(out: Messages, held: _Partial, stream: str) -> None:
        out.add("".join(held.pieces), held.ts, stream, None, held.truncated)
