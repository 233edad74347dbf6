"""Pure encoders from a batch of records to the bytes a sink writes: text, json (NDJSON), raw."""

import os
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final, Literal

from aggregator.lazyjson import dumps
from aggregator.record.levels import LEVELS
from aggregator.record.record import Record

FormatName = Literal["text", "json", "raw"]
Encoder = Callable[[Sequence[Record]], bytes]


@lru_cache(maxsize=4096)
def _second_prefix(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a second within the calendar (``in_calendar``), its year in
    four digits (``strftime``'s ``%Y`` has fewer below the year 1000)."""
    t = time.gmtime(second)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )


_YEAR_1: Final = -62_135_596_800
_YEAR_10000: Final = 253_402_300_800


def in_calendar(second: int) -> bool:
    """Whether RFC 3339 can show ``second`` (the years 1 to 9999). A time beyond (a hostile
    line's or peer's ``ts``) is shown as its number of µs: there is no date to show."""
    return _YEAR_1 <= second < _YEAR_10000


def rfc3339_micros(ts: int) -> str:
    """``ts`` (microseconds since the epoch) as RFC 3339 UTC with microseconds; beyond the
    calendar, the number itself."""
    second, micros = divmod(ts, 1_000_000)
    if not in_calendar(second):
        return str(ts)
    return f"{_second_prefix(second)}.{micros:06d}Z"


def rfc3339_millis(ts: int) -> str:
    """``ts`` as RFC 3339 UTC with milliseconds, as the text format shows it; beyond the
    calendar, the number itself."""
    second, micros = divmod(ts, 1_000_000)
    if not in_calendar(second):
        return str(ts)
    return f"{_second_prefix(second)}.{micros // 1000:03d}Z"


# Control characters (C0 but tab, DEL, C1) would let a log line drive the terminal: an ANSI
# escape could recolour, move the cursor or retitle the window. Show them as \xNN instead.
_CONTROL = [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)]
_ESCAPES = {code: f"\\x{code:02x}" for code in _CONTROL}
_CONTROL_CHARS = frozenset(chr(code) for code in _CONTROL)


def escape_control(line: str) -> str:
    """``line`` with control characters (ANSI escapes included) shown as ``\\xNN``."""
    if _CONTROL_CHARS.isdisjoint(line):
        return line
    return line.translate(_ESCAPES)


_json_strings: dict[str, str] = {}


def _json_string(text: str) -> str:
    """``text`` as a JSON string, cached: sources and origins repeat on every record."""
    encoded = _json_strings.get(text)
    if encoded is None:
        if len(_json_strings) > 10_000:
            _json_strings.clear()
        encoded = _json_strings[text] = dumps(text).decode()
    return encoded


_LEVEL_KEYS: dict[str, str] = {level: f',"level":"{level}"' for level in LEVELS}


def json_tail(
    level: str | None, fields: dict[str, Any] | None, truncated: bool, parse_error: str | None
) -> str:
    """The members of a record's JSON object after ``"line"`` that reading and parsing
    decide (``"level"`` to ``"parse_error"``): what a parse worker can make
    (``Record.json_tail``)."""
    text = ""
    if level is not None:
        text = _LEVEL_KEYS.get(level) or f',"level":{_json_string(level)}'
    if fields is not None:  # one string built, not two concatenations
        text = f'{text},"fields":{dumps(fields).decode()}'
    if truncated:
        text += ',"truncated":true'
    if parse_error is not None:
        text += ',"parse_error":' + dumps(parse_error).decode()
    return text


