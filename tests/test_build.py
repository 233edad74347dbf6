"""Which build runs: the per-line modules compiled with mypyc, or pure Python (issue #17).

``.ci/run`` sets ``AGGREGATOR_EXPECT_BUILD`` to ``compiled`` or ``pure`` for each of its two
test runs, so that a build that fell back to pure Python without a word does not pass as the
compiled one. Without it, the tests check only that one build runs throughout.
"""

import importlib
import os
import pickle
import subprocess
import tomllib
from pathlib import Path

import pytest

from aggregator.parse.pool import worker_command
from aggregator.parse.worker import HEADER_BYTES, CodecSpec

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(importlib.import_module("aggregator").__file__ or "").parent
SOURCES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["aggregator"]["mypyc"][
    "modules"
]
MODULES = [path.removesuffix(".py").replace("/", ".") for path in SOURCES]
LIBRARY = "_compiled__mypyc"
"""The shared library of the compiled modules (setup.py's GROUP)."""


def compiled(name: str) -> bool:
    """Whether the module ``name`` was imported from an extension module."""
    return (importlib.import_module(name).__file__ or "").endswith(".so")


def build() -> str:
    return "compiled" if compiled(MODULES[0]) else "pure"


def test_one_build_throughout() -> None:
    """The per-line modules are all compiled or all pure, and the build CI asked for."""
    kinds = {name: compiled(name) for name in MODULES}
    assert len(set(kinds.values())) == 1, f"a mix of compiled and pure modules: {kinds}"
    expected = os.environ.get("AGGREGATOR_EXPECT_BUILD")
    if expected:
        assert build() == expected


def test_compiled_modules_are_current() -> None:
    """No compiled module is older than its source: an edit since the build would not run."""
    if build() == "pure":
        pytest.skip("pure build")
    stale = []
    for source in SOURCES:
        path = PACKAGE.parent / source
        for built in path.parent.glob(f"{path.stem}.*.so"):
            if built.stat().st_mtime < path.stat().st_mtime:
                stale.append(source)
    assert not stale, f"edited since they were compiled (pip install -e . again): {stale}"


def test_worker_runs_the_same_build(tmp_path: Path) -> None:
    """A parse worker, started as the pool starts it (from elsewhere, ``-P``), loads the
    compiled library exactly when this process has; it answers a real request first."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc")
    expected = build() == "compiled"
    assert (LIBRARY in maps.read_text()) == expected
    with subprocess.Popen(
        worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=tmp_path
    ) as worker:
        assert worker.stdin is not None and worker.stdout is not None
        request = pickle.dumps((CodecSpec("raw", None, "auto", None, "stamps"), b"a\nb", 1 << 20))
        worker.stdin.write(len(request).to_bytes(4, "big") + request)
        worker.stdin.flush()
        header = worker.stdout.read(HEADER_BYTES)
        assert header[4:] == b"R"
        worker.stdout.read(int.from_bytes(header[:4], "big"))
        loaded = Path(f"/proc/{worker.pid}/maps").read_text()
        worker.stdin.close()
        assert worker.wait(timeout=15) == 0
    assert (LIBRARY in loaded) == expected
