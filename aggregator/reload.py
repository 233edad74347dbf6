"""Reload by diff (SPEC §8): a new config applied to the running pipeline, part by part.

The new file is validated as ``aggregator check`` does (every error, nothing changed), then
compared with the running config by name (``aggregator.config.diff``): an unchanged part runs
on untouched; a changed one takes its new table where it can while running (``reconfigure``:
a listener's limits) or is drained and replaced; a new one is opened first (a port that cannot
be bound refuses the whole reload) and started; a removed one drains and stops.

Sinks change between two batches of the merge: a replacement gets every batch after the last
its predecessor got, and opens once that one has written it all (the same stdout, file or
port). A replaced source stops reading; once the last of its records has left the merge and
been written by every sink, the positions it reached are committed and its successor resumes
from them (a file source: from its own checkpoints), so nothing is lost or repeated.
"""

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from aggregator.config import Config, ConfigError, LineSourceConfig, load_config
from aggregator.errors import AggregatorError
from aggregator.flow.merge import Output
from aggregator.parse.needs import NEEDS
from aggregator.pipeline import Pipeline, SinkSlot, SourceSlot, needs_of, open_parts, wait_for
from aggregator.sinks.encoded import judged_wheres

log = logging.getLogger(__name__)

READ_SIZE = 16 * (16 + 256)
"""Room for 16 events with a full-length name in one read of the config watch."""
DEBOUNCE = 0.2
"""Seconds the config file must be quiet after a change before ``--watch-config`` reloads: an
editor's save (write, rename) or a ConfigMap's symlink flip is several events."""


class ReloadRefused(AggregatorError):
    """The new config cannot apply; nothing was changed. ``reasons``: one line each."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


class Applied:
    """What a reload did, by part ("source app"). (A plain class: a dataclass's generated
    methods are compiled at every start, and a reload needs none of them.)"""

    __slots__ = ("reconfigured", "replaced", "settings", "started", "stopped")

    def __init__(self, settings: list[str]) -> None:
        self.started: list[str] = []
        self.replaced: list[str] = []
        self.reconfigured: list[str] = []
        self.stopped: list[str] = []
        self.settings = settings

    def describe(self) -> str:
        """One line for stderr."""
        said = [
            f"{what} {', '.join(parts)}"
            for what, parts in (
                ("started", self.started),
                ("replaced", self.replaced),
                ("changed in place", self.reconfigured),
                ("stopped", self.stopped),
                ("applied", [f"aggregator.{key}" for key in self.settings]),
            )
            if parts
        ]
        return "reloaded: " + ("; ".join(said) if said else "nothing changed")


def reconfigure(part: object, config: object) -> bool:
    """Whether ``part`` took ``config`` as it runs (it says so); else it must be replaced."""
    method = getattr(part, "reconfigure", None)
    return bool(method(config)) if method is not None else False


def leaf_errors(error: BaseException) -> list[BaseException]:
    """The errors inside (nested) exception groups, as a TaskGroup raises them."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaf_errors(inner)]
    return [error]