def encode_json(batch: Sequence[Record]) -> bytes:
    """One JSON object per line (NDJSON), the object of SPEC §4.

    Written out by hand around orjson's string escaping: building a dict per record for
    orjson cost three times as much. What repeats is formatted once: ``ts`` to its second
    (while records keep to it), each lane's ``"source"`` and ``"origin"``; what a parse
    worker made already (``Record.json_tail``) is taken as it is. A record from the future
    (``Record.ts_claimed``) says so: ``"future":true,"ts_claimed":"…"``.

    Built as bytes: each line's JSON string is copied as orjson wrote it, and what stands
    between two lines (the end of one object, the start of the next) is one ``str`` encoded
    once. The pieces are joined ``_PIECES`` at a time: a batch's worth of small blocks alive
    at once fragmented the heap (peak RSS rose), and a ``bytearray`` grown a record at a time
    copied itself over and over (bench/README.md, session 11).
    """
    import orjson  # here, once a batch: tail's start imports no orjson (aggregator.lazyjson)

    line_json = orjson.dumps
    digits = _THREE_DIGITS
    second = -(1 << 62)  # no record's; then that of ``prefix`` (records come in time order)
    prefix = ""  # '"ts":"YYYY-MM-DDTHH:MM:SS.', or "" beyond the calendar
    # origin, or (origin, node): (source, the members from "source" to "line":); a central's
    # records of many nodes share origins
    lanes: dict[str | tuple[str, str], tuple[str, str]] = {}
    out: list[bytes] = []
    chunks: list[bytes] = []
    tail = end = ""  # what follows the last line written: the rest of its object
    for r in batch:
        ts = r.ts
        if ts // 1_000_000 != second:  # ``//`` and ``%``, native in mypyc (``divmod`` is not)
            second = ts // 1_000_000
            prefix = f'"ts":"{_second_prefix(second)}.' if in_calendar(second) else ""
        micros = ts % 1_000_000
        node = r.node
        key: str | tuple[str, str] = r.origin if node is None else (r.origin, node)
        lane = lanes.get(key)
        if lane is None or lane[0] != r.source:
            lane = lanes[key] = (r.source, _lane_members(r.source, r.origin, node))
        if len(out) >= _PIECES:
            chunks.append(b"".join(out))
            out.clear()
        if prefix:
            head = (
                f'{tail}{end}{{"seq":{r.seq},{prefix}{digits[micros // 1000]}'
                f'{digits[micros % 1000]}Z"{lane[1]}'
            )
        else:
            head = f'{tail}{end}{{"seq":{r.seq},"ts":"{ts}"{lane[1]}'
        out.append(head.encode())
        out.append(line_json(r.line))
        made = r.json_tail
        if made is not None:
            tail = made
        else:
            tail = json_tail(r.level, r.fields, r.truncated, r.parse_error)
        if r.ts_claimed:
            tail += f',"future":true,"ts_claimed":"{rfc3339_micros(r.ts_claimed)}"'
        end = _LATE_END if r.late else _END
    out.append(f"{tail}{end}".encode())
    chunks.append(b"".join(out))
    return b"".join(chunks)


def _lane_members(source: str, origin: str, node: str | None) -> str:
    """A lane's members of its records' objects, from ``"source"`` to ``"line":``."""
    shown = "" if node is None else f',"node":{_json_string(node)}'
    return f',"source":{_json_string(source)},"origin":{_json_string(origin)}{shown},"line":'


_PIECES: Final = 256
"""Pieces (two a record) ``encode_json`` joins at a time."""
_THREE_DIGITS: Final = [f"{number:03d}" for number in range(1000)]
_END: Final = "}\n"
_LATE_END: Final = ',"late":true}\n'


def encode_raw(batch: Sequence[Record]) -> bytes:
    """Each line exactly as read, newline-terminated."""
    if not batch:
        return b""
    return ("\n".join([record.line for record in batch]) + "\n").encode("utf-8")


# Foreground colours that read on dark and light terminals alike.
_PALETTE = ("36", "33", "35", "32", "34", "31", "96", "93", "95", "92", "94", "91")
# Levels worth the eye on a terminal, as stern and lnav colour them: the line itself.
_LEVEL_COLOURS = {"fatal": "1;31", "error": "31", "warn": "33"}
_LATE = " (late)"
"""After the label of a record that came after newer ones were sent (``late: true``)."""


