"""Real rotation, counted line by line: a writer appends numbered lines while Debian's
``logrotate`` (or Python's ``logging.handlers``) rotates the file, ``aggregator run`` follows
it into a file sink, and every line written is looked for in what came out (issue #23).

Used by tests/sources/test_logrotate.py and bench/rotation.py. The writer pauses while
logrotate runs, so each line's file generation is known exactly: lines of one generation must
come out in the order written.
"""

import asyncio
import logging
import logging.handlers
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tests.helpers.outputs import finished_lines

LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"
PAD = "x" * 40  # lines long enough that a file's first 256 bytes (its fingerprint) fill soon

DIRECTIVES = {
    "create": "create",
    "copytruncate": "copytruncate",
    # The date to the second: rotations a second apart get names of their own.
    "compress": "create\n  compress\n  delaycompress\n  dateext\n  dateformat -%Y%m%d-%s",
}
"""What each logrotate mode adds to ``rotate 3`` (mode: directives)."""
PATHS = {"one": '["logs/app.log"]', "glob": '["logs/app.log*"]'}
"""What the source follows: the one path, or a glob that also matches the rotated names."""


@dataclass
class Counts:
    """What came out against what was written."""

    written: int
    delivered: int
    lost: int
    doubled: int
    out_of_order: int
    garbage: int = 0
    """Lines out that no one wrote (a compressed file read as text)."""
    lost_lines: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"written {self.written}, delivered {self.delivered}, lost {self.lost}, "
                f"doubled {self.doubled}, out of order {self.out_of_order}, "
                f"garbage {self.garbage}")  # fmt: skip


def config_text(work: Path, paths: str, rotate_wait: str = "0.5s") -> str:
    return (
        f'[aggregator]\nstate_dir = "{work / "state"}"\norder_window = "0s"\n'
        f'[sources.app]\ntype = "file"\npaths = {paths}\nstart_at = "beginning"\n'
        f'rotate_wait = "{rotate_wait}"\ncodec = "raw"\n'
        f'[sinks.out]\ntype = "file"\npath = "{work / "out.json"}"\nformat = "json"\n'
    )


