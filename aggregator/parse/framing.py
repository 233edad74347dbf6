"""Pure octet-counted framing (RFC 6587 §3.4.1): ``MSG-LEN SP MSG`` repeated, as syslog senders
use over TCP so that a message may hold newlines.

``OctetCountedSplitter`` has the interface of ``LineSplitter``, so a connection can use either.
A frame longer than ``max_line_bytes`` is cut at a code point boundary and flagged truncated,
and the rest of it is skipped: memory stays bounded whatever length a sender claims. A header
that is not a length is a framing error: the stream cannot be resynchronised after it, but
the frames before it are kept (``feed`` gives them and sets ``error``; later feeds give nothing).
"""

from aggregator.parse.lines import Lines, cut_utf8

MAX_HEADER_DIGITS = 10


class FramingError(ValueError):
    """The stream is not octet-counted where it should be; the message says what was seen."""


class OctetCountedSplitter:
    """Turns an octet-counted byte stream into messages."""

    def __init__(self, max_line_bytes: int) -> None:
        self._limit = max_line_bytes
        self._buffer = bytearray()
        self._frame_left = 0  # bytes of the current frame still to come
        self._frame = bytearray()  # what is kept of it (at most the limit)
        self._truncated = False
        self._in_frame = False
        self.error: FramingError | None = None

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer) + len(self._frame)

    def feed(self, data: bytes) -> Lines:
        """The messages ``data`` completes; at a header that is not a length, the messages
        before it, with ``error`` set."""
        out = Lines()
        if self.error is not None:
            return out
        try:
            self._frames(data, out)
        except FramingError as error:
            self.error = error
            self._buffer.clear()
        return out

    def _frames(self, data: bytes, out: Lines) -> None:
        self._buffer += data
        while self._buffer:
            if not self._in_frame:
                space = self._buffer.find(b" ", 0, MAX_HEADER_DIGITS + 1)
                if space < 0:
                    if len(self._buffer) > MAX_HEADER_DIGITS or not self._buffer.isdigit():
                        raise FramingError(
                            f"expected a frame length, got {bytes(self._buffer[:20])!r}"
                        )
                    return  # the header is not complete yet
                header = bytes(self._buffer[:space])
                if not header.isdigit() or header.startswith(b"0"):
                    raise FramingError(f"expected a frame length, got {header[:20]!r}")
                del self._buffer[: space + 1]
                self._frame_left = int(header)
                self._in_frame = True
            take = min(self._frame_left, len(self._buffer))
            room = self._limit - len(self._frame)
            if room > 0:
                self._frame += self._buffer[: min(take, room)]
            if take > room:
                self._truncated = True
            del self._buffer[:take]
            self._frame_left -= take
            if self._frame_left:
                return  # the frame is not complete yet
            self._give(out)

    def flush(self) -> Lines:
        """At the end of the stream: a frame cut short is given as it is, flagged truncated."""
        out = Lines()
        if self._in_frame:
            self._truncated = True
            self._give(out)
        return out

    def _give(self, out: Lines) -> None:
        frame = self._frame
        if self._truncated:
            frame = bytearray(cut_utf8(frame, self._limit))
            out.truncated.append(len(out.text))
        text = frame.decode("utf-8", "replace")
        out.text.append(text[:-1] if text.endswith("\n") else text)
        self._frame = bytearray()
        self._truncated = False
        self._in_frame = False
