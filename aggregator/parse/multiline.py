"""Pure multiline joining: continuation lines join the line that starts their record.

A line that matches ``start`` begins a record; the lines after it that do not match are part
of it (a stack trace, say), joined with ``\\n``. A record is given out when the next one
starts, when it reaches ``max_lines``, at the end of the input, or once no line has come for
``timeout`` (the caller asks with ``expire``). Memory is bounded: a record past
``max_bytes`` is cut (and flagged truncated), and its further continuation lines are skipped.
The output depends only on the order of the lines (and, live, on the timeout): the same stream
always gives the same records.
"""

import re

from aggregator.parse.container import Messages
from aggregator.parse.lines import Lines


class MultilineJoiner:
    """Joins one lane's lines into records."""

    def __init__(self, start: "re.Pattern[str]", max_lines: int, max_bytes: int, timeout: float):
        self.start = start
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._parts: list[str] = []
        self._size = 0
        self._truncated = False
        self._last_line_at = 0.0

    @property
    def deadline(self) -> float | None:
        """When ``expire`` would give out the held record; None when nothing is held."""
        return self._last_line_at + self.timeout if self._parts else None

    def feed(self, lines: Lines, now: float) -> Lines:
        """The records that ``lines`` complete; the last one is held for its continuation."""
        out = Lines()
        truncated = set(lines.truncated)
        for index, line in enumerate(lines.text):
            if self._parts and self.start.search(line) is not None:
                self._give(out)
            self._append(line, index in truncated)
            if len(self._parts) >= self.max_lines:
                self._give(out)
        if lines.text:
            self._last_line_at = now
        return out

    def expire(self, now: float) -> Lines:
        """The held record if no line has come for ``timeout``."""
        out = Lines()
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self._give(out)
        return out

    def flush(self) -> Lines:
        """The held record, at the end of the input."""
        out = Lines()
        if self._parts:
            self._give(out)
        return out

    def _append(self, line: str, truncated: bool) -> None:
        self._truncated = self._truncated or truncated
        if self._size >= self.max_bytes:
            self._truncated = True
            return
        room = self.max_bytes - self._size
        if len(line) > room:  # characters: a cheap, safe first cut; bytes are checked below
            line, self._truncated = line[:room], True
        self._parts.append(line)
        self._size += len(line.encode("utf-8")) + 1

    def _give(self, out: Lines) -> None:
        text = "\n".join(self._parts)
        encoded = text.encode("utf-8")
        if len(encoded) > self.max_bytes:
            text = encoded[: self.max_bytes].decode("utf-8", "ignore")
            self._truncated = True
        if self._truncated:
            out.truncated.append(len(out.text))
        out.text.append(text)
        self._parts = []
        self._size = 0
        self._truncated = False


class MessageJoiner:
    """Joins a container's messages (after their envelope is taken off, partial lines joined)
    as ``MultilineJoiner`` joins lines: a record keeps its first message's time, stream and
    error, and a message of another stream starts a record of its own (a trace written to
    stderr is not joined with a line written to stdout meanwhile)."""

    def __init__(self, joiner: MultilineJoiner) -> None:
        self.joiner = joiner
        self._head: tuple[int | None, str | None, str | None] = (None, None, None)

    @property
    def deadline(self) -> float | None:
        return self.joiner.deadline

    def feed(self, messages: Messages, now: float) -> Messages:
        """The records that ``messages`` complete; the last one is held for its continuation."""
        out = Messages()
        joiner = self.joiner
        truncated = set(messages.truncated)
        stamps, streams, errors = messages.stamps, messages.streams, messages.errors
        for index, text in enumerate(messages.texts):
            stream = streams[index]
            if joiner._parts and (stream != self._head[1] or joiner.start.search(text) is not None):
                self._give(out)
            if not joiner._parts:
                self._head = (stamps[index], stream, errors[index])
            joiner._append(text, index in truncated)
            if len(joiner._parts) >= joiner.max_lines:
                self._give(out)
        if messages.texts:
            joiner._last_line_at = now
        return out

    def expire(self, now: float) -> Messages:
        """The held record if no message has come for the joiner's ``timeout``."""
        out = Messages()
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self._give(out)
        return out

    def flush(self) -> Messages:
        """The held record, at the end of the input."""
        out = Messages()
        if self.joiner._parts:
            self._give(out)
        return out

    def _give(self, out: Messages) -> None:
        joined = Lines()
        self.joiner._give(joined)
        ts, stream, error = self._head
        out.add(joined.text[0], ts, stream, error, bool(joined.truncated))
