"""How stdout's bytes are written: small writes to a file or /dev/null on the loop, no thread
hop (#27: a live line's cost); large ones and a terminal's in a thread."""

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from aggregator.sinks.writers import DIRECT_WRITE, open_writer


async def done_at_once(write: Coroutine[Any, Any, None]) -> bool:
    """Whether ``write`` ends without giving the loop a turn (no hop to a thread): a callback
    scheduled before it has not run when it is done."""
    turns: list[bool] = []
    asyncio.get_running_loop().call_soon(turns.append, True)
    await write
    return not turns


async def test_a_small_write_to_a_file_is_made_on_the_loop(tmp_path: Path) -> None:
    """Writes up to DIRECT_WRITE to a regular file end without a hop; a larger one waits for
    a thread; the file holds every byte in order."""
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        writer = await open_writer(fd)
        assert await done_at_once(writer.write(b"one\n"))
        assert await done_at_once(writer.write(b"x" * DIRECT_WRITE))
        assert not await done_at_once(writer.write(b"z" * (DIRECT_WRITE + 1)))
        await writer.close()
    finally:
        os.close(fd)
    assert path.read_bytes() == b"one\n" + b"x" * DIRECT_WRITE + b"z" * (DIRECT_WRITE + 1)


async def test_a_small_write_to_dev_null_is_made_on_the_loop() -> None:
    """/dev/null (a device, not a terminal) takes small writes on the loop too."""
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        writer = await open_writer(fd)
        assert await done_at_once(writer.write(b"line\n"))
    finally:
        os.close(fd)


async def test_a_terminal_is_written_in_a_thread() -> None:
    """A terminal can block the writer (Ctrl-S): even a small write goes to a thread."""
    try:
        controller, terminal = os.openpty()
    except OSError:
        pytest.skip("no pseudo-terminal")
    try:
        writer = await open_writer(terminal)
        assert not await done_at_once(writer.write(b"line\n"))
        async with asyncio.timeout(5):
            while b"line" not in (seen := os.read(controller, 100)):
                pass
        assert b"line" in seen
    finally:
        os.close(terminal)
        os.close(controller)
