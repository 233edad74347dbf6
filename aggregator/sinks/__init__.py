"""Sinks: each takes batches of merged records from its channel and writes them somewhere.

Every sink is built the same way, ``Class(name, config, context)``, from the registry below,
and has the same life cycle as a source: ``open`` (create the file, bind the port), ``run``
(write every batch until the channel ends, then flush), ``close`` (release what ``open`` took,
if ``run`` never will), ``counters``.
"""

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aggregator.flow.channel import Channel
from aggregator.flow.record import Batch
from aggregator.metrics import Counters
from aggregator.parse.needs import Needs

if TYPE_CHECKING:
    from aggregator.web.server import Telemetry


@dataclass(frozen=True)
class SinkContext:
    """What the pipeline gives every sink it builds."""

    source_names: Sequence[str] = ()
    """The sources in config order: text output gives each its colour by its index."""
    telemetry: "Telemetry | None" = None
    """Health and metrics of the pipeline, for a sink that serves /healthz and /metrics."""


class Sink(Protocol):
    """A running output. A sink whose reader has gone (a closed pipe) returns early."""

    name: str
    records_out: int
    delivered_seq: int
    """The seq of the last record written and flushed (or filtered out): file positions up to
    it may be checkpointed."""
    gone: bool
    """True once the sink's reader has gone (stdout closed): it no longer holds checkpoints."""
    needs: Needs
    """What this sink shows or filters on: what the codecs must find for it."""

    async def open(self) -> None:
        """Create what is written to, so that a sink that cannot start stops the program
        before anything is read."""

    async def run(self, inp: Channel[Batch]) -> None: ...

    async def close(self) -> None:
        """Release what ``open`` took, if ``run`` never will (a failed start)."""

    def reopen(self) -> None:
        """Reopen output files before the next write (SIGHUP); nothing for most sinks."""

    def counters(self) -> Counters:
        """For /metrics: what this sink has counted (``aggregator.telemetry`` names them)."""
        return {}


SINK_TYPES: dict[str, str] = {
    "stdout": "aggregator.sinks.stdout:StdoutSink",
    "file": "aggregator.sinks.file:FileSink",
    "websocket": "aggregator.web.stream:WebSocketSink",
    "tcp": "aggregator.sinks.tcp:TcpSink",
    "nats": "aggregator.sinks.nats:NatsSink",
}
"""Each ``type`` of sink, and where its class is: imported only when a config uses it."""


def build_sink(name: str, config: Any, context: SinkContext) -> Sink:
    """The sink that ``config`` (a validated ``[sinks.NAME]`` table) describes."""
    module, _, attribute = SINK_TYPES[config.type].partition(":")
    sink: Sink = getattr(importlib.import_module(module), attribute)(name, config, context)
    return sink
