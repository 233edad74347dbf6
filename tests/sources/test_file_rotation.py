"""The file source across rotations, end to end through the CLI (SPEC §6; issue #3)."""

import os
from pathlib import Path

import orjson

from tests.conftest import Cli, follow_synced, start_cli, wait_until


async def follow(
    tmp_path: Path,
    cli_processes: list[Cli],
    paths: str = '["app.log"]',
    source: str = "",
    out_format: str = "json",
) -> Cli:
    """``run`` following ``paths`` from their start; ``source`` adds keys to the source."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[aggregator]\norder_window = "0s"\n'
        f'[sources.app]\ntype = "file"\npaths = {paths}\nstart_at = "beginning"\n'
        f'rotate_wait = "1s"\ncodec = "raw"\n{source}'
        f'[sinks.out]\ntype = "stdout"\nformat = "{out_format}"\n'
    )
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    return cli


def open_paths(cli: Cli) -> list[str]:
    """What the program's descriptors name now (in /proc). One it closes between the listing
    and its readlink is left out: it was being closed, which the tests wait for."""
    names = []
    for fd in Path(f"/proc/{cli.proc.pid}/fd").iterdir():
        try:
            names.append(os.readlink(fd))
        except OSError:
            continue
    return names


def holds(cli: Cli, path: Path) -> bool:
    """Whether the program has ``path`` open."""
    return str(path) in open_paths(cli)


def lines_of(cli: Cli) -> list[str]:
    return [orjson.loads(line)["line"] for line in cli.out]


def append(path: Path, *lines: str) -> None:
    with path.open("a") as file:
        file.write("".join(f"{line}\n" for line in lines))


async def test_rename_and_create_loses_nothing(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """logrotate's create mode: the writer keeps writing to the renamed file for a while; its
    lines and the new file's all arrive, once."""
    log = tmp_path / "app.log"
    log.write_text("")
    cli = await follow(tmp_path, cli_processes)
    append(log, *(f"first {n}" for n in range(5)))
    await cli.wait_for_out("first 4")
    with log.open("a") as still_open:  # the application's handle, opened before the rotation
        log.rename(tmp_path / "app.log.1")
        log.write_text("")
        append(log, *(f"new {n}" for n in range(5)))
        still_open.write("".join(f"late {n}\n" for n in range(5)))
        still_open.write("partial, never ended")
    await cli.wait_for(lambda: len(cli.out) >= 16, "every line")
    got = lines_of(cli)
    expected = [f"first {n}" for n in range(5)] + [f"new {n}" for n in range(5)]
    expected += [f"late {n}" for n in range(5)] + ["partial, never ended"]
    assert sorted(got) == sorted(expected)
    assert [line for line in got if line.startswith("late")] == [f"late {n}" for n in range(5)]
    assert await cli.stop() == 0


