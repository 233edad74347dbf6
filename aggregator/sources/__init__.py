"""Sources: each reads one kind of input and puts what it read into its channel.

Every source is built the same way, ``Class(name, config, context)``, from the registry below,
and has the life cycle of every part (``aggregator.parts``).
"""

from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from aggregator.parse.needs import Needs
from aggregator.parts import Part, build

if TYPE_CHECKING:
    from aggregator.flow.channel import Channel
    from aggregator.flow.checkpoints import Checkpoints
    from aggregator.flow.chunk import SourceItem
    from aggregator.parse.pool import ParsePool
    from aggregator.record.verdicts import Judged


class SourceContext(NamedTuple):
    """What the pipeline gives every source it builds."""

    needs: Needs
    """What the sinks need the codec to find (``aggregator.parse.worker.Needs``)."""
    parse_pool: "ParsePool | None"
    """Where large reads are parsed; None: on the event loop."""
    keep_positions: bool
    """Resume from the positions an earlier run saved, and save them (``aggregator run``);
    False: start afresh (``tail``)."""
    books: "Checkpoints | None"
    """Where a source that keeps positions registers its book (file offsets; a nats source:
    the messages it took, acknowledged once the sinks wrote them)."""
    state_dir: Path
    """Where such a source keeps its state (``[aggregator] state_dir``)."""
    stall_after: float
    """Seconds unread input may wait on a reader that does not move before it is named
    (``[aggregator] stall_after``)."""
    origin_bases: MutableMapping[str, str]
    """Where a source that follows several files puts the directory its records' files are
    named from in text, by its name (the sinks read the same mapping: ``SinkContext``)."""
    judged: "Judged | None"
    """The sinks' ``where``s the decoders judge, and who can complete a record
    (``aggregator.record.verdicts.Judged``); None: none judged."""


class Source(Part, Protocol):
    """A running input: ``run`` reads until its input ends or it is cancelled. The first item
    it puts is an ``Announce`` of the origins it is about to read."""

    async def run(self, out: "Channel[SourceItem]") -> None: ...


SOURCE_TYPES: dict[str, str] = {
    "file": "aggregator.sources.file:FileSource",
    "stdin": "aggregator.sources.stdin:StdinSource",
    "tcp": "aggregator.sources.stream:TcpSource",
    "unix": "aggregator.sources.unix:unix_source",
    "udp": "aggregator.sources.datagram:UdpSource",
    "nats": "aggregator.sources.nats:NatsSource",
    "websocket": "aggregator.sources.upstream:WebSocketSource",
}
"""Each ``type`` of source, and where its class is."""


def build_source(name: str, config: Any, context: SourceContext) -> Source:
    """The source that ``config`` (a validated ``[sources.NAME]`` table) describes."""
    source: Source = build(SOURCE_TYPES, name, config, context)
    return source
