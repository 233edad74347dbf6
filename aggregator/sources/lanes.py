"""A lane is one file or connection of a source: its records keep their order through the merge.

``LaneOutlet`` is where a lane's reader puts records (taking credit first), and ``pump`` reads a
stream lane to its end.
"""

import asyncio
from collections.abc import Awaitable, Callable

from aggregator.flow.channel import Budget, Channel
from aggregator.flow.chunk import Chunk, SourceItem
from aggregator.parse.decode import LaneDecoder
from aggregator.record.record import Batch

LANE_BUDGET = 4096
"""Records one lane (a file, a connection) may have on their way through the merge: what bounds
memory in a catch-up, where lanes wait for each other (bench/README.md, issue #17)."""


class LaneOutlet:
    """Where the reader of one lane puts its records: it takes credit first (see ``Budget``),
    so a lane that runs ahead of the others stops reading instead of filling memory."""

    def __init__(self, out: Channel[SourceItem], origin: str, budget: int = LANE_BUDGET) -> None:
        self.out = out
        self.origin = origin
        self.budget = Budget(budget)
        self.sent = 0  # records handed on: progress, for stalls
        self.sending = False  # waiting to hand records on (credit, or a full channel)

    async def send(
        self, records: Batch, *, live: bool = True, final: bool = False, position: object = None
    ) -> None:
        self.sending = True
        try:
            await self.budget.take(len(records))
            await self.out.put(Chunk(self.origin, records, live, final, self.budget.give, position))
        finally:
            self.sending = False
        self.sent += len(records)

    @property
    def room(self) -> bool:
        """Whether ``send_now`` may hand records on at once: credit is left, and room in the
        channel (open)."""
        return self.budget.free > 0 and self.out.room

    def send_now(self, records: Batch, *, position: object = None) -> None:
        """``send`` of live records without waiting (inotify's callback reads a live append
        so: ``FileTailer.read_now``); only after ``room`` said True."""
        self.budget.take_now(len(records))
        self.out.put_nowait(Chunk(self.origin, records, True, False, self.budget.give, position))
        self.sent += len(records)


async def pump(
    read: Callable[[], Awaitable[bytes]],
    decoder: LaneDecoder,
    outlet: LaneOutlet,
    *,
    live: bool = True,
    cancel_safe: bool = True,
) -> None:
    """Read a stream lane to its end (``read`` returns b"" there), sending its records.

    A held multiline record goes out once it has waited its timeout; that needs ``read`` to
    be ``cancel_safe`` (nothing lost when cancelled while waiting), else it waits for input.
    """
    while True:
        deadline = decoder.deadline if cancel_safe else None
        try:
            if deadline is None:
                data = await read()
            else:
                async with asyncio.timeout_at(deadline):
                    data = await read()
        except TimeoutError:
            await outlet.send(decoder.expire(), live=live)
            continue
        if not data:
            break
        records = await decoder.decode(data)
        if records:
            await outlet.send(records, live=live)
        if decoder.error is not None:
            raise decoder.error  # after what came before it was sent
    await outlet.send(decoder.flush(), live=live, final=True)