def origin_label(source: str, origin: str, base: str | None) -> str:
    """How text names a record of ``source`` read from ``origin``.

    ``base`` None: the source follows one file (or is not a file source): its name alone.
    A directory: the source follows several files named from there: ``SOURCE[FILE]``, FILE
    relative to it. ``""``: the source is named after its own glob (``aggregator tail
    'logs/*.log'``): the file's path alone, as the glob found it.
    """
    if base is None or not origin:
        return source
    if not base:
        return origin
    relative = os.path.relpath(os.path.abspath(origin), base)
    if relative.startswith(".."):
        relative = origin
    return f"{source}[{relative}]"


def text_encoder(
    source_names: Sequence[str] = (),
    colour: bool = False,
    *,
    origin_bases: Mapping[str, str] | None = None,
    expand_lines: bool = False,
) -> Encoder:
    """An encoder for ``TS SOURCE | LINE``.

    - ``colour``: each source in its own colour (in config order, so the same config always
      gives the same colours), error and fatal lines red, warn lines yellow, ``(late)`` in
      reverse video.
    - ``origin_bases``: for each source that follows several files, the directory they are
      named from: its records are labelled ``SOURCE[FILE]`` (``origin_label``), and in colour
      each file has a colour of its own, as stern gives each pod one.
    - ``expand_lines``: a joined multiline record shows as several lines, the continuations
      indented under the first; off, its newlines are escaped as ``\\x0a`` like every other
      control character (a WebSocket text frame holds one record a line).
    A late record says ``(late)`` after its label.
    """
    colours = {name: _PALETTE[index % len(_PALETTE)] for index, name in enumerate(source_names)}
    bases = {} if origin_bases is None else origin_bases  # filled in as sources are built

    def label_of(source: str, origin: str, node: str | None) -> tuple[str, str, int]:
        """(source, the label as written, the label's width on screen). A record that
        came through a remote source is labelled ``NODE/SOURCE``."""
        base = bases.get(source)
        plain = escape_control(origin_label(source, origin, base))
        if node is not None:
            plain = f"{escape_control(node)}/{plain}"
        if not colour:
            return source, plain, len(plain)
        key = source if base is None and node is None else plain
        code = colours.setdefault(key, _PALETTE[len(colours) % len(_PALETTE)])
        return source, f"\x1b[{code}m{plain}\x1b[0m", len(plain)

    labels: dict[str | tuple[str, str], tuple[str, str, int]] = {}  # by origin
    late_mark = "\x1b[7m(late)\x1b[0m" if colour else _LATE.strip()
    control = _CONTROL_CHARS
    escapes = _ESCAPES

    def encode_text(batch: Sequence[Record]) -> bytes:
        out = []
        for record in batch:
            node = record.node
            key = record.origin if node is None else (node, record.origin)
            lane = labels.get(key)
            if lane is None or lane[0] != record.source:
                lane = labels[key] = label_of(record.source, record.origin, node)
            label = lane[1]
            if record.late:
                label = f"{label} {late_mark}"
            line = record.line
            if not control.isdisjoint(line):
                if expand_lines and "\n" in line:
                    indent = "\n" + " " * (28 + lane[2] + (len(_LATE) if record.late else 0))
                    line = indent.join(part.translate(escapes) for part in line.split("\n"))
                else:
                    line = line.translate(escapes)
            if colour:
                level = _LEVEL_COLOURS.get(record.level or "")
                if level is not None:
                    line = f"\x1b[{level}m{line}\x1b[0m"
            out.append(f"{rfc3339_millis(record.ts)} {label} | {line}\n")
        return "".join(out).encode("utf-8")

    return encode_text


def make_encoder(
    name: FormatName,
    source_names: Sequence[str] = (),
    colour: bool = False,
    *,
    origin_bases: Mapping[str, str] | None = None,
    expand_lines: bool = False,
) -> Encoder:
    """The encoder for a sink's ``format`` (the keywords: see ``text_encoder``)."""
    if name == "json":
        return encode_json
    if name == "raw":
        return encode_raw
    return text_encoder(source_names, colour, origin_bases=origin_bases, expand_lines=expand_lines)
