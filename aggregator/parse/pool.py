"""Parsing lines in worker processes, so that catch-up uses every core.

Splitting and parsing are most of a line's cost, and the event loop has only one core: a
large read (a file read from its start, a burst) is sent to a worker process as bytes, and
what the codec says of each line comes back. The loop keeps what must stay in order (each
lane's partial line, the merge); small reads, the live case, are parsed on the loop, where a
hop to a process would only add latency (bench/README.md has the figures).

A worker runs ``aggregator.parse.worker.serve``, fed through its stdin and answering on its
stdout. Its pipes are read and written by the event loop itself: with a pool of threads in
between (``ProcessPoolExecutor``), a result waited for the loop's lock (the GIL) while a full
pipe stalled the worker. While the workers are being spawned, and past ``JOBS_PER_WORKER``
regions a worker, a lane waits (reading nothing meanwhile): parsing on the loop instead cost
the loop, the busier process, more than the wait. A worker that dies is reported once, and
its regions are parsed on the loop: nothing is lost.
"""

import asyncio
import contextlib
import logging
import os
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from aggregator.parse.container import EnvelopeRegion
from aggregator.parse.worker import (
    HEADER_BYTES,
    Answer,
    CodecSpec,
    ParsedRegion,
    parse_region,
    with_lines,
)

log = logging.getLogger(__name__)
Region = bytes | EnvelopeRegion

POOL_MIN_BYTES = 32 * 1024
"""Reads smaller than this are parsed on the loop: parsing them there costs the loop about
what the hop to a worker and back would."""
JOBS_PER_WORKER = 8
"""Regions a worker may have in hand; past that a lane waits for one to come back. Parsing on
the loop instead, when the workers have their fill, lost: the loop is the busier process (it
orders and writes every record)."""
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding aggregator/
_WORKER_MAIN = (
    "import sys; sys.path.insert(0, sys.argv[1]); import aggregator; del sys.path[0]; "
    "from aggregator.parse.worker import serve; serve(0, 1)"
)
"""A worker's program: this very package, from where this module is, whatever the worker's
path finds first (a checkout in the working directory, a version installed since): a worker
of another version answers in a form this process cannot read. Everything else is found as
usual, and never in the working directory (``-P``)."""


def worker_command() -> list[str]:
    """The command that runs a worker."""
    return [sys.executable, "-P", "-c", _WORKER_MAIN, _PACKAGE_ROOT]


class WorkerFailed(Exception):
    """A worker could not parse a region (it died, or its parse raised)."""


def default_workers() -> int:
    """One worker per core but the loop's, at most 4 (past that, the merge is the limit)."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class _Worker:
    """One worker process and the regions it was sent, answered in the order sent."""

    def __init__(self, process: asyncio.subprocess.Process, number: int) -> None:
        import pickle  # here, not at the top: a start that spawns no worker never needs it

        self._pickle = pickle
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.requests = process.stdin
        self.replies = process.stdout
        self.waiting: deque[asyncio.Future[Answer]] = deque()
        self.reader = asyncio.create_task(self._read_replies(), name=f"parse-worker:{number}")

    async def parse(
        self, spec: CodecSpec, region: Region, limit: int, origin: str = ""
    ) -> ParsedRegion:
        if self.reader.done():  # it failed while this region waited for a slot
            raise WorkerFailed("stopped answering")
        reply: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.waiting.append(reply)
        request = self._pickle.dumps((spec, region, limit, origin), protocol=5)
        try:
            self.requests.write(len(request).to_bytes(4, "big"))
            self.requests.write(request)
            await self.requests.drain()
        except ConnectionError as error:  # it has exited
            reply.cancel()
            raise WorkerFailed(f"stopped reading ({error!r})") from None
        return with_lines(await reply, region, limit)

    async def _read_replies(self) -> None:
        try:
            while True:
                header = await self.replies.readexactly(HEADER_BYTES)
                payload = await self.replies.readexactly(int.from_bytes(header[:4], "big"))
                # A region stays in ``waiting`` until answered: if its reply cannot be
                # read, it fails below with the rest.
                reply = self.waiting[0]
                if not reply.done():  # done already if its lane was cancelled meanwhile
                    if header[4:] == b"R":
                        reply.set_result(self._pickle.loads(payload))
                    else:
                        reply.set_exception(WorkerFailed(payload.decode(errors="replace")))
                self.waiting.popleft()
        except Exception as error:  # it exited (or said what cannot be read): fail its regions
            failure = WorkerFailed(f"stopped answering ({error!r})")
            while self.waiting:
                reply = self.waiting.popleft()
                if not reply.done():
                    reply.set_exception(failure)
            # Read on to its end, unused: with its pipe left full, the worker would never
            # read that it must exit, and ``process.wait()``, which waits for the pipes to
            # close too, would never return.
            with contextlib.suppress(Exception):
                while await self.replies.read(1 << 16):
                    pass


class ParsePool:
    """``workers`` processes, started on the first large read (a live-only run starts none)."""

    def __init__(self, workers: int, command: Sequence[str] | None = None) -> None:
        """``command`` runs a worker (``worker_command()``)."""
        self.workers = workers
        self.command = list(command or worker_command())
        self._slots = asyncio.Semaphore(JOBS_PER_WORKER * workers)  # regions in flight
        self.broken = False  # a worker failed: parse on the loop from then on
        self._started: list[_Worker] = []
        self._starting: asyncio.Task[None] | None = None

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (for /metrics and the logs)."""
        return [worker.process.pid for worker in self._started]

    async def start(self) -> None:
        """Start the workers, once, and return when they are spawned (a matter of
        milliseconds: regions sent meanwhile wait in their pipes until they are up)."""
        if self._starting is None:
            self._starting = asyncio.create_task(self._start(), name="parse-workers:start")
        if not self._starting.done():  # every region asks: only the first ones wait
            await asyncio.shield(self._starting)

    async def parse(
        self, spec: CodecSpec, region: Region, limit: int, origin: str = ""
    ) -> ParsedRegion:
        """``parse_region`` in the least busy worker once one has room, the lane reading
        nothing more meanwhile (on the loop if the workers fail)."""
        try:
            await self.start()
            async with self._slots:
                if self._started and not self.broken:  # it may have failed meanwhile
                    worker = min(self._started, key=lambda worker: len(worker.waiting))
                    return await worker.parse(spec, region, limit, origin)
        except WorkerFailed as error:
            self._fail(error)
        return parse_region(spec, region, limit, origin)

    def _fail(self, error: Exception) -> None:
        if not self.broken:
            log.error("a parse worker failed: %s; parsing on the event loop", error)
            self.broken = True

    async def _start(self) -> None:
        try:
            for number in range(self.workers):
                self._started.append(await self._spawn(number))
        except Exception as error:  # lanes wait on this: whatever fails, parse on the loop
            self._fail(error)

    async def _spawn(self, number: int) -> _Worker:
        # A session of its own: Ctrl-C at a terminal reaches the whole foreground process
        # group, and a worker still starting up would die of it with a traceback. The main
        # process stops its workers itself, by closing their pipes.
        process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        return _Worker(process, number)

    async def close(self) -> None:
        """Stop the workers: each ends when its pipe closes (a region being parsed is
        dropped: its lane is stopping too)."""
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        workers, self._started = self._started, []
        for worker in workers:
            worker.requests.close()
        for worker in workers:
            try:
                async with asyncio.timeout(2.0):
                    await worker.process.wait()
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            worker.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.reader
