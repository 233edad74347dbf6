"""Builds the parts a config describes and runs them: sources → merge → sinks.

Start order: the sinks and sources ``open`` first (bind ports, create files), so that a part
that cannot start is reported before any data moves. Stop order starts at the sources: they
stop reading, the merge drains what it holds, the sinks flush, and everything ends within
``DRAIN_TIMEOUT`` or the program says which part did not stop.
"""

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aggregator.config import (
    Config,
    FileSinkConfig,
    FileSourceConfig,
    SinkConfig,
    StdinSourceConfig,
    StdoutSinkConfig,
    TcpSourceConfig,
    UdpSourceConfig,
    UnixSourceConfig,
    WebSocketSinkConfig,
)
from aggregator.errors import AggregatorError, StartupError
from aggregator.flow.channel import Channel, ChannelClosed
from aggregator.flow.checkpoints import Checkpointer, CheckpointStore
from aggregator.flow.chunk import SourceItem
from aggregator.flow.merge import Merge, Output
from aggregator.flow.ordering import OrderingCore
from aggregator.flow.record import Batch
from aggregator.parse.pool import ParsePool, default_workers
from aggregator.parse.worker import NEEDS, Needs
from aggregator.sinks import Sink
from aggregator.sinks.file import FileSink
from aggregator.sinks.stdout import StdoutSink
from aggregator.sources import Source
from aggregator.sources.datagram import UdpSource, UnixDatagramSource
from aggregator.sources.file import FileSource
from aggregator.sources.stdin import StdinSource
from aggregator.sources.stream import TcpSource, UnixStreamSource
from aggregator.telemetry import PipelineTelemetry
from aggregator.web.sink import WebSocketSink

log = logging.getLogger(__name__)

SOURCE_CHANNEL_SIZE = 16
"""Chunks a source may have waiting for the merge (a chunk is at most one 256 KiB read)."""
SINK_CHANNEL_SIZE = 4
"""Batches (of at most ``OUTPUT_BATCH`` records) a sink may have waiting; when full, the merge
waits, and then the sources."""
DRAIN_TIMEOUT = 5.0
"""Seconds the pipeline has, after a stop is asked, to drain, flush and end."""

SOURCE_TYPES: dict[type[Any], Callable[..., Source]] = {
    FileSourceConfig: FileSource,
    StdinSourceConfig: StdinSource,
    TcpSourceConfig: TcpSource,
    UdpSourceConfig: UdpSource,
    UnixSourceConfig: lambda name, config: (
        UnixStreamSource(name, config)
        if config.socket == "stream"
        else UnixDatagramSource(name, config)
    ),
}
SINK_TYPES: dict[type[Any], Callable[..., Sink]] = {
    StdoutSinkConfig: StdoutSink,
    FileSinkConfig: FileSink,
    WebSocketSinkConfig: WebSocketSink,
}


class DrainTimeout(AggregatorError):
    """The pipeline did not end within ``DRAIN_TIMEOUT`` after a stop was asked."""


def needs_of(sink: SinkConfig) -> Needs:
    """What ``sink`` needs a codec to find: raw and text show only lines and times; json
    shows the level and fields only in each record's JSON; a level filter and a WebSocket
    (filtered by its subscribers) need everything."""
    if isinstance(sink, WebSocketSinkConfig) or (
        sink.filter is not None and sink.filter.level is not None
    ):
        return "everything"
    return "json" if sink.format == "json" else "stamps"


