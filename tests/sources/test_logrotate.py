"""Real rotation tools, counted line by line (issue #23; SPEC §6 "every line once"): Debian's
logrotate in its three common modes, following one path or a glob that also matches the
rotated names, with no restart, or a SIGTERM or SIGKILL while a rotation happens."""

import itertools
from pathlib import Path

import pytest

from tests.helpers.rotation import environment_ok, run_handler_case, run_logrotate_case

pytestmark = pytest.mark.skipif(not environment_ok(), reason="logrotate is not installed")

RATE = 300
"""Lines a second: each case writes ~500 lines over ~2 s and three forced rotations."""
KILL_REPEATS = 2 * RATE
"""After SIGKILL, lines may come twice: at most those of the last checkpoint interval (1 s),
with room for a slow box."""

MATRIX = list(
    itertools.product(["create", "copytruncate", "compress"], ["one", "glob"],
                      ["none", "sigterm", "sigkill"])
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "paths", "restart"), MATRIX, ids=["-".join(c) for c in MATRIX])
async def test_logrotate_loses_and_doubles_nothing(
    tmp_path: Path, mode: str, paths: str, restart: str
) -> None:
    """Each line written comes out once (after SIGKILL: at most a checkpoint interval twice),
    the lines of each file in the order written; compressed copies are never read."""
    counts, _ = await run_logrotate_case(tmp_path, mode, paths, restart, rate=RATE, phase=0.35)
    stderr = (tmp_path / "stderr.log").read_text()
    assert counts.lost == 0, f"{counts}; lost {counts.lost_lines}\n{stderr[-2000:]}"
    if restart == "sigkill":
        assert counts.doubled <= KILL_REPEATS, f"{counts}\n{stderr[-2000:]}"
    else:
        assert counts.doubled == 0, f"{counts}\n{stderr[-2000:]}"
    assert (counts.out_of_order, counts.garbage) == (0, 0), str(counts)
    if mode == "compress" and paths == "glob":
        assert "compressed (gzip), not read as text; skipped" in stderr


HANDLERS = list(itertools.product(["rotating", "timed", "watched"], ["one", "glob"]))


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "paths"), HANDLERS, ids=["-".join(c) for c in HANDLERS])
async def test_python_logging_handlers_lose_and_double_nothing(
    tmp_path: Path, kind: str, paths: str
) -> None:
    """RotatingFileHandler, TimedRotatingFileHandler, WatchedFileHandler with an outside mv:
    every line once, each file's lines in the order written."""
    counts = await run_handler_case(tmp_path, kind, paths, rate=RATE, seconds=1.5)
    stderr = (tmp_path / "stderr.log").read_text()
    assert (counts.lost, counts.doubled, counts.out_of_order) == (0, 0, 0), (
        f"{counts}; lost {counts.lost_lines}\n{stderr[-2000:]}"
    )