async def test_copytruncate_without_nul_junk(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """copytruncate with a writer that does not use O_APPEND: the file is read again from 0,
    past the NUL bytes the writer's old offset leaves; no line is repeated."""
    log = tmp_path / "app.log"
    log.write_text("")
    cli = await follow(tmp_path, cli_processes)
    writer = os.open(log, os.O_WRONLY)  # no O_APPEND: it writes at its own offset
    try:
        os.write(writer, b"".join(b"before %d\n" % n for n in range(20)))
        await cli.wait_for_out("before 19")
        os.truncate(log, 0)  # the copy is elsewhere; the truncation is what the tailer sees
        await wait_until(lambda: log.stat().st_size == 0, "the truncation")
        os.write(writer, b"".join(b"after %d\n" % n for n in range(5)))
        await cli.wait_for_out("after 4")
    finally:
        os.close(writer)
    got = lines_of(cli)
    assert got == [f"before {n}" for n in range(20)] + [f"after {n}" for n in range(5)]
    assert await cli.stop() == 0


async def test_delete_and_recreate(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A file deleted and created again is read from its start."""
    log = tmp_path / "app.log"
    log.write_text("one\n")
    cli = await follow(tmp_path, cli_processes)
    await cli.wait_for_out("one")
    log.unlink()
    log.write_text("two\nthree\n")
    await cli.wait_for_out("three")
    assert lines_of(cli) == ["one", "two", "three"]
    assert await cli.stop() == 0


async def test_symlink_flip(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """The Kubernetes layout: the followed path is a symlink flipped to a new file."""
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("from a\n")
    link = tmp_path / "current.log"
    link.symlink_to(first)
    cli = await follow(tmp_path, cli_processes, '["current.log"]')
    await cli.wait_for_out("from a")
    second.write_text("from b\n")
    flip = tmp_path / "flip.tmp"
    flip.symlink_to(second)
    flip.rename(link)  # atomic, as kubelet does it
    append(first, "a, after the flip")
    await cli.wait_for(lambda: len(cli.out) >= 3, "three lines")
    assert sorted(lines_of(cli)) == ["a, after the flip", "from a", "from b"]
    assert await cli.stop() == 0


async def test_deleted_file_is_let_go(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A deleted file that does not come back is closed after rotate_wait: no descriptor kept."""
    log = tmp_path / "app.log"
    log.write_text("only line\n")
    cli = await follow(tmp_path, cli_processes)
    await cli.wait_for_out("only line")

    def holds_log() -> bool:
        return any(name.startswith(str(log)) for name in open_paths(cli))

    assert holds_log()
    log.unlink()
    await wait_until(lambda: not holds_log(), "the deleted file to be closed")
    assert await cli.stop() == 0


async def test_files_in_a_directory_made_later_are_found(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A glob whose directory does not exist yet: files made there later are followed, from
    their start, within a rescan (a directory that cannot be watched is rescanned every second)."""
    other = tmp_path / "other.log"
    other.write_text("")
    cli = await start_cli("tail", "logs/**/*.log", "other.log", cwd=tmp_path)
    cli_processes.append(cli)
    await follow_synced(cli, other, "running")  # discovery at start is over
    nested = tmp_path / "logs" / "app"
    nested.mkdir(parents=True)
    (nested / "new.log").write_text("found it\n")
    await cli.wait_for_out("found it")
    assert await cli.stop() == 0


async def test_quiet_files_are_closed_and_reopened(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A watched file quiet for close_idle gives its descriptor back; a later change (even
    after it was renamed away) reopens it by its identity, and nothing is lost."""
    log = tmp_path / "app.log"
    log.write_text("")
    cli = await follow(tmp_path, cli_processes, source='close_idle = "100ms"\n', out_format="raw")
    with log.open("a", buffering=1) as writer:  # the application's handle, kept throughout
        writer.write("first\n")
        await cli.wait_for_out("first")
        await wait_until(lambda: not holds(cli, log), "the quiet file to be closed")
        writer.write("after closing\n")
        await cli.wait_for_out("after closing")
        await wait_until(lambda: not holds(cli, log), "the file to be closed again")
        log.rename(tmp_path / "app.log.1")
        writer.write("renamed while closed\n")
        log.write_text("new file\n")
        await cli.wait_for(lambda: len(cli.out) >= 4, "every line")
    assert await cli.stop() == 0
    assert sorted(cli.out) == ["after closing", "first", "new file", "renamed while closed"]


async def test_a_quiet_file_deleted_and_made_again_is_read_at_once(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A watched file closed while quiet (close_idle), then deleted and made again at its path:
    the new file is read at once, not at the 30 s safety rescan. (Its reader took it for gone
    and stopped, after the rescan that the deletion woke had looked and still counted the path
    followed: tests/sources/test_file_model.py timed out on a "recreate".)"""
    log = tmp_path / "app.log"
    log.write_text("")
    cli = await follow(tmp_path, cli_processes, source='close_idle = "50ms"\n', out_format="raw")
    kept = []  # the deleted files held open here: a new file cannot take an old one's inode
    try:
        for generation in range(3):
            append(log, f"in file {generation}")
            await cli.wait_for_out(f"in file {generation}")
            await wait_until(lambda: not holds(cli, log), "the quiet file closed")
            kept.append(log.open("rb"))
            log.unlink()
        append(log, "in file 3")
        await cli.wait_for_out("in file 3")
    finally:
        for file in kept:
            file.close()
    assert await cli.stop() == 0
    assert cli.out == [f"in file {n}" for n in range(4)]


async def test_a_held_multiline_record_leaves_after_its_timeout(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A followed file's last record, held by the multiline joiner, is written once no line
    has come for the timeout (the follower's wake by deadline), with its continuation lines."""
    log = tmp_path / "app.log"
    log.write_text("")
    # The timeout is how long the test may take to append the trace after "second" was read:
    # 200 ms, a busy box could pass it (and "second" leave alone, the trace after it).
    multiline = "multiline = { start = '^\\S', timeout = \"2s\" }\n"
    cli = await follow(tmp_path, cli_processes, source=multiline)
    append(log, "first", "second")
    await cli.wait_for_out("first")  # "second" is held: no line has started after it
    append(log, "  its trace")
    await cli.wait_for(lambda: len(cli.out) >= 2, "the held record after its timeout")
    assert lines_of(cli) == ["first", "second\n  its trace"]
    assert await cli.stop() == 0