async def apply(pipeline: Pipeline, new: Config) -> Applied:
    """Change the running ``pipeline`` into ``new``; ReloadRefused if it cannot (then nothing
    has changed)."""
    if not pipeline.running:
        raise ReloadRefused(["the pipeline is not running"])
    from aggregator.config.diff import diff_configs  # only a reload compares configs: not at start

    change = diff_configs(pipeline.config, new)
    if change.refused:
        raise ReloadRefused(change.refused)
    applied = Applied(settings=change.settings)
    sink_slots = pipeline.sink_slots
    new_sinks = {
        name: SinkSlot(pipeline.build_sink(name, new.sinks[name]))
        for name in [*change.sinks.added, *change.sinks.changed]
    }
    kept = [sink_slots[name].sink for name in change.sinks.unchanged]
    needs = needs_of([*kept, *(slot.sink for slot in new_sinks.values())])
    grew = NEEDS.index(needs) > NEEDS.index(pipeline.needs)
    added = {
        name: SourceSlot(pipeline.build_source(name, new.sources[name], needs))
        for name in change.sources.added
    }
    opening = [*(new_sinks[name].sink for name in change.sinks.added)]
    try:
        await open_parts(
            [*opening, *(slot.source for slot in added.values())], pipeline.checkpoints
        )
    except Exception as error:
        leaves = leaf_errors(error)
        if not all(isinstance(leaf, AggregatorError | OSError) for leaf in leaves):
            raise
        raise ReloadRefused([str(leaf) for leaf in leaves]) from error

    # From here on the reload applies.
    settings, core = new.aggregator, pipeline.core
    core.window, core.idle_timeout, core.late_policy = (
        settings.order_window,
        settings.idle_timeout,
        settings.late,
    )
    pipeline.checkpoints.interval = settings.checkpoint_interval
    # The decoders judge the new sinks' ``where``s from their next region on; a record decoded
    # before is tested by its sink (``aggregator.record.verdicts``): no source is replaced.
    pipeline.judged.use(judged_wheres(new.sinks.values()))
    if grew:
        log.info("the sinks now need %s of each record, not %s: the sources that parse lines "
                 "are replaced to find it", needs, pipeline.needs)  # fmt: skip
    replaced = []
    for name in [*change.sources.changed, *change.sources.unchanged]:
        table = new.sources[name]
        if grew and isinstance(table, LineSourceConfig):
            replaced.append(name)  # the new sinks show more (levels, fields) than was found
        elif name in change.sources.unchanged:
            continue
        elif reconfigure(pipeline.source_slots[name].source, table):
            applied.reconfigured.append(f"source {name}")
        else:
            replaced.append(name)
    pipeline.needs = needs
    pipeline.source_names[:] = list(new.sources)
    merge = pipeline.merge
    merge.holds += 1
    try:
        leaving = [*change.sinks.removed, *change.sinks.changed]
        outputs = [Output(name, slot.channel) for name, slot in new_sinks.items()]
        seq = await merge.change_outputs(leaving, outputs)
        pipeline.retiring += [sink_slots[name] for name in leaving]
        pipeline.sink_slots = {name: new_sinks.get(name) or sink_slots[name] for name in new.sinks}
        for name, slot in new_sinks.items():
            slot.floor = seq
            pipeline.start_sink(slot, after=sink_slots.get(name))
        for name in change.sources.removed:
            stop_reading(pipeline.source_slots[name], "removed by a reload")
        for name, source_slot in added.items():
            pipeline.source_slots[name] = source_slot
            merge.add_input(name, source_slot.channel)
            pipeline.start_source(source_slot)
        await asyncio.gather(
            *(_retire(pipeline, name) for name in change.sources.removed),
            *(_replace(pipeline, name, new) for name in replaced),
        )
        pipeline.source_slots = {
            name: pipeline.source_slots[name]
            for name in new.sources
            if name in pipeline.source_slots
        }
    finally:
        merge.holds -= 1
        merge.wake()
    pipeline.config = new
    applied.started = named(added, change.sinks.added)
    applied.replaced = named(replaced, change.sinks.changed)
    applied.stopped = named(change.sources.removed, change.sinks.removed)
    return applied


def named(sources: Iterable[str], sinks: Iterable[str]) -> list[str]:
    return [*(f"source {name}" for name in sources), *(f"sink {name}" for name in sinks)]


def stop_reading(slot: SourceSlot, why: str) -> None:
    if slot.task is not None:
        slot.task.cancel(why)


async def _retire(pipeline: Pipeline, name: str) -> None:
    """Until the removed source ``name`` has stopped and the last of its records left; a
    book of its own (a nats source's) is retired once the sinks wrote them."""
    source = pipeline.source_slots[name].source
    seq = await pipeline.merge.gone(name)
    del pipeline.source_slots[name]
    pipeline.failed.pop(f"source {name}", None)
    pipeline.origin_bases.pop(name, None)
    await _retire_books(pipeline, source, seq)


async def _retire_books(pipeline: Pipeline, source: object, seq: int) -> None:
    """Once every sink has written the stopped ``source``'s records (up to ``seq``), commit
    the books it alone keeps a last time, close them and forget them."""
    if source not in pipeline.checkpoints.owners():
        return
    await wait_for(lambda: _delivered(pipeline) >= seq)
    await pipeline.checkpoints.retire(source, pipeline.delivered())


async def _replace(pipeline: Pipeline, name: str, new: Config) -> None:
    """Drain the source ``name``, commit where it got to, start its successor from there."""
    old = pipeline.source_slots[name]
    stop_reading(old, "replaced by a reload")
    seq = await pipeline.merge.gone(name)
    # Every sink has written the old source's last record: its positions are committed, and
    # the successor (built only now) resumes from them; a book of its own is saved and closed
    # first (the successor registers and loads it afresh).
    await wait_for(lambda: _delivered(pipeline) >= seq)
    delivered = pipeline.delivered()
    if delivered is not None:
        pipeline.checkpoints.advance(delivered)
    await _retire_books(pipeline, old.source, seq)
    pipeline.failed.pop(f"source {name}", None)
    slot = SourceSlot(pipeline.build_source(name, new.sources[name]))
    try:
        await open_parts([slot.source], pipeline.checkpoints)
    except (AggregatorError, OSError) as error:
        log.error("sources.%s: cannot start its replacement: %s", name, error)
        pipeline.failed[f"source {name}"] = str(error)
        del pipeline.source_slots[name]
        return
    pipeline.source_slots[name] = slot
    pipeline.merge.add_input(name, slot.channel)
    pipeline.start_source(slot)


def _delivered(pipeline: Pipeline) -> float:
    delivered = pipeline.delivered()
    return float("inf") if delivered is None else delivered  # None: no sink holds back


