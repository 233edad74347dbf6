"""Faults, end to end: a full disk, a directory gone, an unreadable file, a missing path, a
file rotated away before it was read (SPEC §2, §6; issues #15, #16)."""

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEADLINE, Cli, start_cli, wait_until
from tests.helpers.faults import NO_DAC, can_drop_privileges, fill, small_disk_in, start_cli_as
from tests.helpers.web import http_get


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted after the test."""
    with small_disk_in(tmp_path) as mount:
        yield mount


def write_lines(path: Path, prefix: str, count: int, width: int = 60) -> list[str]:
    """Append ``count`` numbered lines of about ``width`` bytes; the lines written."""
    lines = [f"{prefix} {n:06d} {'x' * width}" for n in range(count)]
    with path.open("a") as file:
        file.write("".join(f"{line}\n" for line in lines))
    return lines


def lines_in(path: Path, whole: bool = False) -> list[str]:
    """The whole lines of an output file; ``whole``: check that it ends with one (while
    nothing writes it: a write under way may be seen half done)."""
    data = path.read_bytes() if path.exists() else b""
    if whole:
        assert not data or data.endswith(b"\n"), f"{path} ends in part of a line: {data[-80:]!r}"
    return data[: data.rfind(b"\n") + 1].decode().splitlines()


def ends_whole(path: Path) -> bool:
    """Whether ``path`` ends with a whole line (or is empty)."""
    data = path.read_bytes()
    return not data or data.endswith(b"\n")


def config_for(tmp_path: Path, out: Path, interval: str = "100ms") -> Path:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\ncheckpoint_interval = "{interval}"\n'
        'order_window = "0s"\n'
        f'[sources.app]\ntype = "file"\npaths = ["{tmp_path / "app.log"}"]\n'
        'start_at = "beginning"\ncodec = "raw"\n'
        f'[sinks.out]\ntype = "file"\npath = "{out}"\nformat = "raw"\n'
    )
    return config


async def start_run(tmp_path: Path, out: Path, cli_processes: list[Cli]) -> Cli:
    cli = await start_cli("run", "-c", str(config_for(tmp_path, out)), cwd=tmp_path)
    cli_processes.append(cli)
    return cli


def said(cli: Cli, *words: str) -> list[str]:
    return [line for line in cli.err if all(word in line for word in words)]


@pytest.mark.slow
async def test_full_disk_holds_the_records_and_goes_on(
    tmp_path: Path, small_disk: Path, cli_processes: list[Cli]
) -> None:
    """A full disk is said once with the path and the reason; no partial line is left; once
    there is room every held line is written, once, and the run goes on."""
    log, out = tmp_path / "app.log", small_disk / "out.log"
    expected = write_lines(log, "before", 10)
    cli = await start_run(tmp_path, out, cli_processes)
    await wait_until(lambda: lines_in(out) == expected, "the first lines written")
    filler = fill(small_disk)
    expected += write_lines(log, "while-full", 2000)  # ~140 KB: cannot fit
    await cli.wait_for(lambda: said(cli, str(out), "No space left on device"), "the disk full")
    assert cli.proc.returncode is None
    # Each retry (from 100 ms apart) writes what fits in the file's last page, then cuts it
    # back: seen between the two, the file ends in part of a line. Cut back, it ends whole.
    await wait_until(lambda: ends_whole(out), "the failed write cut back to a whole line")
    written = lines_in(out)
    assert written == expected[: len(written)]
    filler.unlink()
    await wait_until(lambda: lines_in(out) == expected, "the held lines written")
    await cli.wait_for(lambda: said(cli, str(out), "writing again"), "the recovery said")
    expected += write_lines(log, "after", 10)
    await wait_until(lambda: lines_in(out) == expected, "the run going on")
    assert len(said(cli, "No space left on device")) == 1
    assert await cli.stop() == 0
    assert lines_in(out, whole=True) == expected


@pytest.mark.slow
async def test_full_disk_then_sigkill_loses_nothing(
    tmp_path: Path, small_disk: Path, cli_processes: list[Cli]
) -> None:
    """Checkpoints do not pass what the sink could not write: killed while the disk is full,
    a restart with room writes every line (after whole lines only)."""
    log, out = tmp_path / "app.log", small_disk / "out.log"
    expected = write_lines(log, "before", 10)
    cli = await start_run(tmp_path, out, cli_processes)
    await wait_until(lambda: lines_in(out) == expected, "the first lines written")
    await wait_until(lambda: (tmp_path / "state" / "checkpoints.json").exists(), "a checkpoint")
    filler = fill(small_disk)
    expected += write_lines(log, "while-full", 2000)
    await cli.wait_for(lambda: said(cli, "No space left on device"), "the disk full")
    await cli.stop(signal.SIGKILL)
    filler.unlink()
    again = await start_run(tmp_path, out, cli_processes)
    await wait_until(lambda: set(lines_in(out)) >= set(expected), "every line after the restart")
    assert await again.stop() == 0
    assert lines_in(out, whole=True)[:10] == expected[:10]


async def test_output_directory_removed_or_blocked(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A sink whose directory is removed writes a new one; while the directory cannot be made
    (a file in its place) it says so and retries, and goes on once it can."""
    log, out = tmp_path / "app.log", tmp_path / "outdir" / "out.log"
    first = write_lines(log, "first", 5)
    cli = await start_run(tmp_path, out, cli_processes)
    await wait_until(lambda: lines_in(out) == first, "the first lines")
    shutil.rmtree(out.parent)
    second = write_lines(log, "second", 5)
    await wait_until(lambda: lines_in(out) == second, "a new file in a new directory")
    assert said(cli, str(out), "no longer the file being written")
    shutil.rmtree(out.parent)
    out.parent.write_text("in the way\n")
    third = write_lines(log, "third", 5)
    await cli.wait_for(lambda: said(cli, str(out), "cannot write"), "the error said")
    out.parent.unlink()
    await wait_until(lambda: lines_in(out) == third, "the held lines written")
    assert await cli.stop() == 0


