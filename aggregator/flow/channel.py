"""A bounded channel between pipeline stages, with an explicit end of stream.

Python 3.11 has no ``Queue.shutdown()``: closing a full ``asyncio.Queue`` would need a sentinel
that may not fit. A channel can always be closed; the reader gets what was put, then
``EndOfStream``; a writer to a closed channel gets ``ChannelClosed`` (its reader has gone).
"""

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class EndOfStream(Exception):
    """The channel was closed and everything put into it has been taken."""


class ChannelClosed(Exception):
    """A put into a channel that was closed: nobody will read it."""


class ChannelFull(Exception):
    """A ``put_nowait`` into a full channel."""


class Channel(Generic[T]):
    """A FIFO of at most ``maxsize`` items that may have many writers and one reader."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        # Who waits on the events above: a put or a take sets one only for a waiter (a live
        # line's put and take would else make two calls that do nothing).
        self._reader_waits = False
        self._writers_waiting = 0
        self._listener: Callable[[], None] | None = None
        self._taker: Callable[[T], bool] | None = None

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Append ``item``, waiting while the channel is full (this is the backpressure)."""
        while len(self._items) >= self.maxsize and not self._closed:
            self._writable.clear()
            self._writers_waiting += 1
            try:
                await self._writable.wait()
            finally:
                self._writers_waiting -= 1
        self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        """Append ``item`` now; only when ``room`` says so (else ``ChannelFull``)."""
        if self._closed:
            raise ChannelClosed
        if len(self._items) >= self.maxsize:
            raise ChannelFull
        if self._taker is not None and not self._items and self._taker(item):
            return
        self._items.append(item)
        if self._reader_waits:
            self._readable.set()
        if self._listener is not None:
            self._listener()

    @property
    def room(self) -> bool:
        """Whether a put would not wait (nor fail: the channel is open)."""
        return not self._closed and len(self._items) < self.maxsize

    async def get(self) -> T:
        """The oldest item, waiting for one; ``EndOfStream`` once closed and empty."""
        while not self._items:
            if self._closed:
                raise EndOfStream
            self._readable.clear()
            self._reader_waits = True
            try:
                await self._readable.wait()
            finally:
                self._reader_waits = False
        item = self._items.popleft()
        if self._writers_waiting:
            self._writable.set()
        return item

    def get_nowait(self) -> T | None:
        """The oldest item if one is there, else None (never ``EndOfStream``)."""
        if not self._items:
            return None
        item = self._items.popleft()
        if self._writers_waiting:
            self._writable.set()
        return item

    def get_many(self, limit: int) -> list[T]:
        """Up to ``limit`` of the oldest items, taken now (none while empty): a reader of many
        channels (the merge) takes what one holds in one call, not one call an item."""
        items = self._items
        if len(items) <= limit:
            taken = list(items)
            items.clear()
        else:
            taken = [items.popleft() for _ in range(limit)]
        if taken and self._writers_waiting:
            self._writable.set()
        return taken

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ended(self) -> bool:
        """Closed, and everything put taken: a ``get`` would raise ``EndOfStream``."""
        return self._closed and not self._items

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` after each put and on closing, synchronously, in the putter's (or
        closer's) stack: it must not put into a channel that calls it; None stops.

        A reader of many channels (the merge) waits for one wake-up this way and takes with
        ``get_many``, instead of a task blocked in ``get`` for each channel."""
        self._listener = listener

    def hand_to(self, taker: Callable[[T], bool] | None) -> None:
        """While set, a put into the empty channel offers the item to ``taker`` first; True:
        taken, nothing is queued (no reader woken). A reader idle in ``get`` that can handle an
        item at once (the stdout sink writing to a pipe with room) saves a task's wake so."""
        self._taker = taker

    def close(self) -> None:
        """End the stream: writers stop, the reader drains what is left. Idempotent."""
        self._closed = True
        self._readable.set()
        self._writable.set()
        if self._listener is not None:
            self._listener()


class Budget:
    """Credit for one lane: how many of its records may be on their way through the merge.

    A reader takes credit before it hands records on, and the merge gives it back as those
    records leave. A lane whose records wait in the merge (for a slower lane, in an exact
    catch-up) therefore stops reading, and memory stays bounded whatever the input rate, while
    lanes that share its channel go on. A reader may take more than what is left (a whole
    chunk) as long as something is left, so a large chunk never waits forever.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = limit
        """Credit left (zero or less: a reader would wait); an attribute, read for each live
        line (``LaneOutlet.room``): changed only here."""
        self._available = asyncio.Event()
        self._available.set()
        self._waiting = 0  # readers waiting in ``take``: ``give`` sets the event only for them

    async def take(self, count: int) -> None:
        while self.free <= 0:
            self._available.clear()
            self._waiting += 1
            try:
                await self._available.wait()
            finally:
                self._waiting -= 1
        self.free -= count

    def take_now(self, count: int) -> None:
        """``take`` without waiting: only while ``free`` is above 0."""
        self.free -= count

    def give(self, count: int) -> None:
        self.free += count
        if self._waiting and self.free > 0:
            self._available.set()
