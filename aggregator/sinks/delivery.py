"""The one delivery loop of the sinks that write bytes (stdout, file, tcp).

Take a batch from the channel, filter and encode it, write what passes, then move
``delivered_seq`` past the batch (checkpoints wait for it): a batch filtered out entirely is
delivered too. Each sink says only how it writes (``write``: all of it, retrying as it must,
holding the pipeline meanwhile), what it does when the stream goes quiet (``quiet_for`` and
``when_quiet``: the file sink's fsync), and how it starts and ends. A sink whose reader goes
away (``| head``) names the errors that say so (``gone_errors``) and ends quietly.
"""

import asyncio

from aggregator.flow.channel import Channel, EndOfStream
from aggregator.parse.needs import Needs
from aggregator.record.record import Batch
from aggregator.sinks import Sink
from aggregator.sinks.encoded import FilteredEncoder


class DeliveringSink(Sink):
    """A sink that writes its stream as bytes: ``run`` is the loop; subclasses write."""

    name: str
    records_out: int = 0
    delivered_seq: int = 0
    gone: bool = False
    needs: Needs
    encode: FilteredEncoder
    gone_errors: tuple[type[OSError], ...] = ()
    """Errors from ``write`` that mean the reader has gone: the sink ends, and holds nothing."""
    writes_now: bool = False
    """Whether the sink may write at once (``can_write_now``, ``write_now``) a batch put while
    it waits for one, in the putter's turn (the merge's task, or a source's whose put made
    the merge's step): one task's wake less a batch."""

    async def run(self, inp: Channel[Batch]) -> None:
        try:
            await self.start(inp)
            while True:
                wait = self.quiet_for()
                if wait is None and self.writes_now:
                    inp.hand_to(self._deliver_now)
                try:
                    batch = await (inp.get() if wait is None else self._next_batch(inp, wait))
                except EndOfStream:
                    return
                finally:
                    inp.hand_to(None)
                if batch is None:
                    await self.when_quiet()
                    continue
                encoded = self.encode(batch)
                if encoded is not None:
                    await self.write(encoded[0])
                    self.records_out += encoded[1]
                self.delivered_seq = batch[-1].seq
        except self.gone_errors:
            self.reader_gone(inp)
        finally:
            await self.finish()

    def _deliver_now(self, batch: Batch) -> bool:
        """A batch put while this sink waited for one: filtered, encoded and written at once,
        if the sink can write without waiting (``write_now``); else False, and the loop above
        takes it as usual."""
        if self.gone or not self.can_write_now():
            return False
        try:
            encoded = self.encode(batch)
        except Exception:  # raised again in the loop, in this sink's own task
            return False
        if encoded is not None:
            try:
                self.write_now(encoded[0])
            except Exception:  # met again by ``write`` in the loop above, in this sink's task
                return False
            self.records_out += encoded[1]
        self.delivered_seq = batch[-1].seq
        return True

    def can_write_now(self) -> bool:
        """Whether ``write_now`` would take bytes at once (none by default: every write waits
        its turn in ``write``)."""
        return False

    def write_now(self, data: bytes) -> None:
        """Write ``data`` without waiting; only after ``can_write_now`` said True."""
        raise NotImplementedError

    async def _next_batch(self, inp: Channel[Batch], wait: float) -> Batch | None:
        """The next batch; None once the stream has been quiet for ``wait`` seconds."""
        try:
            async with asyncio.timeout(wait):
                return await inp.get()
        except TimeoutError:
            return None

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` (whole lines), retrying while the sink retries; an error
        raised here ends the sink (a ``gone_errors`` one quietly)."""
        raise NotImplementedError

    async def start(self, inp: Channel[Batch]) -> None:
        """Before the first batch (open a writer, watch the reader): nothing by default."""

    async def finish(self) -> None:
        """After the last batch, or an error: flush and release what the sink holds."""
        await self.close()

    def quiet_for(self) -> float | None:
        """Seconds without a batch after which ``when_quiet`` runs; None: never."""
        return None

    async def when_quiet(self) -> None:
        """The stream has been quiet for ``quiet_for()`` seconds (flush, say)."""

    def reader_gone(self, inp: Channel[Batch]) -> None:
        """The reader has gone: nothing more is delivered here, and the channel is closed so
        that the pipeline does not wait for this sink."""
        self.gone = True
        inp.close()
