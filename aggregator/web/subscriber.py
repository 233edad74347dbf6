"""One WebSocket subscriber: its filter, its bounded outbox and the task that writes it.

The pipeline never waits for a subscriber. Frames are offered to the outbox, which holds at
most ``buffer_limit`` bytes; when it is full the frame is not queued, and the subscriber is
told ``{"notice": "dropped", "count": N}`` once it catches up (or is disconnected, if so
configured). While it is behind, the frames that are waiting go out joined as one: a slow
reader gets fewer, larger frames instead of falling further behind. Answers to the client's own
messages (errors, notices) count against the same bytes: a client that sends and never reads
them is disconnected (1008), its socket cut if it does not take the close frame either.
"""

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Literal

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from aggregator.web.hub import control_frame
from aggregator.web.subscription import ClientFilter, Format

log = logging.getLogger(__name__)

MAX_JOINED_FRAME = 1 << 20
"""Largest frame made by joining waiting frames; a single larger frame goes alone."""
DIRECT_WRITE_LIMIT = 64 * 1024
"""A subscriber whose socket has less than this waiting is written at once, without a task."""
CLOSE_TOO_SLOW = 1008
"""Close code for a subscriber disconnected for not reading (policy violation)."""
KICK_TIMEOUT = 20.0
"""Seconds a disconnected subscriber gets to read what its socket holds and the close frame
before the socket is cut: one that never reads would otherwise hold the closing handshake
forever. Its outbox is emptied and nothing it sends is read meanwhile: memory stays bounded."""

SlowPolicy = Literal["drop", "disconnect"]


def write_now(subscribers: list["Subscriber"], frame: bytes) -> None:
    """Write one text frame to subscribers that keep up (see ``writable_now``), at once.

    Without compression the bytes on the wire are the same for everyone, so the frame is
    serialized once and handed to each socket; with it, websockets' ``broadcast`` compresses
    for each. A connection that is closing is skipped: its handler is about to end.
    """
    plain = [s.connection for s in subscribers if not s.connection.protocol.extensions]
    if len(plain) < len(subscribers):
        compressed = [s.connection for s in subscribers if s.connection.protocol.extensions]
        broadcast(compressed, frame, text=True)
    if not plain:
        return
    wire = Frame(Opcode.TEXT, frame).serialize(mask=False)
    for connection in plain:
        if connection.protocol.state is State.OPEN:
            connection.transport.write(wire)


