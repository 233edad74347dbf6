"""Sources: each reads one kind of input and puts batches of records into its channel."""

from typing import Protocol

from aggregator.channel import Channel
from aggregator.chunk import SourceItem


class Source(Protocol):
    """A running input. ``open`` binds or checks what it needs, so that a bad port or path is
    reported before anything starts; ``run`` reads until its input ends or it is cancelled.
    The first item ``run`` puts is an ``Announce`` of the origins it is about to read."""

    name: str

    async def open(self) -> None: ...

    async def run(self, out: Channel[SourceItem]) -> None: ...
