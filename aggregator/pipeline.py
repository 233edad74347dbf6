"""Builds the parts a config describes and runs them: sources → merge → sinks.

Building: the sinks first (what they show decides what the codecs must find), then the
sources; each part gets what it needs at construction (``SinkContext``, ``SourceContext``).
Start order: the sinks and sources ``open`` (bind ports, create files), so that a part that
cannot start is reported before any data moves; if one fails, all are closed again. Stop order
starts at the sources: they stop reading, the merge drains what it holds, the sinks flush, and
everything ends within ``DRAIN_TIMEOUT`` or the program says which part did not stop.

Parts are kept by name, each in a slot with its channel and task, so that a reload
(``aggregator.reload``) can start, drain and replace one while the others run on.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from aggregator.config import Config
from aggregator.errors import AggregatorError, InputMissing
from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.checkpoints import Checkpoints
from aggregator.flow.chunk import SourceItem
from aggregator.flow.merge import Merge, Output
from aggregator.flow.ordering import OrderingCore
from aggregator.parse.needs import NEEDS, Needs
from aggregator.parse.pool import ParsePool, default_workers
from aggregator.record.record import Batch
from aggregator.record.verdicts import Judged
from aggregator.sinks import Sink, SinkContext, build_sink
from aggregator.sinks.encoded import judged_wheres
from aggregator.sources import Source, SourceContext, build_source
from aggregator.telemetry.pipeline import FlowCounters, PipelineTelemetry, ReloadCounts

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


def needs_of(sinks: Sequence[Sink]) -> Needs:
    """What the codecs must find: the most any sink needs."""
    return max((sink.needs for sink in sinks), key=NEEDS.index, default="stamps")


def _source_channel() -> Channel[SourceItem]:
    return Channel[SourceItem](SOURCE_CHANNEL_SIZE)


def _sink_channel() -> Channel[Batch]:
    return Channel[Batch](SINK_CHANNEL_SIZE)


class SourceSlot:
    """A source, the channel it puts into, and the task that runs it."""

    __slots__ = ("channel", "source", "task")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.channel = _source_channel()
        self.task: asyncio.Task[None] | None = None


class SinkSlot:
    """A sink, the channel it takes from, and the task that runs it."""

    __slots__ = ("channel", "floor", "sink", "task")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.channel = _sink_channel()
        self.task: asyncio.Task[None] | None = None
        self.floor = 0
        """The seq after which this sink got its first batch (one started by a reload): it
        has nothing to write up to there, so checkpoints do not wait for it."""

    @property
    def delivered(self) -> int:
        return max(self.sink.delivered_seq, self.floor)


class Pipeline:
    """One running pipeline; ``run`` returns when every input has ended or a stop was asked."""

    def __init__(self, config: Config, *, checkpoints: bool = True) -> None:
        """``checkpoints``: keep file positions in ``state_dir`` (``run``); ``tail`` does not."""
        self.config = config
        settings = config.aggregator
        self.telemetry = PipelineTelemetry(self)
        self.source_names = list(config.sources)
        """The sources in config order, shared with the sinks (colours in text)."""
        self.origin_bases: dict[str, str] = {}
        """Filled by the file sources as they are built; read by the sinks' text encoders."""
        self.judged = Judged()
        """The sinks' ``where``s that the decoders judge (``aggregator.record.verdicts``)."""
        self.sink_context = SinkContext(
            self.source_names, self.origin_bases, self.telemetry, self.judged
        )
        self.sink_slots = {
            name: SinkSlot(build_sink(name, part, self.sink_context))
            for name, part in config.sinks.items()
        }
        self.judged.use(judged_wheres(config.sinks.values()))
        self.checkpoints = Checkpoints(settings.checkpoint_interval)
        """Every book of positions, registered by the sources that keep one: file offsets
        (``run`` only), a nats source's messages."""
        self.keep_positions = checkpoints
        workers = settings.parse_workers
        self.parse_pool = ParsePool(default_workers() if workers == "auto" else workers)
        self.needs = needs_of(self.sinks)
        self.source_slots = {
            name: SourceSlot(self.build_source(name, part)) for name, part in config.sources.items()
        }
        self.core = OrderingCore(settings.order_window, settings.idle_timeout, settings.late)
        self.merge = Merge(
            [(name, slot.channel) for name, slot in self.source_slots.items()],
            [Output(name, slot.channel) for name, slot in self.sink_slots.items()],
            self.core,
            self.checkpoints.add,
            settings.future_grace,
        )
        self.failed: dict[str, str] = {}
        """Parts that stopped on an error, by name ("source app"), with the reason."""
        self.missing: list[str] = []
        """Inputs that were not there to read (``--no-follow``): the run ends with exit 1."""
        self.reloads = ReloadCounts()
        self.retiring: list[SinkSlot] = []
        """Sinks a reload replaced or removed, still writing what they got before."""
        self.reloading: asyncio.Task[object] | None = None
        """A reload being applied: cancelled if a stop comes meanwhile."""
        self._downstream: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None
        self._stop_asked = False
        self._draining = False

    @property
    def sources(self) -> list[Source]:
        return [slot.source for slot in self.source_slots.values()]

    @property
    def sinks(self) -> list[Sink]:
        return [slot.sink for slot in self.sink_slots.values()]

    @property
    def running(self) -> bool:
        """Whether parts may be started and stopped now (``run`` has begun, no stop asked)."""
        return self._group is not None and not self._draining

    def build_source(self, name: str, config: object, needs: Needs | None = None) -> Source:
        settings = self.config.aggregator
        context = SourceContext(
            needs or self.needs,
            self.parse_pool,
            self.keep_positions,
            self.checkpoints,
            settings.state_dir,
            settings.stall_after,
            self.origin_bases,
            self.judged,
        )
        return build_source(name, config, context)

    def build_sink(self, name: str, config: object) -> Sink:
        return build_sink(name, config, self.sink_context)

    async def start(self) -> None:
        """Check and open every part; StartupError names the first that cannot start."""
        await open_parts([*self.sinks, *self.sources], self.checkpoints)

    async def run(self) -> None:
        """Move records until every source has ended (or a stop was asked) and all is flushed."""
        ended = asyncio.Event()
        committer = None
        if self.keep_positions or self.checkpoints.books:
            committer = asyncio.create_task(
                self.checkpoints.commit_periodically(self.delivered, ended), name="checkpoints"
            )
        try:
            await self._run_parts()
        finally:
            ended.set()
            if committer is not None:
                await committer
            await self.checkpoints.close()
            await self.parse_pool.close()

    def delivered(self) -> int | None:
        """The seq every sink still writing has written up to; None when none is left."""
        slots = [*self.sink_slots.values(), *self.retiring]
        delivered = [slot.delivered for slot in slots if not slot.sink.gone]
        return min(delivered) if delivered else None

    async def _run_parts(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for sink_slot in self.sink_slots.values():
                self.start_sink(sink_slot)
            self._downstream.append(group.create_task(self._run_merge(), name="merge"))
            for source_slot in self.source_slots.values():
                self.start_source(source_slot)
            if self._stop_asked:  # asked before run() began: stop as soon as all is there
                self._drain()

    def start_source(self, slot: SourceSlot) -> None:
        """Run an opened source; the merge must know its channel."""
        assert self._group is not None
        name = slot.source.name
        slot.task = self._group.create_task(self._run_source(slot), name=f"source:{name}")
        # A task cancelled before its first step never runs its body, nor its ``finally``
        # (a stop asked while the parts opened): its channel must end all the same, or the
        # merge waits for it until the drain's deadline.
        slot.task.add_done_callback(lambda _task: slot.channel.close())

    def start_sink(self, slot: SinkSlot, after: SinkSlot | None = None) -> None:
        """Run a sink; a replacement (``after`` its predecessor) opens once that one ended."""
        assert self._group is not None
        name = slot.sink.name
        slot.task = self._group.create_task(self._run_sink(slot, after), name=f"sink:{name}")
        self._downstream.append(slot.task)

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
        if self.reloading is not None:
            self.reloading.cancel("the pipeline is stopping")
        for slot in self.source_slots.values():
            if slot.task is not None:
                slot.task.cancel("the pipeline is stopping")
        self._group.create_task(self._drain_deadline(), name="drain-deadline")

    def reopen_files(self) -> None:
        """Reopen every output file before its next write (SIGHUP, after an external rotation)."""
        for sink in self.sinks:
            sink.reopen()

    def flow_counters(self) -> FlowCounters:
        """For telemetry: what the merge, the queues and the parse pool count now."""
        depths = {f"source:{name}": len(slot.channel) for name, slot in self.source_slots.items()}
        for name, sink_slot in self.sink_slots.items():
            depths[f"sink:{name}"] = len(sink_slot.channel)
        return FlowCounters(
            records_in=self.merge.records_in,
            late=self.core.stats.late,
            future=self.merge.future,
            dropped_late=self.core.stats.dropped_late,
            queue_depths=depths,
            held=self.core.held,
            merge_delay=self.core.merge_delay(time.monotonic()),
            parse_workers=len(self.parse_pool.pids),
            reloads=self.reloads,
        )

    async def _run_source(self, slot: SourceSlot) -> None:
        source, outlet = slot.source, slot.channel
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

    async def _run_sink(self, slot: SinkSlot, after: SinkSlot | None) -> None:
        sink, inlet = slot.sink, slot.channel
        try:
            if after is not None:
                if after.task is not None:  # the same stdout, file or port: one at a time
                    await asyncio.wait([after.task])
                try:
                    await sink.open()
                except (AggregatorError, OSError) as error:
                    log.error("sinks.%s: cannot start its replacement: %s", sink.name, error)
                    self.failed[f"sink {sink.name}"] = str(error)
                    return
            await sink.run(inlet)
        finally:
            inlet.close()
            if slot in self.retiring:
                self.retiring.remove(slot)
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


async def open_parts(parts: Sequence[Source | Sink], checkpoints: Checkpoints) -> None:
    """Load the books not loaded yet, then open ``parts`` together; if one cannot start,
    whatever did open is closed again (a port, a file, above all a Unix socket file)."""
    await checkpoints.load()
    try:
        async with asyncio.TaskGroup() as group:
            for part in parts:
                group.create_task(part.open(), name=f"open:{part.name}")
    except BaseException:
        await asyncio.gather(*(part.close() for part in parts))
        raise


async def wait_for(condition: Callable[[], bool], interval: float = 0.02) -> None:
    """Until ``condition()`` holds: for what no event announces (a sink's delivered seq is a
    plain attribute, set per batch at no cost: a reload polls it rather than every batch
    setting an event)."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(interval)
