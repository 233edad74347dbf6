"""Helpers to run the CLI as a subprocess, as a user would, and wait on what it prints."""

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# No example has a time limit: on a busy 2-core box any of them can take a second, and a
# deadline would fail a property that holds. Hangs are caught by the waits' own deadlines.
# Nor is how fast examples are made judged (the too_slow health check): that is the load too.
settings.register_profile(
    "busy-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("busy-machine")

DEADLINE = 15.0
"""Seconds any single wait in a test may take before it fails (generous for a busy 2-core box)."""
LONGEST_WAIT = 4 * DEADLINE
"""Seconds in all a wait that keeps progressing may take (see ``wait_while_growing``)."""


class Cli:
    """A running ``aggregator`` process with its stdout and stderr collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self.cleanups: list[Callable[[], Awaitable[None]]] = []
        """Run by ``cli_processes`` at the test's end, while its loop still runs: clients of
        this process (a websocket left open would be closed by the garbage collector, with a
        warning that fails whichever later test it lands in)."""
        self._changed = asyncio.Event()
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._collect(proc.stdout, self.out), name="test:stdout"),
            asyncio.create_task(self._collect(proc.stderr, self.err), name="test:stderr"),
        ]

    async def _collect(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode("utf-8", "replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, condition: Callable[[], object], what: str) -> None:
        """Wait until ``condition()`` holds, failing after DEADLINE with what was seen."""
        try:
            async with asyncio.timeout(DEADLINE):
                while not condition():
                    if all(reader.done() for reader in self._readers) and not condition():
                        raise AssertionError(f"the program ended before {what}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {what}\nstdout: {self.out[-20:]}\nstderr: {self.err[-20:]}"
            ) from None

    async def wait_for_out(self, text: str) -> None:
        await self.wait_for(lambda: any(text in line for line in self.out), f"{text!r} on stdout")

    async def listening(self, scheme: str) -> tuple[str, int]:
        """The address a socket source logged that it listens on."""
        return await self._logged_address(rf"listening on {scheme}://([\d.]+):(\d+)")

    async def serving(self) -> tuple[str, int]:
        """The address a websocket sink logged that it serves on."""
        return await self._logged_address(r"serving on http://([\d.]+):(\d+)/")

    async def _logged_address(self, regex: str) -> tuple[str, int]:
        pattern = re.compile(regex)
        await self.wait_for(lambda: any(pattern.search(line) for line in self.err), regex)
        match = next(m for line in self.err if (m := pattern.search(line)))
        return match.group(1), int(match.group(2))

    async def exit_code(self) -> int:
        async with asyncio.timeout(DEADLINE):
            code = await self.proc.wait()
            await asyncio.gather(*self._readers)
        return code

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and return the exit code. A signal the program handles is sent once
        it handles it: one sent while it still imports would end it as the default does."""
        if signum != signal.SIGKILL:
            await wait_until(
                lambda: self.proc.returncode is not None or catches(self.proc.pid, signum),
                f"the program to handle signal {signum}",
            )
        if self.proc.returncode is None:
            self.proc.send_signal(signum)
        return await self.exit_code()


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (its SigCgt mask in /proc);
    True where there is no /proc to ask."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)


async def start_cli(
    *args: str,
    cwd: Path,
    stdin: int | None = asyncio.subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> Cli:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aggregator",
        *args,
        cwd=cwd,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    return Cli(proc)


@pytest.fixture
async def cli_processes() -> AsyncIterator[list[Cli]]:
    """Processes a test started; any still running at the end are killed."""
    started: list[Cli] = []
    yield started
    for cli in started:
        for cleanup in cli.cleanups:
            await cleanup()
        if cli.proc.returncode is None:
            cli.proc.kill()
            await cli.proc.wait()


async def wait_until(condition: Callable[[], object], what: str) -> None:
    """Check ``condition`` (a file's state, say) every 20 ms until it holds, or fail at DEADLINE."""
    try:
        async with asyncio.timeout(DEADLINE):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def wait_while_growing(
    condition: Callable[[], object], size: Callable[[], int], what: str
) -> None:
    """Check ``condition`` every 50 ms until it holds, for work whose time grows with the
    machine's load (thousands of records to come): it fails once ``size()``, what has come
    so far, has not grown for DEADLINE, or after LONGEST_WAIT in all."""
    loop = asyncio.get_running_loop()
    began = grew = loop.time()
    last = size()
    while not condition():
        now = loop.time()
        if now - grew > DEADLINE or now - began > LONGEST_WAIT:
            raise AssertionError(f"timed out waiting for {what} (at {last})")
        await asyncio.sleep(0.05)
        if (current := size()) > last:
            last, grew = current, loop.time()


async def follow_synced(cli: Cli, path: Path, marker: str) -> None:
    """Append ``marker`` lines to ``path`` until one shows on stdout: the file is followed.

    A follower starts at the end of the file, so a line written before it opened the file
    would never show; writing until one does is a condition, not a guess at a delay.
    """
    async with asyncio.timeout(DEADLINE):
        while not any(marker in line for line in cli.out):
            with path.open("a") as file:
                file.write(f"{marker}\n")
            try:
                async with asyncio.timeout(0.2):
                    await cli.wait_for_out(marker)
            except (TimeoutError, AssertionError):
                continue
