"""The merge: fan-in from every source in completion order, one ordered stream out.

The waiting is asyncio's (``asyncio.wait(..., FIRST_COMPLETED)`` over one pending read per
source channel), the ordering is ``OrderingCore``'s, and what leaves is numbered with ``seq``
and handed to every sink's channel as one batch.

Inputs and outputs may come and go while it runs (a reload): an input is added at once, and
leaves by ending (its source stops; ``gone`` says when the last of its records has left); the
outputs change between two batches (``change_outputs``), so that a replaced sink's successor
takes on exactly after the last batch its predecessor got.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aggregator.flow.channel import Channel, ChannelClosed, EndOfStream
from aggregator.flow.chunk import Announce, Chunk, SourceItem
from aggregator.flow.future import place_future
from aggregator.flow.ordering import OrderingCore, number_records
from aggregator.record.formats import rfc3339_micros
from aggregator.record.record import Batch

log = logging.getLogger(__name__)

OUTPUT_BATCH = 4096
"""Most records in one batch to the sinks: sink channels count batches, so this bounds them."""
DRAIN = 1024
"""Most items taken from one source's channel at a time, beyond the one its read returned:
many small chunks (a remote source's messages) cost one release, whose cost grows with lanes."""
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
        self.holds = 0
        """While above 0, the merge goes on without inputs (a reload is replacing them)."""
        self._arrivals: list[tuple[str, Channel[SourceItem]]] = []
        self._output_changes: list[tuple[list[str], list[Output], asyncio.Future[int]]] = []
        self._leaving: dict[str, asyncio.Future[int]] = {}
        self._reading: set[str] = set()
        self._wake = asyncio.Event()
        self._ended = False
        self.future: dict[str, int] = {}
        """Records placed at the time they were read (from the future), by source name."""
        self._grace = round(future_grace * 1_000_000)
        self._future_reported: dict[str, float] = {}

    def add_input(self, name: str, channel: Channel[SourceItem]) -> None:
        """Merge ``channel`` too, as the source ``name`` (not one still being merged)."""
        self.core.add_source(name)
        self.records_in.setdefault(name, 0)
        self.inputs.append((name, channel))
        self._arrivals.append((name, channel))
        self._wake.set()

    def gone(self, name: str) -> "asyncio.Future[int]":
        """Done, with the seq of the last record sent until then, once the input ``name`` has
        ended and the last of its records has left the merge."""
        future = self._leaving.get(name)
        if future is None:
            future = self._leaving[name] = asyncio.get_running_loop().create_future()
        self._wake.set()
        return future

    def change_outputs(self, remove: Sequence[str], add: Sequence[Output]) -> "asyncio.Future[int]":
        """Between two batches: close the outputs named ``remove`` (their sinks write what
        they hold and end) and send to ``add`` from then on. Done, with the seq of the last
        record sent before the change, once made."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._output_changes.append((list(remove), list(add), future))
        self._wake.set()
        if self._ended:  # nothing more will be sent: the new outputs end at once
            self._apply_output_changes()
            for output in add:
                output.channel.close()
        return future

    def wake(self) -> None:
        """Look again at what may have changed (a hold released)."""
        self._wake.set()

    async def run(self) -> None:
        """Merge until every source has ended, then close the outputs."""
        reads: dict[asyncio.Task[Any], tuple[str, Channel[SourceItem]]] = {}
        self._arrivals = list(self.inputs)
        waker: asyncio.Task[Any] | None = None
        try:
            while True:
                for name, channel in self._arrivals:
                    self._reading.add(name)
                    reads[self._read(name, channel)] = (name, channel)
                self._arrivals.clear()
                self._apply_output_changes()
                self._settle_leaving()
                if not (reads or self.core.held or self.holds):
                    break
                if waker is None or waker.done():
                    self._wake.clear()
                    waker = asyncio.create_task(self._wake.wait(), name="merge:wake")
                timeout = self._timeout()
                if not reads and self.core.held and timeout is None:
                    timeout = 0.0
                done, _ = await asyncio.wait(
                    [*reads, waker], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                now = time.monotonic()
                for task in done:
                    if task is waker:
                        continue
                    name, channel = reads.pop(task)
                    if self._take(name, task, channel, now):
                        reads[self._read(name, channel)] = (name, channel)
                    else:
                        self._reading.discard(name)
                await self._send(self.core.pop_ready(now))
                if not self.outputs and not self.holds:
                    log.debug("every sink has stopped; the merge stops too")
                    return
        finally:
            pending = [*reads, *([waker] if waker is not None else [])]
            for task in pending:
                task.cancel("the merge is stopping")
            await asyncio.gather(*pending, return_exceptions=True)
            self._ended = True
            self._apply_output_changes()
            for output in self.outputs:
                output.channel.close()
            self._settle_leaving(ended=True)

    def _apply_output_changes(self) -> None:
        for remove, add, future in self._output_changes:
            for output in [output for output in self.outputs if output.name in remove]:
                self.outputs.remove(output)
                output.channel.close()
            self.outputs.extend(add)
            future.set_result(self.seq)
        self._output_changes.clear()

    def _settle_leaving(self, ended: bool = False) -> None:
        """Answer ``gone`` for the inputs that have ended and left nothing in the core."""
        for name, future in list(self._leaving.items()):
            if future.done():
                del self._leaving[name]
            elif ended or (name not in self._reading and self.core.remove_source(name)):
                self.inputs = [(other, c) for other, c in self.inputs if other != name]
                del self._leaving[name]
                future.set_result(self.seq)

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
                self._place_future(source, item, now)
                self.core.push(source, item, now)
            drained += 1
            item = channel.get_nowait() if drained <= DRAIN else None
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
        seq = self.seq = number_records(released, self.seq)
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
                if output in self.outputs:
                    self.outputs.remove(output)
