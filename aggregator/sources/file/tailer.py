"""Reads one open file from a position onwards: the position, truncation, and the file's
identity as it grows."""

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import NamedTuple

from aggregator.parse.decode import LaneDecoder
from aggregator.parse.pool import POOL_MIN_BYTES
from aggregator.record.record import Batch
from aggregator.sources.file.identity import (
    HEAD_BYTES,
    Position,
    files_by_identity,
    head_hash,
    identity_key,
    read_head,
)

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
"""Bytes per catch-up read: large enough that catch-up moves in big batches, one thread hop each."""
SMALL_READ = 64 * 1024
"""Up to this much new data is read on the event loop: a live append is in the page cache, so
the read costs far less than a hop to a thread and back."""
LIVE_READ = POOL_MIN_BYTES
"""Less new data than this is read in inotify's callback (``read_now``): it is decoded here,
where a larger read would go to a parse worker (``LaneDecoder.decode``)."""


async def _pread_in_thread(fd: int, size: int, offset: int) -> bytes:
    """``os.pread`` in a thread (asyncio's own: importing aiofiles cost start-up 7 ms)."""
    return await asyncio.to_thread(os.pread, fd, size, offset)


async def _open_in_thread(path: Path, flags: int) -> int:
    """``os.open`` in a thread: an open can block on a slow filesystem."""
    return await asyncio.to_thread(os.open, path, flags)


TAIL_CHECK = 16
"""The last bytes read are remembered and checked before each read: a file truncated and
written again past the position (copytruncate, then a quick writer) shows as changed bytes
there, where comparing sizes would see nothing."""


class Read(NamedTuple):
    """What one ``FileTailer.read`` gave: records, whether the position moved (data was read,
    or the file was truncated and is read again from 0), and whether it read all there was
    when it looked (another read now would find nothing: the caller may wait for a change)."""

    records: Batch
    moved: bool
    drained: bool = False


NOTHING_NEW = Read([], moved=False, drained=True)


LOOK_BACK = 64 * 1024
"""Bytes read at a time, backwards from the end, to find where the last lines start."""


def start_of_last_lines(fd: int, size: int, count: int) -> int:
    """The offset where the last ``count`` lines of the file begin (``tail -n``): a last
    line without its newline counts as one; 0 when the file has no more lines than that."""
    if count <= 0:
        return size
    end = size
    if end and os.pread(fd, 1, end - 1) == b"\n":
        end -= 1  # the newline that ends the last line starts nothing
    seen = 0
    while end > 0:
        start = max(0, end - LOOK_BACK)
        block = os.pread(fd, end - start, start)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) >= 0:
            seen += 1
            if seen == count:
                return start + index + 1
        end = start
    return 0