class Writer:
    """Appends numbered lines ``g<generation> n<number>`` to ``path``, as an application does
    (O_APPEND), and knows the generation of each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generation = 0
        self.generations: list[int] = []  # by line number
        self._file = path.open("a", buffering=1 << 16)

    @property
    def written(self) -> int:
        return len(self.generations)

    def write(self, count: int) -> None:
        for _ in range(count):
            self._file.write(f"g{self.generation} n{self.written} {PAD}\n")
            self.generations.append(self.generation)
        self._file.flush()

    def rotated(self, reopen: bool, late: int = 0) -> None:
        """After a rotation: ``late`` lines still to the old file, then (``reopen``: the file
        was renamed, as logrotate's postrotate would tell it) the new one."""
        self.write(late)
        if reopen:
            self._file.close()
            self._file = self.path.open("a", buffering=1 << 16)
        self.generation += 1

    def close(self) -> None:
        self._file.close()


class HandlerWriter(Writer):
    """The numbered lines written through one of Python's ``logging.handlers`` (which may
    rotate the file itself); a generation is each stream the handler opened."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.generation = 0
        self.generations = []
        self.handler: logging.Handler
        if kind == "rotating":
            self.handler = logging.handlers.RotatingFileHandler(path, maxBytes=16_000,
                                                                backupCount=3)  # fmt: skip
        elif kind == "timed":
            self.handler = logging.handlers.TimedRotatingFileHandler(path, when="S", backupCount=3)
        else:
            self.handler = logging.handlers.WatchedFileHandler(path)
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger = logging.Logger(f"rotation-{id(self)}")
        self._logger.addHandler(self.handler)

    def _stream(self) -> object:
        return getattr(self.handler, "stream", None)

    def write(self, count: int) -> None:
        for _ in range(count):
            stream = self._stream()
            number = self.written
            self.generations.append(self.generation)
            self._logger.info("g%d n%d %s", self.generation, number, PAD)
            if self._stream() is not stream and stream is not None:  # rolled over first
                self.generation += 1
                self.generations[number] = self.generation

    def close(self) -> None:
        self.handler.close()


def shift(path: Path, keep: int = 3) -> None:
    """What an outside ``mv`` rotation does: app.log.2 to .3, .1 to .2, app.log to .1."""
    for index in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.rename(path.with_name(f"{path.name}.{index + 1}"))
    path.rename(path.with_name(f"{path.name}.1"))


async def run_handler_case(
    work: Path, kind: str, paths: str, *, rate: int = 300, seconds: float = 2.5
) -> Counts:
    """Python's logging handler ``kind`` ("rotating", "timed", "watched": moved away by an
    outside ``mv`` every 0.7 s) writes for ``seconds``; the counts once every line came out."""
    (work / "logs").mkdir()
    log = work / "logs" / "app.log"
    writer = HandlerWriter(log, kind)
    (work / "c.toml").write_text(config_text(work, PATHS[paths]))
    out = work / "out.json"
    aggregator = Aggregator(work, [sys.executable, "-m", "aggregator"])
    await aggregator.start()
    try:
        writer.write(10)
        await wait_for(lambda: len(delivered(out)) >= 10, "the first lines", 30)
        if isinstance(writer.handler, logging.handlers.TimedRotatingFileHandler):
            # A second from now, not from its creation: else, with a slow start, it rolls over
            # twice in a row, and a file that lives a few milliseconds is not what "when" means.
            writer.handler.rolloverAt = writer.handler.computeRollover(int(time.time()))
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            await write_for(writer, 0.7 if kind == "watched" else seconds, rate)
            if kind == "watched":
                shift(log)
        await wait_for(lambda: len(set(delivered(out))) >= writer.written, "every line", 30)
        await quiet(out, 1.0)
    except AssertionError:
        pass  # counted below
    finally:
        if aggregator.proc is not None and aggregator.proc.returncode is None:
            await aggregator.stop()
        writer.close()
    return count(writer, delivered(out))


def logrotate_conf(work: Path, mode: str) -> Path:
    conf = work / "logrotate.conf"
    conf.write_text(f"{work / 'logs' / 'app.log'} {{\n  rotate 3\n  missingok\n"
                    f"  {DIRECTIVES[mode]}\n}}\n")  # fmt: skip
    return conf


class LogrotateFailed(Exception):
    """logrotate itself failed: the case did not run as meant (not a count of the aggregator's:
    a run cut short by it would look like lost lines)."""


async def logrotate(work: Path, conf: Path) -> None:
    """Force a rotation now (the state file in ``work``); the caller's writer waits meanwhile.
    Tried once more a second later if it fails (a name by the second that was taken)."""
    for attempt in range(2):
        proc = await asyncio.create_subprocess_exec(
            LOGROTATE, "-f", "-s", str(work / "logrotate.state"), str(conf),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        if proc.returncode == 0:
            return
        if attempt == 0:
            await next_second(time.time())
    raise LogrotateFailed(f"logrotate failed: {out.decode()}")


async def next_second(last: float) -> None:
    """Until the wall clock's second is not that of ``last`` (dateext names by the second)."""
    while int(time.time()) == int(last):
        await asyncio.sleep(0.02)


async def write_for(writer: Writer, seconds: float, rate: int) -> None:
    """Write at ``rate`` lines a second for ``seconds``, in batches of 10 ms."""
    start = time.monotonic()
    first = writer.written
    while (elapsed := time.monotonic() - start) < seconds:
        due = first + int(elapsed * rate) + 1
        if due > writer.written:
            writer.write(due - writer.written)
        await asyncio.sleep(0.01)


def delivered(out: Path) -> list[int]:
    """The line numbers that came out, in order."""
    numbers = []
    for raw in finished_lines(out):
        words = orjson.loads(raw)["line"].split(" ")
        if len(words) == 3 and words[1][1:].isdigit():
            numbers.append(int(words[1][1:]))
        else:
            numbers.append(-1)  # not a line written (a compressed file read as text)
    return numbers


def count(writer: Writer, numbers: list[int]) -> Counts:
    """Lost, doubled, and out of order (a line of a generation after a later one of it)."""
    seen: set[int] = set()
    last: dict[int, int] = {}
    out_of_order = 0
    garbage = numbers.count(-1)
    numbers = [number for number in numbers if number >= 0]
    for number in numbers:
        if number in seen:
            continue
        seen.add(number)
        generation = writer.generations[number]
        if last.get(generation, -1) > number:
            out_of_order += 1
        last[generation] = max(last.get(generation, -1), number)
    lost = sorted(set(range(writer.written)) - seen)
    return Counts(writer.written, len(numbers), len(lost), len(numbers) - len(seen),
                  out_of_order, garbage, lost[:20])  # fmt: skip


