"""Builds the parts a config describes and runs them: sources → merge → sinks.

Building: the sinks first (what they show decides what the codecs must find), then the
sources; each part gets what it needs at construction (``SinkContext``, ``SourceContext``).
Start order: the sinks and sources ``open`` (bind ports, create files), so that a part that
cannot start is reported before any data moves; if one fails, all are closed again. Stop order
starts at the sources: they stop reading, the merge drains what it holds, the sinks flush, and
everything ends within ``DRAIN_TIMEOUT`` or the program says which part did not stop.
"""

import asyncio
import logging
import os
import time
from collections.abc import Sequence

from aggregator.config import Config, FileSourceConfig
from aggregator.errors import AggregatorError, InputMissing
from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.checkpoints import Checkpointer, Checkpoints
from aggregator.flow.chunk import SourceItem
from aggregator.flow.merge import Merge, Output
from aggregator.flow.ordering import OrderingCore
from aggregator.parse.needs import NEEDS, Needs
from aggregator.parse.pool import ParsePool, default_workers
from aggregator.record.record import Batch
from aggregator.sinks import Sink, SinkContext, build_sink
from aggregator.sources import Source, SourceContext, build_source
from aggregator.sources.file.discovery import fixed_prefix
from aggregator.sources.file.identity import Position
from aggregator.sources.file.resume import CheckpointStore
from aggregator.telemetry.pipeline import FlowCounters, PipelineTelemetry

log = logging.getLogger(__name__)

SOURCE_CHANNEL_SIZE = 16
"""Chunks a source may have waiting for the merge (a chunk is at most one 256 KiB read)."""
SINK_CHANNEL_SIZE = 4
"""Batches (of at most ``OUTPUT_BATCH`` records) a sink may have waiting; when full, the merge
waits, and then the sources."""
DRAIN_TIMEOUT = 5.0
"""Seconds the pipeline has, after a stop is asked, to drain, flush and end."""


class DrainTimeout(AggregatorError):
    """The pipeline did not end within ``DRAIN_TIMEOUT`` after a stop was asked."""


def origin_bases(config: Config) -> dict[str, str]:
    """For each file source that may follow several files (a glob, several paths), the
    directory its paths share: text names its records' files from there (``""`` for a source
    named after its glob: the file's path alone; see ``sinks.formats.origin_label``)."""
    bases = {}
    for name, source in config.sources.items():
        if not isinstance(source, FileSourceConfig):
            continue
        paths = source.paths
        if len(paths) > 1 or any(char in path for path in paths for char in "*?["):
            if name in paths:  # named after its glob (`tail 'logs/*.log'`): the path says all
                bases[name] = ""
            else:
                prefixes = [os.path.abspath(fixed_prefix(path)) for path in paths]
                bases[name] = os.path.commonpath(prefixes)
    return bases


def needs_of(sinks: Sequence[Sink]) -> Needs:
    """What the codecs must find: the most any sink needs."""
    return max((sink.needs for sink in sinks), key=NEEDS.index, default="stamps")


