"""Helpers for the fault tests: a small filesystem to fill, a child without root's powers, and
a program whose stdout is not read until the test says so (a slow sink)."""

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli

NO_DAC = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]
"""Run a child as root without the powers to read any file whatever its mode."""


@contextlib.contextmanager
def small_disk_in(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted in ``tmp_path`` (unmounted after); skips where mounting is
    refused."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to its last byte with a file; remove that file to make room again."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as file:
        block = b"\0" * 4096
        while True:
            try:
                file.write(block)
            except OSError:
                break
        while True:  # the last bytes of the last block
            try:
                file.write(b"\0")
            except OSError:
                break
    return filler


def can_drop_privileges(probe: Path) -> bool:
    """Whether a child run under ``NO_DAC`` is really refused an unreadable file."""
    if shutil.which("setpriv") is None:
        return False
    probe.write_text("x")
    probe.chmod(0)
    done = subprocess.run([*NO_DAC, "cat", str(probe)], capture_output=True, check=False)
    probe.unlink()
    return done.returncode != 0 and b"ermission" in done.stderr


class HeldCli(Cli):
    """A ``Cli`` whose stdout is read only once ``read_stdout`` is called: until then the
    program's writes to stdout block once the pipe is full, and the pipeline waits."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._reading = asyncio.Event()
        super().__init__(proc)

    async def _collect(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        if into is self.out:
            await self._reading.wait()
        await super()._collect(stream, into)

    def read_stdout(self) -> None:
        self._reading.set()


async def start_cli_as(prefix: list[str], *args: str, cwd: Path, held: bool = False) -> Cli:
    """``start_cli`` with a command before the program (``NO_DAC``), and optionally held."""
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "aggregator",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    return HeldCli(proc) if held else Cli(proc)