class Subscriber:
    """A connected client as the hub sees it."""

    def __init__(
        self,
        connection: ServerConnection,
        client_filter: ClientFilter,
        output_format: Format,
        buffer_limit: int,
        slow_policy: SlowPolicy,
    ) -> None:
        self.connection = connection
        self.filter = client_filter
        self.format = output_format
        self.paused = False
        self.last_seq = 0
        """The seq of the last record this subscriber has been offered (sent or dropped)."""
        self.dropped_total = 0
        self._buffer_limit = buffer_limit
        self._slow_policy = slow_policy
        self._outbox: deque[tuple[bool, bytes]] = deque()  # (holds records, frame)
        self._queued_bytes = 0
        self._dropped = 0  # records missed since the last notice
        self._ready = asyncio.Event()
        self._emptied = asyncio.Event()
        self._sending = False
        self._kick_task: asyncio.Task[None] | None = None

    @property
    def peer(self) -> str:
        address = self.connection.remote_address
        return f"{address[0]}:{address[1]}" if address else "?"

    def offer(self, frame: bytes, count: int, last_seq: int) -> None:
        """Queue a frame of ``count`` records, or drop it when the outbox is full."""
        self.last_seq = last_seq
        if self._kick_task is not None:
            return  # being disconnected
        if self._outbox and self._queued_bytes + len(frame) > self._buffer_limit:
            if self._slow_policy == "disconnect":
                self._kick("is too slow")
                return
            self._dropped += count
            self.dropped_total += count
            return
        if self._dropped:
            self._notice_dropped()
        self._append(True, frame)

    def writable_now(self) -> bool:
        """Whether a frame may be written at once, skipping the outbox: nothing waits before
        it, nothing is being sent, and the socket's buffer is nearly empty."""
        transport = self.connection.transport
        return (
            not self._outbox
            and not self._sending
            and self._kick_task is None
            and not self._dropped
            and transport is not None
            and transport.get_write_buffer_size() < DIRECT_WRITE_LIMIT
        )

    def send_control(self, message: dict[str, object]) -> None:
        """Queue a hello, notice or error. These count against the outbox like records: a
        client that sends commands and never reads their answers would otherwise fill memory
        with them. One that has no room for an answer is disconnected (1008)."""
        if self._kick_task is not None:
            return
        frame = control_frame(message)
        if self._outbox and self._queued_bytes + len(frame) > self._buffer_limit:
            self._kick("does not read the answers to its messages")
            return
        self._append(False, frame)

    def send_control_frame(self, frame: bytes) -> None:
        """Queue a control frame encoded once for many subscribers (the rates). One that is
        being disconnected, or whose outbox is full, does without it."""
        if self._kick_task is None and self._queued_bytes + len(frame) <= self._buffer_limit:
            self._append(False, frame)

    def _append(self, records: bool, frame: bytes) -> None:
        self._outbox.append((records, frame))
        self._queued_bytes += len(frame)
        self._ready.set()

    def _notice_dropped(self) -> None:
        """Queued whatever the outbox holds: one small notice per frame taken at most."""
        count, self._dropped = self._dropped, 0
        self._append(False, control_frame({"notice": "dropped", "count": count}))

    def _kick(self, why: str) -> None:
        if self._kick_task is not None:
            return
        log.warning("websocket subscriber %s %s: disconnecting it", self.peer, why)
        self._outbox.clear()
        self._queued_bytes = 0
        self._kick_task = asyncio.create_task(self._close(), name=f"ws:kick:{self.peer}")

    async def messages(self) -> AsyncIterator[str | bytes]:
        """What the client sends, until it goes or is being disconnected (nothing it sends is
        read then)."""
        try:
            async for message in self.connection:
                yield message
                if self._kick_task is not None:
                    return
        except ConnectionClosed:
            pass

    @property
    def kicked(self) -> bool:
        """Whether this subscriber is being disconnected: what it sends is no longer read."""
        return self._kick_task is not None

    async def _close(self) -> None:
        """Close with 1008; cut the socket if the client does not take the close frame."""
        try:
            async with asyncio.timeout(KICK_TIMEOUT):
                await self.connection.close(CLOSE_TOO_SLOW, "too slow")
        except TimeoutError:
            if self.connection.transport is not None:
                self.connection.transport.abort()

    async def wait_idle(self) -> None:
        """Return once everything queued has been written (or the writer has stopped)."""
        while self._outbox:
            self._emptied.clear()
            await self._emptied.wait()

    async def write(self) -> None:
        """Write the outbox until the connection closes."""
        try:
            while True:
                await self._ready.wait()
                if not self._outbox:
                    if self._dropped:
                        self._notice_dropped()
                        continue
                    self._ready.clear()
                    self._emptied.set()
                    continue
                self._sending = True
                await self.connection.send(self._take(), text=True)
                self._sending = False
        except ConnectionClosed:
            pass
        finally:
            self._outbox.clear()
            self._emptied.set()
            if self._kick_task is not None:  # the close it started ends with the connection
                await asyncio.gather(self._kick_task, return_exceptions=True)

    def _take(self) -> bytes:
        """The next frame: a control frame alone, or record frames joined up to a size."""
        records, frame = self._outbox.popleft()
        self._queued_bytes -= len(frame)
        if not records:
            return frame
        parts = [frame]
        size = len(frame)
        while self._outbox and self._outbox[0][0]:
            following = self._outbox[0][1]
            if size + len(following) > MAX_JOINED_FRAME:
                break
            self._outbox.popleft()
            self._queued_bytes -= len(following)
            parts.append(following)
            size += len(following) + 1
        return parts[0] if len(parts) == 1 else b"\n".join(parts)
