"""Pure encoders from a batch of records to the bytes a sink writes: text, json (NDJSON), raw."""

import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Literal

import orjson

from aggregator.flow.levels import LEVELS
from aggregator.flow.record import Record

FormatName = Literal["text", "json", "raw"]
Encoder = Callable[[Sequence[Record]], bytes]


@lru_cache(maxsize=4096)
def _second_prefix(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def rfc3339_micros(ts: int) -> str:
    """``ts`` (microseconds since the epoch) as RFC 3339 UTC with microseconds."""
    second, micros = divmod(ts, 1_000_000)
    return f"{_second_prefix(second)}.{micros:06d}Z"


def rfc3339_millis(ts: int) -> str:
    """``ts`` as RFC 3339 UTC with milliseconds, as the text format shows it."""
    second, micros = divmod(ts, 1_000_000)
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
        encoded = _json_strings[text] = orjson.dumps(text).decode()
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
    if fields is not None:
        text += ',"fields":' + orjson.dumps(fields).decode()
    if truncated:
        text += ',"truncated":true'
    if parse_error is not None:
        text += ',"parse_error":' + orjson.dumps(parse_error).decode()
    return text


def encode_json(batch: Sequence[Record]) -> bytes:
    """One JSON object per line (NDJSON), the object of SPEC §4.

    Written out by hand around orjson's string escaping: building a dict per record for
    orjson cost three times as much. What repeats is formatted once per batch: ``ts`` to its
    millisecond, and each lane's ``"source"`` and ``"origin"``; what a parse worker made
    already (``Record.json_tail``) is taken as it is.
    """
    dumps = orjson.dumps
    digits = _THREE_DIGITS
    millis: dict[int, str] = {}  # ms since the epoch: '"ts":"YYYY-MM-DDTHH:MM:SS.mmm'
    lanes: dict[str, tuple[str, str | None, str]] = {}  # origin: (source, node, JSON to line)
    out = []
    for r in batch:
        milli, micros = divmod(r.ts, 1000)
        stamp = millis.get(milli)
        if stamp is None:
            second, ms = divmod(milli, 1000)
            stamp = millis[milli] = f'"ts":"{_second_prefix(second)}.{digits[ms]}'
        lane = lanes.get(r.origin)
        if lane is None or lane[0] != r.source or lane[1] != r.node:
            node = "" if r.node is None else f',"node":{_json_string(r.node)}'
            lane = lanes[r.origin] = (
                r.source,
                r.node,
                f',"source":{_json_string(r.source)},"origin":{_json_string(r.origin)}{node}'
                ',"line":',
            )
        tail = r.json_tail
        if tail is None:
            tail = json_tail(r.level, r.fields, r.truncated, r.parse_error)
        out.append(
            f'{{"seq":{r.seq},{stamp}{digits[micros]}Z"{lane[2]}{dumps(r.line).decode()}'
            f"{tail}{_LATE_END if r.late else _END}"
        )
    return "".join(out).encode()


_THREE_DIGITS = [f"{number:03d}" for number in range(1000)]
_END = "}\n"
_LATE_END = ',"late":true}\n'


def encode_raw(batch: Sequence[Record]) -> bytes:
    """Each line exactly as read, newline-terminated."""
    if not batch:
        return b""
    return ("\n".join([record.line for record in batch]) + "\n").encode("utf-8")


# Foreground colours that read on dark and light terminals alike.
_PALETTE = ("36", "33", "35", "32", "34", "31", "96", "93", "95", "92", "94", "91")


def text_encoder(source_names: Sequence[str] = (), colour: bool = False) -> Encoder:
    """An encoder for ``TS SOURCE | LINE``; with ``colour``, each source in its own colour.

    Sources are coloured in config order, so the same config always gives the same colours.
    """
    colours = {name: _PALETTE[index % len(_PALETTE)] for index, name in enumerate(source_names)}

    def label(source: str) -> str:
        if not colour:
            return source
        code = colours.setdefault(source, _PALETTE[len(colours) % len(_PALETTE)])
        return f"\x1b[{code}m{source}\x1b[0m"

    labels: dict[str, str] = {}

    def encode_text(batch: Sequence[Record]) -> bytes:
        out = []
        for record in batch:
            source = labels.get(record.source)
            if source is None:
                source = labels[record.source] = label(escape_control(record.source))
            out.append(f"{rfc3339_millis(record.ts)} {source} | {escape_control(record.line)}\n")
        return "".join(out).encode("utf-8")

    return encode_text


def make_encoder(
    name: FormatName, source_names: Sequence[str] = (), colour: bool = False
) -> Encoder:
    """The encoder for a sink's ``format``."""
    if name == "json":
        return encode_json
    if name == "raw":
        return encode_raw
    return text_encoder(source_names, colour)
