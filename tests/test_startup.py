"""Start-up (issue #27): what a command does before its first line out, checked on real runs."""

import asyncio
import subprocess
import sys
from pathlib import Path

from aggregator.sources.file.identity import head_hash
from tests.conftest import DEADLINE, Cli, start_cli

COUNT_COLLECTIONS = """
import gc, sys
from aggregator.cli import main
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
code = main(sys.argv[1:])
print("collections:", len(collections), file=sys.stderr)
raise SystemExit(code)
"""


def test_no_automatic_collection_while_a_tail_starts_reads_and_ends(tmp_path: Path) -> None:
    """``main`` turns automatic collection off before it loads the options, the config and
    the pipeline, and the pipeline's own collector leaves it off when the run ends: a
    collection then would walk every object the program loaded, for no garbage."""
    (tmp_path / "one.log").write_text("2026-12-01T10:00:00Z hello\n")
    result = subprocess.run(
        [sys.executable, "-c", COUNT_COLLECTIONS, "tail", "--no-follow", "--from-start",
         "one.log"],
        cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("one.log | 2026-12-01T10:00:00Z hello\n")
    assert "collections: 0" in result.stderr.splitlines()


def test_a_file_s_head_hash_is_hashlib_s_blake2b() -> None:
    """identity takes blake2b from ``_blake2`` (hashlib's own, without OpenSSL's set-up):
    the fingerprints saved in checkpoints before must match the ones made now."""
    import hashlib

    from aggregator.sources.file.identity import head_hash

    head = b"2026-12-01T10:00:00Z the first line of a file\n" * 6
    assert head_hash(head) == hashlib.blake2b(head, digest_size=8).hexdigest()


EXAMPLE_LIKE = """
[aggregator]
state_dir = "state"
order_window = "0s"
checkpoint_interval = "1h"
[sources.app]
type = "file"
paths = ["logs/*.log"]
start_at = "beginning"
[sources.net]
type = "tcp"
listen = "127.0.0.1:0"
[sinks.console]
type = "stdout"
format = "text"
[sinks.live]
type = "websocket"
listen = "127.0.0.1:0"
auth_token = "a-token"
"""


async def test_run_imports_only_what_its_first_line_out_needs(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """``run -c`` of a config like the example, resuming from a checkpoint, until its first
    line out: no inotify library, no ``ctypes.util`` (its ``ldconfig`` subprocess), no orjson
    (the checkpoint is read with ``json``), no ``hmac`` (a token is compared at a request)
    (bench/README.md, "Session 14 (s14start)")."""
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "app.log"
    head = b"2026-12-01T09:00:00Z read before\n"
    log.write_bytes(head + b"2026-12-01T09:00:01Z resumed here\n")
    (tmp_path / "config.toml").write_text(EXAMPLE_LIKE)
    (tmp_path / "state").mkdir(mode=0o700)
    stat = log.stat()
    (tmp_path / "state" / "checkpoints.json").write_text(
        f'{{"version": 1, "files": {{"{stat.st_dev}:{stat.st_ino}": {{"path": "logs/app.log", '
        f'"offset": {len(head)}, "head_length": {stat.st_size}, '
        f'"head_hash": "{head_hash(log.read_bytes())}"}}}}}}'
    )
    cli = await start_cli(
        "run", "-c", "config.toml", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"}
    )
    cli_processes.append(cli)
    _, port = await cli.listening("tcp")
    await cli.wait_for_out("resumed here")
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"2026-12-01T10:00:00Z the first line out\n")
    await writer.drain()
    await cli.wait_for_out("the first line out")
    imported = {line.rsplit("|", 1)[-1].strip() for line in cli.err if "import time:" in line}
    writer.close()
    assert not any("read before" in line for line in cli.out)  # the checkpoint was read
    assert {"aggregator.sources.file.inotify", "json"} <= imported  # follows, has resumed
    for name in ("asyncinotify", "ctypes.util", "orjson", "hmac"):
        assert name not in imported, f"{name} imported before the first line out"
