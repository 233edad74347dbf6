"""The merge: fan-in from every source in completion order, one ordered stream out.

The waiting is one future, set by whichever source channel is put into first (each channel
calls the merge back: ``Channel.listen``) or by a change; the ordering is ``OrderingCore``'s,
and what leaves is numbered with ``seq`` and handed to every sink's channel as one batch.

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
from functools import partial

from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.chunk import Announce, Chunk, SourceItem
from aggregator.flow.future import place_future
from aggregator.flow.gathering import after_puts
from aggregator.flow.ordering import OrderingCore, number_records
from aggregator.record.formats import rfc3339_micros
from aggregator.record.record import Batch

log = logging.getLogger(__name__)

OUTPUT_BATCH = 2048
"""Most records in one batch to the sinks: sink channels count batches, so this bounds them
(4096 raised a json catch-up's peak RSS past its bound: bench/README.md)."""
DRAIN = 1024
"""Most items beyond the first taken from one source's channel at a time (``_take``):
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
        self._reading: dict[str, Channel[SourceItem]] = {}
        """The inputs still read (not yet ended), each listened to (``Channel.listen``)."""
        self._ready: dict[str, Channel[SourceItem]] = {}
        """Inputs with something put (or closed) since last taken from."""
        self._waiter: asyncio.Future[None] | None = None
        self._poked = False
        self._timer: asyncio.TimerHandle | None = None
        self._unsent: Batch = []  # numbered in ``_step_now``, left to the task to send
        self._failure: Exception | None = None  # raised in ``_step_now``, for the task
        self._stepping = False  # in ``_step_now``: a put it causes is left to the task
        self._gathered = False
        """A step is asked for after the puts being gathered (``after_puts``): the other puts
        of that gathering need not ask again (each asking is an interpreted call a put)."""
        self._timer_at = 0.0  # when the timer rings (monotonic seconds)
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
        self._poke()

    def gone(self, name: str) -> "asyncio.Future[int]":
        """Done, with the seq of the last record sent until then, once the input ``name`` has
        ended and the last of its records has left the merge."""
        future = self._leaving.get(name)
        if future is None:
            future = self._leaving[name] = asyncio.get_running_loop().create_future()
        self._poke()
        return future

    def change_outputs(self, remove: Sequence[str], add: Sequence[Output]) -> "asyncio.Future[int]":
        """Between two batches: close the outputs named ``remove`` (their sinks write what
        they hold and end) and send to ``add`` from then on. Done, with the seq of the last
        record sent before the change, once made."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._output_changes.append((list(remove), list(add), future))
        self._poke()
        if self._ended:  # nothing more will be sent: the new outputs end at once
            self._apply_output_changes()
            for output in add:
                output.channel.close()
        return future

    def wake(self) -> None:
        """Look again at what may have changed (a hold released)."""
        self._poke()

    async def run(self) -> None:
        """Merge until every source has ended, then close the outputs."""
        self._arrivals = list(self.inputs)
        try:
            while True:
                self._poked = False
                for name, channel in self._arrivals:
                    self._reading[name] = channel
                    channel.listen(partial(self._mark_ready, name, channel))
                    self._ready[name] = channel  # it may hold items already
                self._arrivals.clear()
                self._apply_output_changes()
                self._settle_leaving()
                if not (self._reading or self.core.held or self.holds):
                    break
                if not self._ready and not self._poked:
                    deadline = self.core.next_deadline(time.monotonic())
                    if not self._reading and self.core.held and deadline is None:
                        deadline = 0.0  # nothing can come: release what is held now
                    await self._wait(deadline)
                if self._failure is not None:
                    raise self._failure
                if self._unsent:  # released by a step made in a put (``_step_now``)
                    unsent, self._unsent = self._unsent, []
                    await self._send_out(unsent)
                now = time.monotonic()
                if self._ready:
                    ready, self._ready = self._ready, {}
                    for name, channel in ready.items():
                        if not self._take(name, channel, now):
                            channel.listen(None)
                            del self._reading[name]
                await self._send(self.core.pop_ready(now))
                if not self.outputs and not self.holds:
                    log.debug("every sink has stopped; the merge stops too")
                    return
        finally:
            for channel in self._reading.values():
                channel.listen(None)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._reading.clear()
            self._ready.clear()
            self._ended = True
            self._apply_output_changes()
            for output in self.outputs:
                output.channel.close()
            self._settle_leaving(ended=True)

    def _mark_ready(self, name: str, channel: Channel[SourceItem]) -> None:
        """A put into (or the close of) the input ``name``'s channel: take from it, at once
        if the merge waits with nothing else to do (``_step_now``), else in its task. Never
        at once in a catch-up: the step (an exact merge of thousands of records) would hold
        up the putting source, which reads and parses next (bench/README.md, session 10).
        Puts gathered in one callback (``Gathering``: inotify's) make one step, after the last."""
        self._ready[name] = channel
        if channel.closed:
            self._poke()
        elif self._gathered:
            return  # a later put of the same gathering: its step is asked for already
        elif after_puts(self._step_gathered):
            self._gathered = True  # ``_step_gathered`` looks whether it may step, once
        elif not self._can_step_now():
            self._poke()
        elif len(self._ready) == 1:
            self._step_safely()
        else:
            self._poke()

    def _step_gathered(self) -> None:
        """After the puts of one callback: one step for every input they made ready."""
        self._gathered = False
        if not self._ready:
            return
        for channel in self._ready.values():
            if channel.closed:
                self._poke()
                return
        if not self._can_step_now():
            self._poke()
            return
        self._step_safely()

    def _can_step_now(self) -> bool:
        """Whether a put may be merged in the putter's turn: the task waits with nothing
        else to do (no arrival, change, leaving, catch-up), and every output has room."""
        if not (
            self._waiter is not None
            and not self._waiter.done()
            and not self._poked
            and not self._stepping
            and not self.core.catching_up
            and self.outputs
            and not (self._arrivals or self._output_changes or self._leaving)
        ):
            return False
        # A loop, not all(): no generator is made for each live line.
        for output in self.outputs:  # noqa: SIM110
            if not output.channel.room:
                return False
        return True

    def _step_safely(self) -> None:
        """``_step_now``, its error left to the merge's own task (not the putter's)."""
        self._stepping = True
        try:
            self._step_now()
        except Exception as error:
            self._failure = error
            self._poke()
        finally:
            self._stepping = False

    def _step_now(self) -> None:
        """One round of ``run`` made in a source's put, while the merge task waits: take,
        release, and hand what leaves to the outputs (each has room). A live line so costs
        no wake of the merge's task (bench/README.md, "The live line, session 9"); what
        cannot be done here (a release larger than a batch, more to drain) is left to it."""
        now = time.monotonic()
        ready, self._ready = self._ready, {}
        for name, channel in ready.items():
            self._take(name, channel, now)  # not closed: it goes on
        released = self._number(self.core.pop_ready(now))
        if len(released) > OUTPUT_BATCH:
            self._unsent = released
            self._poke()
            return
        if released:
            self.records_out += len(released)
            for output in list(self.outputs):
                try:
                    output.channel.put_nowait(released)
                except ChannelClosed:
                    log.debug("sink %s has stopped reading", output.name)
                    self.outputs.remove(output)
        if self._ready or not self.outputs:
            self._poke()  # more to drain, or nobody left to send to: the task decides
            return
        deadline = self.core.next_deadline(now)
        if deadline is not None:
            self._arm(deadline)

    def _poke(self) -> None:
        """Wake the merge, or, while it is busy, have it look again before it waits."""
        self._poked = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, deadline: float | None) -> None:
        """Until a poke (an input's put, a change) or the monotonic time ``deadline``: one
        future, not a task per input read (a live line's cost: bench/README.md). The timer
        stays armed across waits while the deadline does not come sooner."""
        if deadline is not None:
            self._arm(deadline)
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _arm(self, deadline: float) -> None:
        """Poke at ``deadline`` (monotonic seconds), unless the timer rings sooner already."""
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            delay = max(0.0, deadline - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._ring)

    def _ring(self) -> None:
        self._timer = None
        self._poke()

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

    def _take(self, source: str, channel: Channel[SourceItem], now: float) -> bool:
        """Hand what waits in the channel (up to ``DRAIN`` items) to the core; False once
        the source has ended."""
        items = channel.get_many(DRAIN + 1)
        for item in items:
            if isinstance(item, Announce):
                self.core.announce(source, item, now)
            else:
                self.records_in[source] += len(item.records)
                self._place_future(source, item, now)
                self.core.push(source, item, now)
        if len(items) > DRAIN:
            self._ready[source] = channel  # more may wait: taken in the next round
        elif channel.ended:
            self.core.end_source(source)
            return False
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

    async def _send(self, released: Batch) -> None:
        await self._send_out(self._number(released))

    def _number(self, released: Batch) -> Batch:
        """``released`` numbered (``seq``), and the positions of the chunks it completes
        given to ``on_positions``."""
        seq = self.seq = number_records(released, self.seq)
        completed = self.core.completed
        if completed:
            if self.on_positions is not None:
                # A chunk whose last record was dropped (late) is done as of now.
                marks = [(record.seq or seq, position) for record, position in completed]
                marks.sort(key=lambda mark: mark[0])
                self.on_positions(marks)
            completed.clear()
        return released

    async def _send_out(self, released: Batch) -> None:
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
