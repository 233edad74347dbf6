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
from aggregator.flow.chunk import Announce, Chunk, SourceItem
from aggregator.flow.future import place_future
from aggregator.flow.ordering import OrderingCore
from aggregator.record.formats import rfc3339_micros
from aggregator.record.record import Batch

log = logging.getLogger(__name__)

OUTPUT_BATCH = 4096
"""Most records in one batch to the sinks: sink channels count batches, so this bounds them."""
FUTURE_REPORT_INTERVAL = 60.0
"""Seconds between two reports on stderr of records from the future, per source."""


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
        future_grace: float = 600.0,
    ) -> None:
        """``on_positions`` gets (seq, position) for each chunk with a position that has left,
        in seq order: the position may be committed once every sink has written that seq.
        A record stamped more than ``future_grace`` seconds after it is taken here is placed
        at that moment (``aggregator.flow.future``): here, since every source's records pass."""
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
        self.future: dict[str, int] = {}
        """Records placed at the time they were read (from the future), by source name."""
        self._grace = round(future_grace * 1_000_000)
        self._future_reported: dict[str, float] = {}

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
                    if self._take(name, task, now):
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

    def _take(self, source: str, task: asyncio.Task[SourceItem], now: float) -> bool:
        """Hand a finished read to the core; False once the source has ended."""
        try:
            item = task.result()
        except EndOfStream:
            self.core.end_source(source)
            return False
        if isinstance(item, Announce):
            self.core.announce(source, item, now)
        else:
            self.records_in[source] += len(item.records)
            self._place_future(source, item, now)
            self.core.push(source, item, now)
        return True

    def _place_future(self, source: str, chunk: Chunk, now: float) -> None:
        """Records (and a remote lane's watermark) from the future, placed at the time they
        were read: they must not rank after everything still to come."""
        wall = time.time_ns() // 1000
        placed = place_future(chunk.records, wall, self._grace)
        if chunk.watermark is not None and chunk.watermark > wall + self._grace:
            chunk.watermark = wall
        if not placed:
            return
        self.future[source] = self.future.get(source, 0) + placed
        reported = self._future_reported.get(source)
        if reported is None or now >= reported + FUTURE_REPORT_INTERVAL:
            self._future_reported[source] = now
            claimed = max(record.ts_claimed for record in chunk.records)
            log.warning("sources.%s: %d records stamped in the future (up to %s) are placed at "
                        "the time they were read (future_grace)",
                        source, placed, rfc3339_micros(claimed))  # fmt: skip

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
