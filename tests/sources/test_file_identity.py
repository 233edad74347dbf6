"""A file is known by what it is, not by its name (issue #23): compressed copies are told by
their first bytes, a copy made by copytruncate is found by its content, and a rotated file
found again under its new name by a glob is not read twice."""

import gzip
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.sources.file.discovery import compression_of, split_compressed
from aggregator.sources.file.identity import HEAD_BYTES, Position, head_hash, identity_key
from aggregator.sources.file.resume import rotated_while_stopped
from tests.conftest import Cli, start_cli
from tests.sources.test_file_rotation import append, lines_of


@pytest.mark.parametrize(
    ("name", "head", "kind"),
    [
        ("app.log.2", gzip.compress(b"x"), "gzip"),
        ("app.log.2", lzma.compress(b"x"), "xz"),
        ("app.log.2", b"\x28\xb5\x2f\xfd\x00", "zstd"),
        ("app.log.2", b"BZh91AY&SY", "bzip2"),
        ("app.log.2.gz", b"", "gzip"),  # still being written: the name says it
        ("app.log.2.zst", b"", "zstd"),
        ("app.log.1", b"BZh0 not bzip2", None),
        ("app.log.1", b"2026-12-06 plain text\n", None),
        ("app.log", b"", None),
    ],
)
def test_compression_is_told_by_first_bytes_or_name(name: str, head: bytes, kind: str) -> None:
    """Compressed files are known by their magic bytes whatever their name, or by their name."""
    assert compression_of(name, head) == kind


def test_split_compressed_reads_the_magic(tmp_path: Path) -> None:
    """A gzip file named like a text file is set apart with its kind; text files stay."""
    text, hidden = tmp_path / "app.log", tmp_path / "app.log.1"
    text.write_text("plain\n")
    hidden.write_bytes(gzip.compress(b"line\n" * 10))
    assert split_compressed([text, hidden]) == ([text], {hidden: "gzip"})


def saved_position(path: Path, offset: int) -> Position:
    head = path.read_bytes()[:HEAD_BYTES]
    return Position(identity_key(path.stat()), str(path), offset, len(head), head_hash(head),
                    "lane", 7)  # fmt: skip


def test_copytruncate_while_stopped_finds_the_copy(tmp_path: Path) -> None:
    """The checkpoint's file was copied and truncated while stopped: the copy in its directory
    (same first bytes, at least as long) is where reading goes on, with the count kept."""
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {n:04} {'x' * 40}\n" for n in range(20)))
    saved = saved_position(log, offset=400)
    (tmp_path / "app.log.2").write_text("an older copy, of other content " * 10)
    copy = tmp_path / "app.log.1"
    copy.write_bytes(log.read_bytes())
    log.write_text("new content after the truncation\n")
    found = rotated_while_stopped({saved.key: saved}, [saved])
    assert list(found) == [copy]
    moved = found[copy]
    assert (moved.key, moved.path, moved.offset) == (identity_key(copy.stat()), str(copy), 400)
    assert (moved.lane, moved.records) == ("lane", 7)


def test_a_short_file_is_not_taken_for_a_copy(tmp_path: Path) -> None:
    """Two files that share fewer than HEAD_BYTES first bytes are not one the other's copy."""
    log = tmp_path / "app.log"
    log.write_text("short\n")
    saved = saved_position(log, offset=6)
    (tmp_path / "app.log.1").write_text("short\nand more\n")
    log.write_text("")
    assert rotated_while_stopped({saved.key: saved}, [saved]) == {}


async def test_glob_over_rotated_names_reads_each_file_once(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """paths = app.log*: app.log renamed to app.log.1 (then .2) is the same file: it keeps its
    reader's position, and what is written to it after the rename comes once."""
    log = tmp_path / "app.log"
    log.write_text("")
    config = tmp_path / "c.toml"
    config.write_text(
        '[aggregator]\norder_window = "0s"\n'
        '[sources.app]\ntype = "file"\npaths = ["app.log*"]\nstart_at = "beginning"\n'
        'rotate_wait = "300ms"\ncodec = "raw"\n[sinks.out]\ntype = "stdout"\nformat = "json"\n'
    )
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    append(log, *(f"first {n} {'x' * 40}" for n in range(8)))
    await cli.wait_for_out("first 7")
    with log.open("a") as still_open:
        log.rename(tmp_path / "app.log.1")
        log.write_text("")
        append(log, *(f"second {n} {'x' * 40}" for n in range(8)))
        still_open.write("late to the first\n")
    await cli.wait_for_out("late to the first")
    await cli.wait_for_out("second 7")
    (tmp_path / "app.log.1").rename(tmp_path / "app.log.2")
    log.rename(tmp_path / "app.log.1")
    append(tmp_path / "app.log.1", "third, to the renamed second")
    await cli.wait_for_out("third, to the renamed second")
    (tmp_path / "app.log.3.gz").write_bytes(gzip.compress(b"compressed line\n"))
    await cli.wait_for(lambda: any("compressed (gzip)" in line for line in cli.err), "notice")
    append(tmp_path / "app.log.2", "fourth, to the twice renamed first")
    await cli.wait_for_out("fourth, to the twice renamed first")
    assert await cli.stop() == 0
    got = lines_of(cli)
    assert len(got) == len(set(got)) == 19, got
    assert sum("compressed (gzip)" in line for line in cli.err) == 1


def test_check_lists_compressed_files_as_skipped(tmp_path: Path) -> None:
    """aggregator check says which matched files are compressed and skipped."""
    (tmp_path / "app.log").write_text("text\n")
    (tmp_path / "app.log.1").write_bytes(gzip.compress(b"old\n"))
    config = tmp_path / "c.toml"
    config.write_text('[sources.app]\ntype = "file"\npaths = ["app.log*"]\n'
                      '[sinks.out]\ntype = "stdout"\n')  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "aggregator", "check", "-c", str(config)],
                            cwd=tmp_path, capture_output=True, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "app.log*: 1 file now; 1 compressed, skipped: app.log.1" in out, out
    assert os.path.exists(tmp_path / "app.log.1")


async def test_a_symlink_and_its_target_are_read_once(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A glob matching a file and a symlink to it (the Kubernetes layout) reads each line once."""
    target = tmp_path / "a.log"
    target.write_text("".join(f"before {n}\n" for n in range(3)))
    (tmp_path / "current.log").symlink_to(target)
    config = tmp_path / "c.toml"
    config.write_text(
        '[aggregator]\norder_window = "0s"\n'
        '[sources.app]\ntype = "file"\npaths = ["*.log"]\nstart_at = "beginning"\n'
        'codec = "raw"\n[sinks.out]\ntype = "stdout"\nformat = "json"\n'
    )
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    await cli.wait_for_out("before 2")
    append(target, "after 0", "after 1")
    await cli.wait_for_out("after 1")
    append(target, "last")
    await cli.wait_for_out("last")
    assert await cli.stop() == 0
    assert sorted(lines_of(cli)) == sorted(
        ["before 0", "before 1", "before 2", "after 0", "after 1", "last"]
    )
