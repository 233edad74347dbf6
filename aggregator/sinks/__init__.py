"""Sinks: each takes batches of merged records from its channel and writes them somewhere."""

from typing import Protocol

from aggregator.flow.channel import Channel
from aggregator.flow.record import Batch


class Sink(Protocol):
    """A running output. ``open`` creates what it writes to; ``run`` writes every batch until its
    channel ends, then flushes. A sink whose reader has gone (a closed pipe) returns early."""

    name: str
    records_out: int
    delivered_seq: int
    """The seq of the last record written and flushed (or filtered out): file positions up to
    it may be checkpointed."""
    gone: bool
    """True once the sink's reader has gone (stdout closed): it no longer holds checkpoints."""

    async def open(self) -> None: ...

    async def run(self, inp: Channel[Batch]) -> None: ...
