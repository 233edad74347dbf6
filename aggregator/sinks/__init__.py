"""Sinks: each takes batches of merged records from its channel and writes them somewhere.

Every sink is built the same way, ``Class(name, config, context)``, from the registry below,
and has the life cycle of every part (``aggregator.parts``).
"""

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from aggregator.parse.needs import Needs
from aggregator.parts import Part, build

if TYPE_CHECKING:  # a parse worker imports the encoders in this package, and no asyncio
    from aggregator.flow.channel import Channel
    from aggregator.record.record import Batch
    from aggregator.record.verdicts import Judged
    from aggregator.telemetry import Telemetry


class SinkContext(NamedTuple):
    """What the pipeline gives every sink it builds."""

    source_names: Sequence[str] = ()
    """The sources in config order: text output gives each its colour by its index."""
    origin_bases: Mapping[str, str] = MappingProxyType({})
    """For each source that follows several files, the directory its files are named from
    in text (``SOURCE[FILE]``, see ``aggregator.record.formats.origin_label``)."""
    telemetry: "Telemetry | None" = None
    """Health and metrics of the pipeline, for a sink that serves /healthz and /metrics."""
    judged: "Judged | None" = None
    """Where a sink registers a ``where`` of its filter for the decoders to judge
    (``aggregator.record.verdicts``); None: each sink tests its records itself."""


class Sink(Part, Protocol):
    """A running output: ``run`` writes every batch until its channel ends, then flushes. A
    sink whose reader has gone (a closed pipe) returns early."""

    records_out: int
    delivered_seq: int
    """The seq of the last record written and flushed (or filtered out): file positions up to
    it may be checkpointed."""
    gone: bool
    """True once the sink's reader has gone (stdout closed): it no longer holds checkpoints."""
    needs: Needs
    """What this sink shows or filters on: what the codecs must find for it."""

    async def run(self, inp: "Channel[Batch]") -> None: ...

    def reopen(self) -> None:
        """Reopen output files before the next write (SIGHUP); nothing for most sinks."""


SINK_TYPES: dict[str, str] = {
    "stdout": "aggregator.sinks.stdout:StdoutSink",
    "file": "aggregator.sinks.file:FileSink",
    "websocket": "aggregator.web.stream:WebSocketSink",
    "tcp": "aggregator.sinks.tcp:TcpSink",
    "nats": "aggregator.sinks.nats:NatsSink",
    "alert": "aggregator.sinks.alert:AlertSink",
    "otlp": "aggregator.sinks.otlp:OtlpSink",
}
"""Each ``type`` of sink, and where its class is."""


def build_sink(name: str, config: Any, context: SinkContext) -> Sink:
    """The sink that ``config`` (a validated ``[sinks.NAME]`` table) describes."""
    sink: Sink = build(SINK_TYPES, name, config, context)
    return sink