async def test_state_dir_unwritable_while_running(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A state dir that cannot be written is said once, the run goes on, the save is retried
    and succeeds once the state dir can be written again."""
    log, out = tmp_path / "app.log", tmp_path / "out.log"
    state = tmp_path / "state"
    first = write_lines(log, "first", 5)
    cli = await start_run(tmp_path, out, cli_processes)
    await wait_until(lambda: (state / "checkpoints.json").exists(), "a first checkpoint")
    shutil.rmtree(state)
    state.write_text("in the way\n")
    second = write_lines(log, "second", 5)
    await cli.wait_for(lambda: said(cli, "cannot write the checkpoints"), "the error said")
    began = time.monotonic()
    await wait_until(lambda: lines_in(out) == first + second, "lines still delivered")
    # At 100 ms a checkpoint, a second is ten failed saves: said once all the same.
    await wait_until(lambda: time.monotonic() - began > 1.0, "ten checkpoint intervals")
    assert len(said(cli, "cannot write the checkpoints")) == 1
    state.unlink()
    write_lines(log, "third", 5)
    await cli.wait_for(lambda: said(cli, "checkpoints saved again"), "the recovery said")
    await wait_until(lambda: (state / "checkpoints.json").exists(), "checkpoints saved")
    assert await cli.stop() == 0


async def test_unreadable_file_is_read_once_readable(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A file the program may not read is said once; after a chmod its lines arrive."""
    if not can_drop_privileges(tmp_path / "probe"):
        pytest.skip("cannot run a child without the power to read every file")
    log = tmp_path / "app.log"
    log.write_text("one\ntwo\n")
    log.chmod(0)
    cli = await start_cli_as(NO_DAC, "tail", str(log), "--from-start", cwd=tmp_path)
    cli_processes.append(cli)
    await cli.wait_for(lambda: said(cli, str(log), "Permission denied"), "the warning")
    log.chmod(0o644)
    await cli.wait_for_out("two")
    with log.open("a") as file:
        file.write("three\n")
    await cli.wait_for_out("three")
    assert len(said(cli, "Permission denied")) == 1
    assert [line.split(" | ", 1)[1] for line in cli.out] == ["one", "two", "three"]
    assert await cli.stop() == 0


async def test_missing_path_is_said_and_followed_once_it_appears(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A path that does not exist (nor its directory) is named on stderr and read once it
    appears, like tail -F; the other inputs are read meanwhile."""
    there, missing = tmp_path / "there.log", tmp_path / "later" / "dir" / "app.log"
    there.write_text("present\n")
    cli = await start_cli("tail", str(there), str(missing), "--from-start", cwd=tmp_path)
    cli_processes.append(cli)
    await cli.wait_for_out("present")
    await cli.wait_for(lambda: said(cli, str(missing), "no such file"), "the missing path named")
    missing.parent.mkdir(parents=True)
    missing.write_text("arrived\n")
    await cli.wait_for_out("arrived")
    assert said(cli, str(missing), "appeared")
    assert await cli.stop() == 0


async def test_missing_path_with_no_follow_exits_1(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """With --no-follow a missing path is an error: the rest is read, then exit 1."""
    (tmp_path / "a.log").write_text("2026-11-25T10:00:00Z a1\n2026-11-25T10:00:02Z a2\n")
    (tmp_path / "b.log").write_text("2026-11-25T10:00:01Z b1\n")
    cli = await start_cli(
        "tail", "a.log", "nope.log", "b.log", "--no-follow", "--format", "raw", cwd=tmp_path
    )
    cli_processes.append(cli)
    assert await cli.exit_code() == 1
    assert cli.out == ["2026-11-25T10:00:00Z a1", "2026-11-25T10:00:01Z b1",
                       "2026-11-25T10:00:02Z a2"]  # fmt: skip
    assert said(cli, "nope.log", "no such file")


@pytest.mark.slow
async def test_file_rotated_away_before_it_was_read_is_counted(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Rotated while stdout is not read: a file still on disk is read, one deleted before it
    could be read is warned with its name and size and counted in /metrics."""
    log = tmp_path / "app.log"
    write_lines(log, "first", 100_000)  # ~7 MB: far more than the pipeline holds
    cli = await start_cli_as(
        [], "tail", str(log), "--from-start", "--format", "raw", "--ws", "127.0.0.1:0",
        cwd=tmp_path, held=True,
    )  # fmt: skip
    cli_processes.append(cli)
    host, port = await cli.serving()

    async def metrics() -> str:
        return (await asyncio.to_thread(http_get, f"http://{host}:{port}/metrics"))[2]

    async def reading_first() -> None:
        """Until the first file is open: renamed before, the new one would be read instead."""
        async with asyncio.timeout(DEADLINE):
            while 'aggregator_files_open{source="app.log"} 1' not in await metrics():
                await asyncio.sleep(0.05)

    await reading_first()

    def replace(prefix: str, count: int) -> list[str]:
        """Rotate: app.log → app.log.1, then a new app.log with its content at once."""
        staged = tmp_path / "staged"
        lines = write_lines(staged, prefix, count)
        os.rename(log, tmp_path / "app.log.1")
        os.rename(staged, log)
        return lines

    async def noted(count: int) -> None:
        await cli.wait_for(lambda: len(said(cli, "replaced while its reader")) >= count,
                           f"replacement {count} noted")  # fmt: skip

    lost = replace("lost", 100)  # while "first" is still being read
    lost_bytes = log.stat().st_size
    await noted(1)
    kept = replace("kept", 100)  # "first" is open still; "lost" is app.log.1 now
    await noted(2)
    (tmp_path / "app.log.1").unlink()  # "lost" goes before it was read
    last = write_lines(log, "last", 100)
    cli.read_stdout()
    await cli.wait_for(lambda: set(kept + last) <= set(cli.out), "the lines not lost")
    warned = said(cli, str(log), "deleted before it could be read", f"{lost_bytes} bytes")
    assert len(warned) == 1
    assert not set(lost) & set(cli.out)
    exported = await metrics()
    assert f'aggregator_file_bytes_lost_total{{source="app.log"}} {lost_bytes}' in exported
    assert 'aggregator_files_lost_total{source="app.log"} 1' in exported
    assert await cli.stop() == 0
