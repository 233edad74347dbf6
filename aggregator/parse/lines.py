"""Pure line splitting: bytes in, whole lines out, nothing held beyond ``max_line_bytes``.

Lines end at ``\\n`` only (never ``str.splitlines``, which also splits on form feeds and other
separators that belong inside a log line); one trailing ``\\r`` is removed. A line longer than the
limit is cut at a UTF-8 code point boundary, flagged as truncated, and the rest of it up to the
next newline is skipped, so the stream goes on after it. Invalid UTF-8 becomes U+FFFD.
"""

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True, init=False)
class Lines:
    """What one ``feed`` gave: the complete lines, and which of them were truncated."""

    text: list[str] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)

    def __init__(self, text: list[str] | None = None, truncated: list[int] | None = None) -> None:
        """The dataclass's own ``__init__`` (its default factories) is generated Python, which
        compiled callers reach through the type's call (~1.9k instructions, one a live read):
        written out, mypyc compiles it (as ``flow.chunk.Chunk``'s)."""
        self.text = [] if text is None else text
        self.truncated = [] if truncated is None else truncated


class Splitter(Protocol):
    """Bytes in, whole lines (or frames) out: ``LineSplitter`` or ``OctetCountedSplitter``."""

    @property
    def error(self) -> ValueError | None:
        """Set when the stream cannot be split further (a framing error); None for newlines."""

    @property
    def pending_bytes(self) -> int: ...

    def feed(self, data: bytes) -> "Lines": ...

    def flush(self) -> "Lines": ...


def cut_utf8(data: bytes | bytearray, limit: int) -> bytes:
    """The longest prefix of ``data`` within ``limit`` bytes that does not split a code point.

    Only a multi-byte sequence that the cut would break is left out; invalid bytes are not
    looked into (they become U+FFFD either way).
    """
    if len(data) <= limit:
        return bytes(data)
    end = limit
    for back in range(1, 4):
        start = end - back
        if start < 0:
            break
        byte = data[start]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: its lead byte is further back
        if byte >= 0xC0:
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if start + length > end:
                end = start
        break
    return bytes(data[:end])


def _decode_line(raw: bytes | bytearray) -> str:
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\r") else text


class LineSplitter:
    """Turns a byte stream into lines, holding only the partial last line between feeds."""

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self._limit = max_line_bytes
        self._partial = bytearray()
        self.error: ValueError | None = None  # newline splitting never fails
        # True while skipping the rest of an over-long line that has no newline yet.
        self._skipping = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of the partial last line held back (at most ``max_line_bytes``)."""
        return len(self._partial)

    def feed(self, data: bytes) -> Lines:
        """The lines that ``data`` completes; a partial last line is held for the next feed."""
        lines, region = self.take(data)
        if region is not None:
            split_region(region, self._limit, lines)
        return lines

    def take(self, data: bytes) -> tuple[Lines, bytes | None]:
        """``feed`` in two parts: the line that ``data`` completes (one held from before), and
        the region of whole lines after it, unsplit (None: there is none), for
        ``split_region``, which is pure and so may run anywhere, a worker process included."""
        last_newline = data.rfind(b"\n")
        if last_newline < 0:
            self._hold(data)
            return Lines(), None
        region = data[:last_newline]
        tail = data[last_newline + 1 :]
        lines = Lines()
        rest: bytes | None = region
        if self._partial or self._skipping:
            first_newline = region.find(b"\n")
            self._hold(region if first_newline < 0 else region[:first_newline])
            rest = None if first_newline < 0 else region[first_newline + 1 :]
            lines.text.append(self._take_partial())
            if self._skipping:
                lines.truncated.append(0)
                self._skipping = False
        self._hold(tail)
        return lines, rest

    def flush(self) -> Lines:
        """The partial last line as a line of its own (at end of input), if there is one."""
        if not self._partial and not self._skipping:
            return Lines()
        lines = Lines(text=[self._take_partial()])
        if self._skipping:
            lines.truncated.append(0)
            self._skipping = False
        return lines

    def _hold(self, data: bytes) -> None:
        if self._skipping or not data:
            return
        self._partial += data
        if len(self._partial) > self._limit:
            self._partial = bytearray(cut_utf8(self._partial, self._limit))
            self._skipping = True

    def _take_partial(self) -> str:
        text = _decode_line(self._partial)
        self._partial.clear()
        return text


def split_region(region: bytes, limit: int, lines: Lines | None = None) -> Lines:
    """The lines of ``region`` (whole lines without the last newline) appended to ``lines``:
    those over ``limit`` bytes cut and flagged truncated."""
    lines = Lines() if lines is None else lines
    offset = len(lines.text)
    text = region.decode("utf-8", "replace")
    parts = text.split("\n")
    if "\r" in text:
        parts = [part[:-1] if part.endswith("\r") else part for part in parts]
    # No line is over the limit if the region is not; nor if the longest line, in characters
    # of at most 4 bytes each, cannot be.
    if len(region) > limit and len(max(parts, key=len)) * 4 > limit:
        for index, raw in enumerate(region.split(b"\n")):
            if len(raw) > limit:
                parts[index] = _decode_line(cut_utf8(raw, limit))
                lines.truncated.append(offset + index)
    lines.text.extend(parts)
    return lines
