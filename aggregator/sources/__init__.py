"""Sources: each reads one kind of input and puts what it read into its channel."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from aggregator.flow.channel import Budget, Channel
from aggregator.flow.chunk import Chunk, SourceItem
from aggregator.flow.record import Batch
from aggregator.parse.decode import Decoding, LaneDecoder

LANE_BUDGET = 16_384
"""Records one lane (a file, a connection) may have on their way through the merge."""


class Source(Protocol):
    """A running input. ``open`` binds or checks what it needs, so that a bad port or path is
    reported before anything starts; ``run`` reads until its input ends or it is cancelled.
    The first item ``run`` puts is an ``Announce`` of the origins it is about to read."""

    name: str
    decoding: Decoding

    async def open(self) -> None: ...

    async def run(self, out: Channel[SourceItem]) -> None: ...

    async def close(self) -> None:
        """Release what ``open`` took (a socket, a socket file), if ``run`` never will."""

    def counters(self) -> dict[str, object]:
        """For /metrics: what this source has counted (see ``aggregator.metrics``)."""


class LaneOutlet:
    """Where the reader of one lane puts its records: it takes credit first (see ``Budget``),
    so a lane that runs ahead of the others stops reading instead of filling memory."""

    def __init__(self, out: Channel[SourceItem], origin: str, budget: int = LANE_BUDGET) -> None:
        self.out = out
        self.origin = origin
        self.budget = Budget(budget)

    async def send(
        self, records: Batch, *, live: bool = True, final: bool = False, position: object = None
    ) -> None:
        await self.budget.take(len(records))
        await self.out.put(Chunk(self.origin, records, live, final, self.budget.give, position))


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
