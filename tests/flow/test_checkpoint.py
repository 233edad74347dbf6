"""Checkpoints: the store, the commit rule, and restarts end to end (SPEC §6)."""

import os
import signal
from pathlib import Path

import orjson
import pytest

from aggregator.flow.checkpoints import Checkpointer
from aggregator.sources.file.identity import Position, head_hash
from aggregator.sources.file.resume import CheckpointStore
from tests.conftest import Cli, start_cli, wait_until


def position(key: str, path: Path, offset: int, head: bytes = b"head") -> Position:
    return Position(key, str(path), offset, len(head), head_hash(head))


def test_store_round_trip_and_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Saved positions load back; an unreadable or unknown file is reported and ignored."""
    store = CheckpointStore(tmp_path)
    assert store.load() == {}
    saved = {"1:2": position("1:2", tmp_path / "a.log", 42)}
    store.save(saved)
    assert store.load() == saved
    store.path.write_text("{not json")
    assert store.load() == {}
    store.path.write_bytes(orjson.dumps({"version": 99, "files": {}}))
    assert store.load() == {}
    assert [r.getMessage() for r in caplog.records if str(store.path) in r.getMessage()]


EDITS_GONE_WRONG = [
    {"offset": 1.5},
    {"offset": "12"},
    {"offset": -1},
    {"records": True},
    {"path": None},
    {"colour": "red"},
]


@pytest.mark.parametrize("change", EDITS_GONE_WRONG)
def test_an_entry_edited_wrong_is_dropped_and_named_and_the_others_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: dict[str, object]
) -> None:
    """A checkpoint file edited by hand: an entry whose field has the wrong type is reported
    by its key and ignored (that file starts from start_at); the other entries still hold."""
    store = CheckpointStore(tmp_path)
    good = position("1:2", tmp_path / "a.log", 42)
    store.save({"1:2": good, "3:4": position("3:4", tmp_path / "b.log", 7)})
    saved = orjson.loads(store.path.read_bytes())
    saved["files"]["3:4"].update(change)
    store.path.write_bytes(orjson.dumps(saved))
    assert store.load() == {"1:2": good}
    assert any("checkpoint of 3:4" in r.getMessage() for r in caplog.records)


def test_identity_needs_the_same_first_bytes() -> None:
    """An inode reused by a new file is not the old file: its first bytes differ."""
    saved = Position("1:2", "a.log", 10, 4, head_hash(b"abcd"))
    assert saved.matches(b"abcdef")
    assert not saved.matches(b"xbcdef")
    assert not saved.matches(b"ab")


async def test_positions_commit_only_once_delivered(tmp_path: Path) -> None:
    """A position is committed when the sinks have written up to its seq, not before."""
    log = tmp_path / "a.log"
    log.write_text("x")
    key = f"{os.stat(log).st_dev}:{os.stat(log).st_ino}"
    checkpointer = Checkpointer(CheckpointStore(tmp_path), interval=1.0)
    checkpointer.add([(5, position(key, log, 100)), (9, position(key, log, 200))])
    checkpointer.advance(4)
    assert checkpointer.positions == {}
    checkpointer.advance(8)
    assert checkpointer.positions[key].offset == 100
    checkpointer.advance(9)
    await checkpointer.save()
    assert CheckpointStore(tmp_path).load()[key].offset == 200
    log.unlink()  # gone files are dropped at the next save
    checkpointer.add([(10, position(key, log, 300))])
    checkpointer.advance(10)
    await checkpointer.save()
    assert CheckpointStore(tmp_path).load() == {}


# --- restarts, end to end ---------------------------------------------------------------------


def write_config(tmp_path: Path, start_at: str = "end", follow: bool = True) -> Path:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\ncheckpoint_interval = "100ms"\n'
        f'[sources.app]\ntype = "file"\npaths = ["app.log"]\nstart_at = "{start_at}"\n'
        f'codec = "raw"\nfollow = {str(follow).lower()}\n'
        '[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
    )
    return config


async def run(
    tmp_path: Path, cli_processes: list[Cli], start_at: str = "end", follow: bool = True
) -> Cli:
    config = write_config(tmp_path, start_at, follow)
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    return cli


async def run_and_stop(tmp_path: Path, cli_processes: list[Cli], text: str, last: str) -> Cli:
    """A first run from the start of an empty app.log: ``text`` appended, read up to the
    line ``last``, then SIGTERM (exit 0)."""
    log = tmp_path / "app.log"
    log.write_text("")
    first = await run(tmp_path, cli_processes, start_at="beginning")
    append(log, text)
    await first.wait_for_out(last)
    assert await first.stop(signal.SIGTERM) == 0
    return first


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def saved_offset(tmp_path: Path) -> int:
    store = CheckpointStore(tmp_path / "state")
    return max((p.offset for p in store.load().values()), default=-1)


async def test_sigterm_then_restart_every_line_once(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Stop with SIGTERM, write while stopped (finishing a partial line too), restart: every
    line exactly once, the partial one as one record."""
    log = tmp_path / "app.log"
    first = await run_and_stop(tmp_path, cli_processes, "one\ntwo\nhal", "two")
    append(log, "f and half\nthree\n")
    second = await run(tmp_path, cli_processes)
    await second.wait_for_out("three")
    append(log, "four\n")
    await second.wait_for_out("four")
    assert await second.stop() == 0
    assert first.out == ["one", "two"]
    assert second.out == ["half and half", "three", "four"]


