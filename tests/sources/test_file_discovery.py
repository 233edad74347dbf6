"""New files a glob matches are followed as they appear, end to end through the CLI."""

import asyncio
import time
from pathlib import Path

from tests.conftest import Cli, start_cli

SOON = 8.0
"""Seconds a new file may take to show: well under the 30 s safety rescan with inotify, well
over the 1 s rescan without it, even on a loaded machine."""


async def shows_soon(cli: Cli, text: str) -> float:
    """Seconds until ``text`` is on stdout; fails past ``SOON``."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(SOON):
            await cli.wait_for(lambda: any(text in line for line in cli.out), repr(text))
    except TimeoutError:
        raise AssertionError(f"{text!r} not out within {SOON}s\nstderr: {cli.err}") from None
    return time.monotonic() - start


async def test_a_file_made_just_after_start_is_followed_at_once(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """tail 'logs/*.log' with no match yet: a file made as soon as it says it follows the glob
    shows within seconds (not at the 30 s safety rescan)."""
    (tmp_path / "logs").mkdir()
    cli = await start_cli("tail", "--format", "raw", "logs/*.log", cwd=tmp_path)
    cli_processes.append(cli)
    await cli.wait_for(lambda: any("following it as files appear" in e for e in cli.err),
                       "the glob said followed")  # fmt: skip
    (tmp_path / "logs" / "new.log").write_text("the first line\n")
    await shows_soon(cli, "the first line")


async def test_files_made_in_a_directory_watched_late_are_found(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """run -c with a glob in a directory made after start: its files show within seconds,
    and so does a second file made once the directory is watched."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[aggregator]\norder_window = "0s"\n'
        '[sources.app]\ntype = "file"\npaths = ["later/*.log"]\ncodec = "raw"\n'
        '[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
    )
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    said = "later/*.log: no file matches"  # by the source, once it looked
    await cli.wait_for(lambda: any(said in e for e in cli.err), "the glob said followed")
    assert sum("no file matches" in line for line in cli.err) == 1, cli.err  # said once
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "a.log").write_text("from a\n")
    await shows_soon(cli, "from a")
    (tmp_path / "later" / "b.log").write_text("from b\n")
    await shows_soon(cli, "from b")