class Pipeline:
    """One running pipeline; ``run`` returns when every input has ended or a stop was asked."""

    def __init__(self, config: Config, *, checkpoints: bool = True) -> None:
        """``checkpoints``: keep file positions in ``state_dir`` (``run``); ``tail`` does not."""
        self.config = config
        self.checkpointer: Checkpointer | None = None
        self._use_checkpoints = checkpoints
        names = list(config.sources)
        self.sources = [
            SOURCE_TYPES[type(part)](name, part) for name, part in config.sources.items()
        ]
        self.sinks = [
            SINK_TYPES[type(part)](name, part, names) for name, part in config.sinks.items()
        ]
        settings = config.aggregator
        workers = settings.parse_workers
        needs: Needs = max(map(needs_of, config.sinks.values()), key=NEEDS.index, default="stamps")
        for source in self.sources:
            source.decoding.find_only(needs)
        self.parse_pool = ParsePool(default_workers() if workers == "auto" else workers)
        if self.parse_pool.workers:
            for source in self.sources:
                if isinstance(source, FileSource | StdinSource):
                    source.decoding.pool = self.parse_pool
        self.core = OrderingCore(
            len(self.sources), settings.order_window, settings.idle_timeout, settings.late
        )
        self.source_channels = [Channel[SourceItem](SOURCE_CHANNEL_SIZE) for _ in self.sources]
        self.sink_channels = [Channel[Batch](SINK_CHANNEL_SIZE) for _ in self.sinks]
        self.merge: Merge | None = None
        self.failed: dict[str, str] = {}
        """Parts that stopped on an error, by name ("source app"), with the reason."""
        self.telemetry = PipelineTelemetry(self)
        for sink in self.sinks:
            if isinstance(sink, WebSocketSink):
                sink.telemetry = self.telemetry
        self._source_tasks: list[asyncio.Task[None]] = []
        self._downstream: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None
        self._stopping = False

    async def start(self) -> None:
        """Check and open every part; StartupError names the first that cannot start."""
        file_sources = [part for part in self.sources if isinstance(part, FileSource)]
        if file_sources and self._use_checkpoints:
            state_dir = self.config.aggregator.state_dir
            await asyncio.to_thread(check_state_dir, state_dir)
            store = CheckpointStore(state_dir)
            positions = await asyncio.to_thread(store.load)
            self.checkpointer = Checkpointer(store, positions)
            for file_source in file_sources:
                file_source.checkpoints = positions
        try:
            async with asyncio.TaskGroup() as group:
                for sink in self.sinks:
                    group.create_task(sink.open(), name=f"open:{sink.name}")
                for source in self.sources:
                    group.create_task(source.open(), name=f"open:{source.name}")
        except BaseException:
            # Whatever did open is released: a port, and above all a Unix socket file.
            await asyncio.gather(*(source.close() for source in self.sources))
            raise

    async def run(self) -> None:
        """Move records until every source has ended (or a stop was asked) and all is flushed."""
        merge = self.merge = Merge(
            [
                (source.name, channel)
                for source, channel in zip(self.sources, self.source_channels, strict=True)
            ],
            [
                Output(sink.name, channel)
                for sink, channel in zip(self.sinks, self.sink_channels, strict=True)
            ],
            self.core,
            self.checkpointer.add if self.checkpointer is not None else None,
        )
        committer = None
        ended = asyncio.Event()
        if self.checkpointer is not None:
            committer = asyncio.create_task(self._commit_periodically(ended), name="checkpoints")
        try:
            await self._run_parts(merge)
        finally:
            # Not a cancel: a save in progress finishes, then the last one takes what the
            # sinks wrote before the end.
            ended.set()
            if committer is not None:
                await asyncio.gather(committer, return_exceptions=True)
            await self._commit()
            await self.parse_pool.close()

    async def _run_parts(self, merge: Merge) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for sink, inlet in zip(self.sinks, self.sink_channels, strict=True):
                self._downstream.append(
                    group.create_task(self._run_sink(sink, inlet), name=f"sink:{sink.name}")
                )
            self._downstream.append(group.create_task(self._run_merge(merge), name="merge"))
            for source, outlet in zip(self.sources, self.source_channels, strict=True):
                self._source_tasks.append(
                    group.create_task(
                        self._run_source(source, outlet), name=f"source:{source.name}"
                    )
                )

    async def _commit_periodically(self, ended: asyncio.Event) -> None:
        while not ended.is_set():
            try:
                async with asyncio.timeout(self.config.aggregator.checkpoint_interval):
                    await ended.wait()
            except TimeoutError:
                await self._commit()

    async def _commit(self) -> None:
        """Commit the file positions every sink has written up to."""
        if self.checkpointer is None:
            return
        delivered = [sink.delivered_seq for sink in self.sinks if not sink.gone]
        if not delivered:
            return
        self.checkpointer.advance(min(delivered))
        try:
            await self.checkpointer.save()
        except OSError as error:
            log.error("%s: cannot write the checkpoints: %s", self.checkpointer.store.path,
                      error.strerror or error)  # fmt: skip

    def request_stop(self) -> None:
        """Stop reading, then drain and flush (SIGTERM, SIGINT). Idempotent."""
        if self._stopping or self._group is None:
            return
        self._stopping = True
        log.debug("stopping: draining the merge and flushing the sinks")
        for task in self._source_tasks:
            task.cancel("the pipeline is stopping")
        self._group.create_task(self._drain_deadline(), name="drain-deadline")

    def reopen_files(self) -> None:
        """Reopen every output file before its next write (SIGHUP, after an external rotation)."""
        for sink in self.sinks:
            if isinstance(sink, FileSink):
                sink.reopen()

    async def _run_source(self, source: Source, outlet: Channel[SourceItem]) -> None:
        try:
            await source.run(outlet)
        except ChannelClosed:
            pass  # the merge has stopped
        except OSError as error:
            # An input that fails ends alone; the others go on.
            log.error("source %s stopped: %s", source.name, error)
            self.failed[f"source {source.name}"] = str(error)
        finally:
            outlet.close()

    async def _run_merge(self, merge: Merge) -> None:
        await merge.run()
        if not merge.outputs:
            self.request_stop()  # no sink is left to write to (stdout closed by `| head`)

    async def _run_sink(self, sink: Sink, inlet: Channel[Batch]) -> None:
        try:
            await sink.run(inlet)
        finally:
            inlet.close()

    async def _drain_deadline(self) -> None:
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await asyncio.wait(self._downstream)
        except TimeoutError:
            stuck = ", ".join(task.get_name() for task in self._downstream if not task.done())
            raise DrainTimeout(f"did not stop within {DRAIN_TIMEOUT:g}s: {stuck}") from None


def check_state_dir(path: Path) -> None:
    """Create ``path`` if needed and prove it writable; StartupError otherwise."""
    probe = path / ".write-test"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise StartupError(
            f"aggregator.state_dir: cannot write {path}: {error.strerror or error}"
        ) from error
