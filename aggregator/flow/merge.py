"""The merge: fan-in from every source in completion order, one ordered stream out.

The waiting is asyncio's (``asyncio.wait(..., FIRST_COMPLETED)`` over one pending read per
source channel), the ordering is ``OrderingCore``'s, and what leaves is numbered with ``seq``
and handed to every sink's channel as one batch.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aggregator.flow.channel import Channel, ChannelClosed, EndOfStream
from aggregator.flow.chunk import Announce, SourceItem
from aggregator.flow.ordering import OrderingCore
from aggregator.record.record import Batch

log = logging.getLogger(__name__)

OUTPUT_BATCH = 4096
"""Most records in one batch to the sinks: sink channels count batches, so this bounds them."""
DRAIN = 1024
"""Most items taken from one source's channel at a time, beyond the one its read returned:
many small chunks (a remote source's messages) cost one release, whose cost grows with lanes."""


@dataclass(slots=True)
class Output:
    """A sink's inlet, as the merge sees it."""

    name: str
    channel: Channel[Batch]


class Merge:
    """Reads every source channel, orders through ``core``, writes every output channel."""

    def __init__(
        self,
        inputs: Sequence[tuple[str, Channel[SourceItem]]],
        outputs: Sequence[Output],
        core: OrderingCore,
        on_positions: Callable[[list[tuple[int, object]]], None] | None = None,
    ) -> None:
        """``on_positions`` gets (seq, position) for each chunk with a position that has left,
        in seq order: the position may be committed once every sink has written that seq."""
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.core = core
        self.on_positions = on_positions
        self.seq = 0
        self.records_in = {name: 0 for name, _ in self.inputs}
        """Records read, by source name."""
        for name, _ in self.inputs:
            core.add_source(name)
        self.records_out = 0

    async def run(self) -> None:
        """Merge until every source has ended, then close the outputs."""
        reads: dict[asyncio.Task[SourceItem], tuple[str, Channel[SourceItem]]] = {}
        try:
            for name, channel in self.inputs:
                reads[self._read(name, channel)] = (name, channel)
            while reads or self.core.held:
                timeout = self._timeout()
                if reads:
                    done, _ = await asyncio.wait(
                        reads, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    done = set()
                    await asyncio.sleep(timeout or 0)
                now = time.monotonic()
                for task in done:
                    name, channel = reads.pop(task)
                    if self._take(name, task, channel, now):
                        reads[self._read(name, channel)] = (name, channel)
                await self._send(self.core.pop_ready(now))
                if not self.outputs:
                    log.debug("every sink has stopped; the merge stops too")
                    return
        finally:
            for task in reads:
                task.cancel("the merge is stopping")
            await asyncio.gather(*reads, return_exceptions=True)
            for output in self.outputs:
                output.channel.close()

    def _read(self, name: str, channel: Channel[SourceItem]) -> asyncio.Task[SourceItem]:
        return asyncio.create_task(channel.get(), name=f"merge:read:{name}")

    def _take(
        self,
        source: str,
        task: asyncio.Task[SourceItem],
        channel: Channel[SourceItem],
        now: float,
    ) -> bool:
        """Hand a finished read, and what else waits in its channel, to the core; False once
        the source has ended."""
        try:
            item: SourceItem | None = task.result()
        except EndOfStream:
            self.core.end_source(source)
            return False
        drained = 0
        while item is not None:
            if isinstance(item, Announce):
                self.core.announce(source, item, now)
            else:
                self.records_in[source] += len(item.records)
                self.core.push(source, item, now)
            drained += 1
            item = channel.get_nowait() if drained <= DRAIN else None
        return True

    def _timeout(self) -> float | None:
        now = time.monotonic()
        deadline = self.core.next_deadline(now)
        if deadline is None:
            return None
        return max(0.0, deadline - now)

    async def _send(self, released: Batch) -> None:
        seq = self.seq
        for record in released:
            seq += 1
            record.seq = seq
        self.seq = seq
        completed = self.core.completed
        if completed:
            if self.on_positions is not None:
                # A chunk whose last record was dropped (late) is done as of now.
                marks = [(record.seq or seq, position) for record, position in completed]
                marks.sort(key=lambda mark: mark[0])
                self.on_positions(marks)
            completed.clear()
        for start in range(0, len(released), OUTPUT_BATCH):
            await self._send_batch(released[start : start + OUTPUT_BATCH])

    async def _send_batch(self, batch: Batch) -> None:
        self.records_out += len(batch)
        for output in list(self.outputs):
            try:
                await output.channel.put(batch)
            except ChannelClosed:
                log.debug("sink %s has stopped reading", output.name)
                self.outputs.remove(output)