class Aggregator:
    """``aggregator run -c CONFIG`` started and stopped as a user would."""

    def __init__(self, work: Path, command: list[str]) -> None:
        self.work = work
        self.command = command
        self.proc: asyncio.subprocess.Process | None = None
        self.peak_rss_kib = 0

    async def start(self) -> None:
        with (self.work / "stderr.log").open("ab") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command, "run", "-c", str(self.work / "c.toml"), cwd=self.work,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip

    def sample_rss(self) -> None:
        """Note the process's peak resident size so far (VmHWM)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.sample_rss()
        self.proc.send_signal(signum)
        async with asyncio.timeout(30):
            return await self.proc.wait()


async def wait_for(condition: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    try:
        async with asyncio.timeout(deadline):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def checkpointed(work: Path, log: Path) -> Callable[[], bool]:
    """Whether the checkpoint knows the file at ``log`` now. Killed before a file's first
    checkpoint and that file rotated away while stopped, a run cannot know it was ever read:
    the known gap (issue #23's report); SIGKILL cases wait until the file is known."""

    def known() -> bool:
        try:
            stat = log.stat()
            saved = orjson.loads((work / "state" / "checkpoints.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return False
        return f"{stat.st_dev}:{stat.st_ino}" in saved["files"]

    return known


def caught_up(out: Path, written: int) -> Callable[[], bool]:
    """Whether the first ``written`` lines have all come out."""
    everything = set(range(written))
    return lambda: everything <= set(delivered(out))


async def quiet(out: Path, seconds: float) -> None:
    """Until ``out`` has not grown for ``seconds`` (at most 30 s)."""
    size, since = -1, time.monotonic()
    async with asyncio.timeout(30):
        while time.monotonic() - since < seconds:
            now = out.stat().st_size if out.exists() else 0
            if now != size:
                size, since = now, time.monotonic()
            await asyncio.sleep(0.1)


async def run_logrotate_case(
    work: Path,
    mode: str,
    paths: str,
    restart: str,
    *,
    rate: int = 300,
    phase: float = 0.5,
    rotations: int = 3,
    command: list[str] | None = None,
    on_tick: Callable[[], Awaitable[None]] | None = None,
) -> tuple[Counts, Aggregator]:
    """One case of the matrix: ``rotations`` forced rotations ``phase`` seconds apart while
    writing at ``rate``; with ``restart`` ("sigterm", "sigkill"), the one in the middle happens
    while aggregator is stopped. Returns the counts once every line came out (or a deadline)."""
    (work / "logs").mkdir()
    log = work / "logs" / "app.log"
    writer = Writer(log)
    (work / "c.toml").write_text(config_text(work, PATHS[paths]))
    conf = logrotate_conf(work, mode)
    out = work / "out.json"
    aggregator = Aggregator(work, command or [sys.executable, "-m", "aggregator"])
    await aggregator.start()
    try:
        writer.write(10)  # once these come out, the file is followed
        await wait_for(lambda: len(delivered(out)) >= 10, "the first lines", 30)
        last_rotation = 0.0
        for index in range(rotations):
            await write_for(writer, phase, rate)
            aggregator.sample_rss()
            stopped = restart != "none" and index == rotations // 2
            if stopped:
                if restart == "sigkill":  # once the file read now is in the checkpoint (below)
                    await wait_for(checkpointed(work, log), "a checkpoint of the file", 30)
                await aggregator.stop(signal.SIGKILL if restart == "sigkill" else signal.SIGTERM)
                await write_for(writer, phase / 2, rate)
            if mode == "compress":
                await next_second(last_rotation)
            await logrotate(work, conf)
            last_rotation = time.time()
            writer.rotated(reopen=mode != "copytruncate", late=5 if mode != "copytruncate" else 0)
            if stopped:
                await write_for(writer, phase / 2, rate)
                await aggregator.start()
                # Running again (files found, checkpoints read) before the next rotation: a
                # file made while it was stopped and rotated before it starts is not its own.
                await wait_for(caught_up(out, writer.written), "catch-up", 30)
            if on_tick is not None:
                await on_tick()
        await write_for(writer, phase, rate)
        writer.close()
        await wait_for(lambda: len(set(delivered(out))) >= writer.written, "every line", 30)
        await quiet(out, 0.8)  # past rotate_wait: a file read again late would show
    except AssertionError:
        pass  # counted below: what was lost says more than a timeout
    finally:
        if aggregator.proc is not None and aggregator.proc.returncode is None:
            await aggregator.stop()
        writer.close()
    return count(writer, delivered(out)), aggregator


def environment_ok() -> bool:
    return os.path.exists(LOGROTATE)