class Reloader:
    """Reloads the config file into the pipeline when asked (SIGHUP) or, watching, when the
    file's content changes; counts what it did (``aggregator_reloads_total``)."""

    def __init__(self, pipeline: Pipeline, path: Path) -> None:
        self.pipeline = pipeline
        self.path = path
        self._asked = asyncio.Event()
        self._seen = self._read()

    def request(self) -> None:
        """Reload soon; several requests before it begins make one reload."""
        self._asked.set()

    async def run(self, watch: bool) -> None:
        """Reload at each request until cancelled; with ``watch``, also when the file changes."""
        async with asyncio.TaskGroup() as group:
            if watch:
                group.create_task(self._watch(), name="reload:watch")
            while True:
                await self._asked.wait()
                self._asked.clear()
                await self.reload()

    async def reload(self) -> bool:
        """Validate the file, then apply it; False (and every reason logged) if refused."""
        counts = self.pipeline.reloads
        try:
            config = load_config(self.path)
        except ConfigError as error:
            return self._refused(error.errors)
        from aggregator import check  # the same checks as `aggregator check`

        problems = await asyncio.to_thread(check.problems, config)
        if problems:
            return self._refused([f"{self.path}: {line}" for line in problems])
        new = [name for name in config.sources if name not in self.pipeline.config.sources]
        self.pipeline.reloading = asyncio.current_task()
        try:
            applied = await apply(self.pipeline, config)
        except ReloadRefused as refused:
            return self._refused([f"{self.path}: {line}" for line in refused.reasons])
        except Exception:  # a bug: said with its traceback; the pipeline runs on as it is now
            log.exception("reload failed part way; what was applied stays")
            self.pipeline.reloads.refused += 1
            self.pipeline.reloads.last_ok = False
            return False
        finally:
            self.pipeline.reloading = None
        counts.ok += 1
        counts.last, counts.last_ok = time.time(), True
        log.info("%s", applied.describe())
        for line in check.following(config):  # as at start, for the sources just started
            if line.split(":")[0].removeprefix("source ") in new:
                log.info("%s", line)
        return True

    def _refused(self, reasons: list[str]) -> bool:
        for line in reasons:
            log.error("%s", line)
        log.error("reload refused: the running pipeline is unchanged")
        self.pipeline.reloads.refused += 1
        self.pipeline.reloads.last_ok = False
        return False

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except OSError:
            return None

    async def _watch(self) -> None:
        """inotify on the file's directory (an editor replaces the file by a rename; a
        ConfigMap flips a ``..data`` symlink); a reload once it has been quiet for
        ``DEBOUNCE`` and its content is new."""
        from aggregator.sources.file import inotify_calls as calls

        mask = calls.CLOSE_WRITE | calls.MOVED_TO | calls.CREATE | calls.MODIFY | calls.ATTRIB
        events = _Names(calls.init(calls.CLOEXEC | calls.NONBLOCK))
        try:
            try:
                calls.add_watch(events.fd, str(self.path.absolute().parent), mask)
            except OSError as error:
                log.warning("cannot watch %s: %s; reload with SIGHUP", self.path, error)
                return
            log.info("watching %s: a change reloads it", self.path)
            name = self.path.name
            while True:
                changed = await events.next()
                if changed is None or not (changed == name or changed[:2] == ".."):
                    continue
                while True:  # until quiet
                    try:
                        async with asyncio.timeout(DEBOUNCE):
                            await events.next()
                    except TimeoutError:
                        break
                content = await asyncio.to_thread(self._read)
                if content is not None and content != self._seen:
                    self._seen = content
                    self.request()
        finally:
            os.close(events.fd)


class _Names:
    """The names in the events of inotify instance ``fd`` (None for an event without one),
    one at a time; ``next`` may be cancelled (a timeout) without losing an event read."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._pending: list[str | None] = []

    async def next(self) -> str | None:
        while not self._pending:
            self._pending.extend(self._names(await self._read()))
        return self._pending.pop(0)

    async def _read(self) -> bytes:
        """One read of the descriptor once it is readable."""
        loop = asyncio.get_running_loop()
        read: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            if read.done():
                return
            try:
                read.set_result(os.read(self.fd, READ_SIZE))
            except BlockingIOError:  # read by nobody else: not expected, wait on
                pass
            except OSError as error:
                read.set_exception(error)

        loop.add_reader(self.fd, readable)
        try:
            return await read
        finally:
            loop.remove_reader(self.fd)

    @staticmethod
    def _names(data: bytes) -> Iterable[str | None]:
        from aggregator.sources.file.inotify_calls import EVENT

        offset = 0
        while offset < len(data):
            length = EVENT.unpack_from(data, offset)[3]
            start = offset + EVENT.size
            offset = start + length
            name = data[start:offset].rstrip(b"\0")
            yield os.fsdecode(name) if name else None
