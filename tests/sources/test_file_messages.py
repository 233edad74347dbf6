"""What a newcomer is told when the paths given read nothing (issue #23)."""

import subprocess
import sys
from pathlib import Path

AGGREGATOR = [sys.executable, "-m", "aggregator"]


def tail(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGGREGATOR, "tail", "--no-follow", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def test_a_directory_is_said_to_be_one_with_a_glob_to_try(tmp_path: Path) -> None:
    """tail --no-follow DIR: says DIR is a directory and suggests DIR/*.log; exits 1."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("a line\n")
    result = tail("logs", cwd=tmp_path)
    assert result.returncode == 1
    assert "logs: is a directory, not a file" in result.stderr
    assert "'logs/*.log'" in result.stderr
    assert "no such file" not in result.stderr


def test_a_glob_that_matches_nothing_is_said(tmp_path: Path) -> None:
    """A glob matching no file says so on stderr; the files other patterns match are read."""
    (tmp_path / "a.log").write_text("a line\n")
    result = tail("*.nope", "a.log", cwd=tmp_path)
    assert result.returncode == 0
    assert "*.nope: no file matches" in result.stderr
    assert "a line" in result.stdout