async def test_restart_with_the_file_at_its_saved_size_reads_nothing_again(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Stopped with SIGTERM and started again with nothing written in between (the file
    exactly at its saved offset): nothing is read again, nothing repeated."""
    log = tmp_path / "app.log"
    first = await run_and_stop(tmp_path, cli_processes, "one\ntwo\n", "two")
    assert saved_offset(tmp_path) == log.stat().st_size
    # Read through and end (follow = false), from the checkpoint: an end of its own, so no
    # guess at when a follower would have read what it was going to read.
    second = await run(tmp_path, cli_processes, start_at="beginning", follow=False)
    assert await second.exit_code() == 0, second.err
    assert first.out == ["one", "two"]
    assert second.out == []
    assert saved_offset(tmp_path) == log.stat().st_size


async def test_sigkill_then_restart_loses_nothing(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """After SIGKILL nothing is lost: a restart resumes from the last checkpoint."""
    log = tmp_path / "app.log"
    log.write_text("")
    first = await run(tmp_path, cli_processes, start_at="beginning")
    append(log, "".join(f"line {n}\n" for n in range(100)))
    await first.wait_for_out("line 99")
    await wait_until(lambda: saved_offset(tmp_path) == log.stat().st_size, "a checkpoint")
    first.proc.send_signal(signal.SIGKILL)
    await first.exit_code()
    append(log, "".join(f"after {n}\n" for n in range(10)))
    second = await run(tmp_path, cli_processes)
    await second.wait_for_out("after 9")
    assert await second.stop() == 0
    assert second.out == [f"after {n}" for n in range(10)]  # the checkpoint covered the rest


async def test_corrupt_checkpoint_is_reported_and_the_program_starts(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """An unreadable checkpoint names its path; the program starts from start_at anyway."""
    (tmp_path / "state").mkdir()
    broken = tmp_path / "state" / "checkpoints.json"
    broken.write_text("garbage")
    (tmp_path / "app.log").write_text("from the start\n")
    cli = await run(tmp_path, cli_processes, start_at="beginning")
    await cli.wait_for_out("from the start")
    assert any(str(broken) in line for line in cli.err)
    assert await cli.stop() == 0


async def test_an_offset_edited_to_a_float_is_reported_and_the_file_read_again(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A saved offset that is not an integer (a file edited by hand) crashed the run once,
    in the read; now the entry is named and the file read from start_at."""
    await run_and_stop(tmp_path, cli_processes, "one\ntwo\n", "two")
    store = tmp_path / "state" / "checkpoints.json"
    saved = orjson.loads(store.read_bytes())
    for entry in saved["files"].values():
        entry["offset"] = float(entry["offset"])
    store.write_bytes(orjson.dumps(saved))
    append(tmp_path / "app.log", "three\n")
    cli = await run(tmp_path, cli_processes, start_at="beginning")
    await cli.wait_for_out("three")
    assert any("is not in a known format" in line and "offset" in line for line in cli.err)
    assert await cli.stop() == 0


async def test_truncated_while_stopped_is_read_from_zero(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A file shorter than its saved offset was truncated: it is read again from 0."""
    log = tmp_path / "app.log"
    log.write_text("a long first line\nand more\n")
    first = await run(tmp_path, cli_processes, start_at="beginning")
    await first.wait_for_out("and more")
    assert await first.stop() == 0
    with log.open("r+") as file:  # keep the inode, keep the first bytes, shrink
        file.truncate(0)
        file.write("a long first\n")
    second = await run(tmp_path, cli_processes)
    await second.wait_for_out("a long first")
    assert await second.stop() == 0
    assert second.out == ["a long first"]


async def test_rotated_while_stopped(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """Written to, then renamed away while the program was stopped: the renamed file's unread
    lines are read (it is found by its identity), and the new file from its start."""
    log = tmp_path / "app.log"
    log.write_text("")
    first = await run(tmp_path, cli_processes, start_at="beginning")
    append(log, "seen 1\nseen 2\n")
    await first.wait_for_out("seen 2")
    assert await first.stop() == 0
    append(log, "unread 1\nunread 2\n")
    log.rename(tmp_path / "app.log.1")
    log.write_text("new 1\n")
    second = await run(tmp_path, cli_processes, start_at="beginning")
    await second.wait_for(lambda: len(second.out) >= 3, "three lines")
    assert await second.stop() == 0
    assert sorted(second.out) == ["new 1", "unread 1", "unread 2"]
    assert first.out == ["seen 1", "seen 2"]


async def test_books_route_positions_and_settle_after_saving(tmp_path: Path) -> None:
    """Each position goes to the book it names; a book's settle gets every position it
    committed, in order, only once they are saved (a nats source acknowledges there)."""
    from aggregator.flow.checkpoints import Checkpoints
    from aggregator.jetstream.ledger import Ledger, Taken

    log = tmp_path / "a.log"
    log.write_text("x")
    key = f"{os.stat(log).st_dev}:{os.stat(log).st_ino}"
    settled: list[list[int]] = []

    async def settle(positions: list[Taken]) -> None:
        assert Ledger(tmp_path, "d", "nats:bus").load()  # saved before settled
        settled.append([taken.stream_seq for taken in positions])

    books = Checkpoints(interval=1.0)
    files = Checkpointer(CheckpointStore(tmp_path), 1.0)
    nats = Checkpointer(Ledger(tmp_path, "d", "nats:bus"), 1.0, settle=settle)
    books.register("files", files)
    books.register("nats:bus", nats)
    books.add([
        (3, Taken("logs.n1.app", 7, {"lane": 5}, None, "nats:bus")),
        (4, position(key, log, 100)),
        (6, Taken("logs.n1.app", 8, {"lane": 9}, None, "nats:bus")),
    ])  # fmt: skip
    await nats.commit(2)
    await files.commit(2)
    assert settled == [] and files.positions == {}
    await nats.commit(6)
    await files.commit(6)
    assert settled == [[7, 8]]
    assert files.positions[key].offset == 100
    assert Ledger(tmp_path, "d", "nats:bus").load()["logs.n1.app"].lanes == {"lane": 9}


async def test_two_file_sources_in_one_directory_resume_their_own_files(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Both sources' positions share one book: at a restart, each resumes its own file only,
    and does not take the other's file, grown while stopped, for one of its own rotated away
    (the same inode in the same directory)."""
    config = tmp_path / "two.toml"
    config.write_text(
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\ncheckpoint_interval = "100ms"\n'
        '[sources.app]\ntype = "file"\npaths = ["app.log"]\nstart_at = "beginning"\n'
        '[sources.db]\ntype = "file"\npaths = ["db.log"]\nstart_at = "beginning"\n'
        '[sinks.out]\ntype = "stdout"\nformat = "json"\n'
    )
    app, db = tmp_path / "app.log", tmp_path / "db.log"
    app.write_text("app 1\n")
    db.write_text("db 1\n")
    first = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(first)
    await first.wait_for(lambda: len(first.out) == 2, "both files")
    assert await first.stop() == 0
    append(app, "app 2\n")
    append(db, "db 2\n")
    second = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(second)
    await second.wait_for(lambda: len(second.out) >= 2, "what was written while stopped")
    assert await second.stop() == 0
    got = sorted((r["source"], r["line"]) for r in map(orjson.loads, second.out))
    assert got == [("app", "app 2"), ("db", "db 2")]


async def test_a_quiet_file_opened_at_its_end_loses_nothing_written_while_stopped(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """start_at = "end", no line written while running: where the file was opened is saved,
    so that lines written while stopped are read at the restart, not skipped."""
    log = tmp_path / "app.log"
    log.write_text("old 1\nold 2\n")
    first = await run(tmp_path, cli_processes)
    await wait_until(lambda: saved_offset(tmp_path) == log.stat().st_size, "a checkpoint")
    assert await first.stop() == 0
    append(log, "while stopped\n")
    second = await run(tmp_path, cli_processes)
    await second.wait_for_out("while stopped")
    assert await second.stop() == 0
    assert first.out == [] and second.out == ["while stopped"]
