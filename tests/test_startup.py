"""Start-up (issue #27): what a command does before its first line out, checked on real runs."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import DEADLINE

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
