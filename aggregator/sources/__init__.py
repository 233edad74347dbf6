"""Sources: each reads one kind of input and puts what it read into its channel.

Every source is built the same way, ``Class(name, config, context)``, from the registry below,
and has the same life cycle: ``open`` (bind, check), ``run`` (read until the input ends or the
task is cancelled), ``close`` (release what ``open`` took if ``run`` never will), ``counters``.
"""

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aggregator.flow.channel import Channel
from aggregator.flow.chunk import SourceItem
from aggregator.metrics import Counters
from aggregator.parse.needs import Needs

if TYPE_CHECKING:
    from aggregator.flow.checkpoints import Checkpointer, Checkpoints
    from aggregator.parse.pool import ParsePool
    from aggregator.sources.file.identity import Position


@dataclass(frozen=True)
class SourceContext:
    """What the pipeline gives every source it builds."""

    needs: Needs = "everything"
    """What the sinks need the codec to find (``aggregator.parse.worker.Needs``)."""
    parse_pool: "ParsePool | None" = None
    """Where large reads are parsed; None: on the event loop."""
    checkpoints: "Checkpointer[Position] | None" = None
    """File positions saved by an earlier run (``aggregator run``); None: start afresh."""
    books: "Checkpoints | None" = None
    """Where a source that keeps positions of its own registers its book (a nats source: the
    messages it took, acknowledged once the sinks wrote them)."""
    state_dir: Path = Path(".aggregator")
    """Where such a source keeps its state (``[aggregator] state_dir``)."""


class Source(Protocol):
    """A running input. ``open`` binds or checks what it needs, so that a bad port or path is
    reported before anything starts; ``run`` reads until its input ends or it is cancelled.
    The first item ``run`` puts is an ``Announce`` of the origins it is about to read."""

    name: str

    async def open(self) -> None:
        """Bind a port, check a path: nothing is read yet."""

    async def run(self, out: Channel[SourceItem]) -> None: ...

    async def close(self) -> None:
        """Release what ``open`` took (a socket, a socket file), if ``run`` never will."""

    def counters(self) -> Counters:
        """For /metrics: what this source has counted (``aggregator.telemetry`` names them)."""
        return {}


SOURCE_TYPES: dict[str, str] = {
    "file": "aggregator.sources.file:FileSource",
    "stdin": "aggregator.sources.stdin:StdinSource",
    "tcp": "aggregator.sources.stream:TcpSource",
    "unix": "aggregator.sources.unix:unix_source",
    "udp": "aggregator.sources.datagram:UdpSource",
    "nats": "aggregator.sources.nats:NatsSource",
    "websocket": "aggregator.sources.upstream:WebSocketSource",
}
"""Each ``type`` of source, and where its class is: imported only when a config uses it."""


def build_source(name: str, config: Any, context: SourceContext) -> Source:
    """The source that ``config`` (a validated ``[sources.NAME]`` table) describes."""
    module, _, attribute = SOURCE_TYPES[config.type].partition(":")
    source: Source = getattr(importlib.import_module(module), attribute)(name, config, context)
    return source