class FileTailer:
    """Reads one open file from a position onwards."""

    def __init__(self, path: Path, decoder: LaneDecoder) -> None:
        self.path = path
        self.origin = str(path)
        self.position = 0
        self.decoder = decoder
        self._fd: int | None = None
        self._key = ""  # the open file's identity ("DEV:INODE"), once opened
        self._head = b""
        self._hashed = (b"", head_hash(b""))  # a head and its hash: hashed once, not per batch
        self._tail = b""  # the last bytes read, just before ``position``
        self._skip_nul = False
        self._behind = False  # much is unread: read in large chunks, in a thread
        self.sending_since: float | None = None
        """When (monotonic) the reader began waiting to hand records on; None while it is not:
        a reader held back long may see its path replaced more than once meanwhile."""
        self.successors: dict[str, int] = {}
        """Files seen at the path (by identity, with the size last seen) after this one, while
        its reader was held back: each must be read after this one, or counted as lost."""
        self.lane = ""  # where counting began (``Record.lane``): kept across a restart
        self.records = 0  # records given out since then
        self.continues: Position | None = None
        """The position in another file this one goes on from (it is that file's copy)."""
        self.truncated_from: Position | None = None
        """Set when a read found the file truncated in place: how far the content it had
        before was read (copytruncate: the rest may be in the copy). The caller takes it."""

    @property
    def key(self) -> str:
        """The open file's identity ("DEV:INODE"); "" before it was opened."""
        return self._key

    def _count_from_here(self, truncated: bool = False) -> None:
        """Begin a new count. Opened without a checkpoint, the lane is named by the file's
        identity and first bytes and the offset counting starts at, so a restart before any
        checkpoint was saved (read from the start again) names the same records the same way.
        After a truncation in place the same bytes may come back as other lines: a lane of its
        own (the checkpoint keeps its name)."""
        if truncated:
            self.lane = f"{self._key}@{self.position}~{time.time_ns():x}"
        else:
            self.lane = f"{self._key}:{head_hash(self._head)}@{self.position}"
        self.records = 0

    def _tally(self, records: Batch) -> Batch:
        """Stamp each record with its place in the file (``Record.lane``, ``lane_seq``)."""
        lane, count = self.lane, self.records
        for record in records:
            count += 1
            record.lane = lane
            record.lane_seq = count
        self.records = count
        return records

    def flush(self) -> Batch:
        """Everything the decoder holds (the file ended or was rotated away)."""
        return self._tally(self.decoder.flush())

    def expire(self) -> Batch:
        """A held multiline record that has waited its timeout."""
        return self._tally(self.decoder.expire())

    async def open(self, at_end: bool, resume: Position | None = None, last_lines: int = 0) -> bool:
        """Open the file at its end (``last_lines`` before it) or its start, or, when
        ``resume`` is a saved position of this file, where it says (``resume_at``). True when
        a saved position applied."""
        # A bare descriptor: reads are positional (pread), and a file object would be waste.
        fd = self._fd = await _open_in_thread(self.path, os.O_RDONLY | os.O_CLOEXEC)
        stat = os.fstat(fd)
        self._key = identity_key(stat)
        self._head = read_head(fd)
        resumed = resume is not None and self.resume_at(resume)
        if not resumed:
            self.position = start_of_last_lines(fd, stat.st_size, last_lines) if at_end else 0
            if at_end and last_lines and self.position:
                # The lines before the start give the time of untimed lines at the start.
                start = max(0, self.position - LOOK_BACK)
                before = os.pread(fd, self.position - start, start)
                if start:
                    before = before[before.find(b"\n") + 1 :]  # from a whole line on
                self.decoder.prime(before)
            self._count_from_here()
            start = max(0, self.position - TAIL_CHECK)
            self._tail = os.pread(fd, self.position - start, start)
        self._behind = stat.st_size - self.position > SMALL_READ
        return resumed

    def resume_at(self, resume: Position) -> bool:
        """Before the first read: go on where ``resume`` (a position of this file, by its
        identity) says, if the first bytes are still the same and the file no shorter, else
        from 0 (truncated and rewritten, or a new file on a reused inode: either way all of it
        is unread). False when ``resume`` is of another file."""
        assert self._fd is not None
        if resume.key != self._key:
            return False
        size = os.fstat(self._fd).st_size
        same = resume.matches(self._head) and resume.offset <= size
        if not same:
            log.info("%s: changed while stopped, reading it from the start", self.path)
        self.position = resume.offset if same else 0
        if same and resume.lane:
            self.lane, self.records = resume.lane, resume.records
        else:
            self._count_from_here()
        start = max(0, self.position - TAIL_CHECK)
        self._tail = os.pread(self._fd, self.position - start, start)
        self._behind = size - self.position > SMALL_READ
        return True

    @property
    def head(self) -> bytes:
        """The file's first bytes (up to ``HEAD_BYTES``), as last read."""
        return self._head

    def refresh_head(self) -> None:
        """Read the first bytes again (a file just made, still being written)."""
        if self._fd is not None and len(self._head) < HEAD_BYTES:
            self._head = read_head(self._fd)

    @property
    def suspended(self) -> bool:
        """Closed while quiet (``suspend``); ``reopen`` before reading."""
        return self._fd is None and bool(self._key)

    async def suspend(self) -> None:
        """Close the descriptor of a quiet file; its position and identity are kept."""
        await self.close()

    async def reopen(self) -> bool:
        """Open a suspended file again, by its identity: at its path or, renamed meanwhile,
        under another name in its directory. False when it is nowhere (deleted)."""
        key = self._key
        assert key
        candidate: Path | None = self.path
        try:
            if identity_key(self.path.stat()) != key:
                candidate = None
        except OSError:
            candidate = None
        if candidate is None:  # renamed meanwhile: only then is the directory looked through
            candidate = files_by_identity(self.path.parent).get(key)
        if candidate is None:
            return False
        try:
            self._fd = await _open_in_thread(candidate, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        if identity_key(os.fstat(self._fd)) == key:
            return True
        await self.close()  # replaced between the look and the open
        return False

    def checkpoint(self) -> Position | None:
        """Where a restart should resume: just past the last complete line given out. None
        while a multiline record is held (its start is not known here)."""
        if not self._key or self.decoder.holds_record:
            return None
        return self._position_now()

    def _position_now(self) -> Position:
        if self._hashed[0] is not self._head:
            self._hashed = (self._head, head_hash(self._head))
        return Position(
            self._key,
            self.origin,
            self.position - self.decoder.pending_bytes,
            len(self._head),
            self._hashed[1],
            self.lane,
            self.records,
        )

    async def close(self) -> None:
        """Close the descriptor (closing a file already read from takes microseconds)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def read(self) -> "Read":
        """Records from what was appended since the last read (``NOTHING_NEW``: the caller
        waits); after a truncation, none yet, but the position moved back to 0.

        One ``pread`` from just before the position: the bytes last read, checked (a file
        truncated, or truncated and written again past the position, shows there), then what
        follows. Up to ``SMALL_READ`` on the loop (a live append is in the page cache); while
        far behind (a read filled its buffer, or much was unread at open), ``READ_CHUNK`` at a
        time in a thread."""
        assert self._fd is not None
        fd, tail, position = self._fd, self._tail, self.position
        want = READ_CHUNK if self._behind else SMALL_READ
        if self._behind:
            data = await _pread_in_thread(fd, len(tail) + want, position - len(tail))
        else:
            data = os.pread(fd, len(tail) + want, position - len(tail))
        if self._truncated(fd, data, tail, position):
            log.info("%s: truncated, reading again from the start", self.path)
            self._read_again()
            return Read([], moved=True)
        if len(data) == len(tail):
            self._behind = False
            return NOTHING_NEW
        data = self._advance(fd, data, tail, position, want)
        records = self._tally(await self.decoder.decode(data)) if data else []
        return Read(records, moved=True, drained=not self._behind)

    def read_now(self) -> Batch | None:
        """``read`` of a live append, without waiting (in inotify's callback): the records
        (none when nothing new came, or only part of a line). None where ``read`` must do it
        (much to read, a truncation, the file closed): nothing was taken then."""
        fd = self._fd
        if fd is None or self._behind:
            return None
        tail, position = self._tail, self.position
        data = os.pread(fd, len(tail) + LIVE_READ, position - len(tail))
        if len(data) - len(tail) >= LIVE_READ or self._truncated(fd, data, tail, position):
            return None
        if len(data) == len(tail):
            return []
        data = self._advance(fd, data, tail, position, LIVE_READ)
        return self._tally(self.decoder.feed(data)) if data else []

    def _truncated(self, fd: int, data: bytes, tail: bytes, position: int) -> bool:
        """Whether a read from just before ``position`` shows the file truncated: the bytes
        last read (``tail``) are not there any more, or, with none kept, it is shorter."""
        if tail:
            return not data.startswith(tail)
        return bool(position) and os.fstat(fd).st_size < position

    def _read_again(self) -> None:
        """Truncated in place: from 0 again, in a lane of its own; what was read before is
        noted (``truncated_from``) for the caller, who looks for its copy."""
        self.truncated_from = self._position_now()
        self.position = 0
        self._tail = b""
        self._head = b""  # the identity's first bytes are new too: read again as it refills
        self._skip_nul = True
        self._behind = False
        self._count_from_here(truncated=True)

    def _advance(self, fd: int, data: bytes, tail: bytes, position: int, want: int) -> bytes:
        """Move past what a read from just before ``position`` found beyond ``tail``, and
        return those bytes (without the NULs a writer leaves where a truncated file's content
        was); the read asked for ``want`` of them: all it got means more may wait."""
        if tail:
            data = data[len(tail) :]
        self._behind = len(data) >= want
        self.position = position + len(data)
        self._tail = (data if len(data) >= TAIL_CHECK else tail + data)[-TAIL_CHECK:]
        if len(self._head) < HEAD_BYTES:  # the identity grows with a small file
            self._head = read_head(fd)
        if self._skip_nul:
            stripped = data.lstrip(b"\x00")
            self._skip_nul = not stripped
            data = stripped
        return data

    def deleted(self) -> bool:
        """Whether the open file has no name left (deleted); False once closed."""
        return self._fd is not None and os.fstat(self._fd).st_nlink == 0

    def size(self) -> int | None:
        """The open file's size now; None once closed."""
        return os.fstat(self._fd).st_size if self._fd is not None else None

    def replaced(self) -> bool:
        """Whether the path now names another file (rotation, recreation, a symlink flip)."""
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return identity_key(stat) != self._key

    def missing(self) -> bool:
        return not self.path.exists()

    def at_path(self) -> bool | None:
        """``replaced`` and ``missing`` in one stat: True while the path names this file,
        False once it names another, None while it names none."""
        try:
            stat = os.stat(self.origin)
        except OSError:
            return None
        return identity_key(stat) == self._key