class Pipeline:
    """One running pipeline; ``run`` returns when every input has ended or a stop was asked."""

    def __init__(self, config: Config, *, checkpoints: bool = True) -> None:
        """``checkpoints``: keep file positions in ``state_dir`` (``run``); ``tail`` does not."""
        self.config = config
        settings = config.aggregator
        self.telemetry = PipelineTelemetry(self)
        names = list(config.sources)
        sink_context = SinkContext(names, origin_bases(config), telemetry=self.telemetry)
        self.sinks = [build_sink(name, part, sink_context) for name, part in config.sinks.items()]
        uses_files = any(part.type == "file" for part in config.sources.values())
        self.checkpoints = Checkpoints(settings.checkpoint_interval)
        """Every book of positions: file offsets (``run`` only), a nats source's messages."""
        self.checkpointer: Checkpointer[Position] | None = None
        if checkpoints and uses_files:
            store = CheckpointStore(settings.state_dir)
            self.checkpointer = Checkpointer(store, settings.checkpoint_interval)
            self.checkpoints.register(Position.book, self.checkpointer)
        workers = settings.parse_workers
        self.parse_pool = ParsePool(default_workers() if workers == "auto" else workers)
        source_context = SourceContext(
            needs_of(self.sinks),
            self.parse_pool,
            self.checkpointer,
            self.checkpoints,
            settings.state_dir,
        )
        self.sources = [
            build_source(name, part, source_context) for name, part in config.sources.items()
        ]
        self.core = OrderingCore(settings.order_window, settings.idle_timeout, settings.late)
        self.source_channels = [Channel[SourceItem](SOURCE_CHANNEL_SIZE) for _ in self.sources]
        self.sink_channels = [Channel[Batch](SINK_CHANNEL_SIZE) for _ in self.sinks]
        self.merge = Merge(
            list(zip(names, self.source_channels, strict=True)),
            [
                Output(sink.name, channel)
                for sink, channel in zip(self.sinks, self.sink_channels, strict=True)
            ],
            self.core,
            self.checkpoints.add if self.checkpoints.books else None,
            settings.future_grace,
        )
        self.failed: dict[str, str] = {}
        """Parts that stopped on an error, by name ("source app"), with the reason."""
        self.missing: list[str] = []
        """Inputs that were not there to read (``--no-follow``): the run ends with exit 1."""
        self._source_tasks: list[asyncio.Task[None]] = []
        self._downstream: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None
        self._stop_asked = False
        self._draining = False

    async def start(self) -> None:
        """Check and open every part; StartupError names the first that cannot start."""
        await self.checkpoints.load()
        parts: list[Source | Sink] = [*self.sinks, *self.sources]
        try:
            async with asyncio.TaskGroup() as group:
                for part in parts:
                    group.create_task(part.open(), name=f"open:{part.name}")
        except BaseException:
            # Whatever did open is released: a port, a file, and above all a Unix socket file.
            await asyncio.gather(*(part.close() for part in parts))
            raise

    async def run(self) -> None:
        """Move records until every source has ended (or a stop was asked) and all is flushed."""
        ended = asyncio.Event()
        committer = None
        if self.checkpoints.books:
            committer = asyncio.create_task(
                self.checkpoints.commit_periodically(self._delivered, ended), name="checkpoints"
            )
        try:
            await self._run_parts()
        finally:
            ended.set()
            if committer is not None:
                await committer
            await self.checkpoints.close()
            await self.parse_pool.close()

    def _delivered(self) -> int | None:
        """The seq every sink still writing has written up to; None when none is left."""
        delivered = [sink.delivered_seq for sink in self.sinks if not sink.gone]
        return min(delivered) if delivered else None

    async def _run_parts(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for sink, inlet in zip(self.sinks, self.sink_channels, strict=True):
                self._downstream.append(
                    group.create_task(self._run_sink(sink, inlet), name=f"sink:{sink.name}")
                )
            self._downstream.append(group.create_task(self._run_merge(), name="merge"))
            for source, outlet in zip(self.sources, self.source_channels, strict=True):
                self._source_tasks.append(
                    group.create_task(
                        self._run_source(source, outlet), name=f"source:{source.name}"
                    )
                )
            if self._stop_asked:  # asked before run() began: stop as soon as all is there
                self._drain()

    def request_stop(self) -> None:
        """Stop reading, then drain and flush (SIGTERM, SIGINT). Idempotent; asked before
        ``run``, the run stops as soon as it has begun."""
        self._stop_asked = True
        if self._group is not None:
            self._drain()

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        assert self._group is not None
        log.debug("stopping: draining the merge and flushing the sinks")
        for task in self._source_tasks:
            task.cancel("the pipeline is stopping")
        self._group.create_task(self._drain_deadline(), name="drain-deadline")

    def reopen_files(self) -> None:
        """Reopen every output file before its next write (SIGHUP, after an external rotation)."""
        for sink in self.sinks:
            sink.reopen()

    def flow_counters(self) -> FlowCounters:
        """For telemetry: what the merge, the queues and the parse pool count now."""
        depths = {
            f"source:{source.name}": len(channel)
            for source, channel in zip(self.sources, self.source_channels, strict=True)
        }
        for sink, inlet in zip(self.sinks, self.sink_channels, strict=True):
            depths[f"sink:{sink.name}"] = len(inlet)
        return FlowCounters(
            records_in=self.merge.records_in,
            late=self.core.stats.late,
            future=self.merge.future,
            dropped_late=self.core.stats.dropped_late,
            queue_depths=depths,
            held=self.core.held,
            merge_delay=self.core.merge_delay(time.monotonic()),
            parse_workers=len(self.parse_pool.pids),
        )

    async def _run_source(self, source: Source, outlet: Channel[SourceItem]) -> None:
        try:
            await source.run(outlet)
        except ChannelClosed:
            pass  # the merge has stopped
        except InputMissing as error:
            self.missing.append(str(error))  # said at the start; the others are read through
        except OSError as error:
            # An input that fails ends alone; the others go on.
            log.error("source %s stopped: %s", source.name, error)
            self.failed[f"source {source.name}"] = str(error)
        finally:
            outlet.close()

    async def _run_merge(self) -> None:
        await self.merge.run()
        if not self.merge.outputs:
            self.request_stop()  # no sink is left to write to (stdout closed by `| head`)

    async def _run_sink(self, sink: Sink, inlet: Channel[Batch]) -> None:
        try:
            await sink.run(inlet)
        finally:
            inlet.close()
        if sink.gone and all(other.gone for other in self.sinks):
            # Every reader has gone (``| head``): nothing is left to deliver to. Stop now, not
            # when the next record would find out: a quiet follow may see none for hours.
            self.request_stop()

    async def _drain_deadline(self) -> None:
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await asyncio.wait(self._downstream)
        except TimeoutError:
            stuck = ", ".join(task.get_name() for task in self._downstream if not task.done())
            raise DrainTimeout(f"did not stop within {DRAIN_TIMEOUT:g}s: {stuck}") from None
