"""Which build runs: the per-line modules compiled with mypyc, or pure Python (issue #17).

``.ci/run`` sets ``AGGREGATOR_EXPECT_BUILD`` to ``compiled`` or ``pure`` for each of its two
test runs, so that a build that fell back to pure Python without a word does not pass as the
compiled one. Without it, the tests check only that one build runs throughout.
"""

import ast
import importlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from aggregator.parse.pool import worker_command
from aggregator.parse.worker import HEADER_BYTES, CodecSpec

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(importlib.import_module("aggregator").__file__ or "").parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SOURCES = PYPROJECT["tool"]["aggregator"]["mypyc"]["modules"]
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
        request = pickle.dumps(
            (CodecSpec("raw", None, "auto", None, "stamps"), b"a\nb", 1 << 20, "a")
        )
        worker.stdin.write(len(request).to_bytes(4, "big") + request)
        worker.stdin.flush()
        header = worker.stdout.read(HEADER_BYTES)
        assert header[4:] == b"R"
        worker.stdout.read(int.from_bytes(header[:4], "big"))
        loaded = Path(f"/proc/{worker.pid}/maps").read_text()
        worker.stdin.close()
        assert worker.wait(timeout=15) == 0
    assert (LIBRARY in loaded) == expected


def test_version_says_which_build_runs() -> None:
    """``aggregator --version`` ends with the build that runs: ``(compiled)`` or ``(pure)``."""
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"aggregator 0.1.0 ({build()})"


def imported_modules(source: Path) -> set[str]:
    """Every module ``source`` names in an import, at any depth (mypy follows them all,
    ``TYPE_CHECKING`` and function-level ones too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_file(name: str) -> Path | None:
    """The source of the package's module ``name``, or None if it is not one."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def test_compiled_modules_need_only_the_build_requirements() -> None:
    """mypyc type-checks the compiled modules and all they import in pip's isolated build
    environment, which holds only ``[build-system] requires``: a module of another package
    in that closure (websockets, say) makes a fresh install fall back to pure Python (#27)."""
    required = {re.split(r"[<>=;\[ ]", line)[0] for line in PYPROJECT["build-system"]["requires"]}
    assert {"orjson", "pydantic"} <= required
    # What the build installs: its requirements (each package's module has its name) and
    # pydantic's own dependencies, which come with it.
    provided = required | {"pydantic_core", "typing_extensions", "annotated_types"}
    # Modules the type check is told to take as untyped (google-re2 ships no types): missing,
    # they are not an error (mypyc reads the same [tool.mypy] settings).
    provided |= {
        module
        for override in PYPROJECT["tool"]["mypy"].get("overrides", [])
        if override.get("ignore_missing_imports")
        for module in override["module"]
    }
    seen: set[str] = set()
    outside: dict[str, str] = {}
    todo = [(name, name) for name in MODULES]
    while todo:
        name, via = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        if parts[0] != "aggregator":
            if parts[0] not in sys.stdlib_module_names and parts[0] not in provided:
                outside.setdefault(parts[0], via)
            continue
        source = module_file(name)
        if source is None:  # a name imported from a module, not a module
            continue
        parents = [".".join(parts[:depth]) for depth in range(1, len(parts))]
        todo.extend((module, name) for module in [*parents, *imported_modules(source)])
    assert not outside, f"not in the isolated build environment (module: imported by): {outside}"


def fresh_copy(tmp_path: Path) -> Path:
    """The package's sources as a user's checkout has them: nothing built."""
    tree = tmp_path / "src"
    tree.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    junk = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "aggregator", tree / "aggregator", ignore=junk)
    return tree


def fresh_venv(tmp_path: Path) -> Path:
    """A new venv with nothing installed in it: its python."""
    subprocess.run([sys.executable, "-m", "venv", tmp_path / "venv"], check=True, timeout=120)
    return tmp_path / "venv" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_a_fresh_install_compiles(tmp_path: Path, editable: bool) -> None:
    """``pip install .`` and ``pip install -e .`` into a new venv build the compiled
    modules in pip's isolated build environment, whose requirements come from the registry
    pip is set up with (its cache, then); the dependencies are left out: they do not take part
    in the build, and ``--version`` needs none (#27)."""
    if os.environ.get("AGGREGATOR_EXPECT_BUILD") == "pure":
        pytest.skip("the install is tested once, in the compiled run (.ci/run)")
    tree, python = fresh_copy(tmp_path), fresh_venv(tmp_path)
    target = ["-e", str(tree)] if editable else [str(tree)]
    env = {key: value for key, value in os.environ.items() if key != "AGGREGATOR_PURE"}
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "-v", *target],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
    assert "aggregator build:" not in install.stdout + install.stderr
    version = subprocess.run(
        [python.parent / "aggregator", "--version"], cwd=tmp_path, capture_output=True, text=True
    )
    assert version.stdout.strip() == "aggregator 0.1.0 (compiled)", version.stderr


@pytest.mark.slow
def test_a_fall_back_to_pure_is_shown_without_verbose(tmp_path: Path) -> None:
    """A build whose C compiler fails installs pure Python, and a plain ``pip install`` (no
    ``-v``, which hides the build's output) shows a warning on the terminal; ``--version``
    says ``pure`` (#27)."""
    if os.environ.get("AGGREGATOR_EXPECT_BUILD") == "pure":
        pytest.skip("the install is tested once, in the compiled run (.ci/run)")
    if shutil.which("script") is None:
        pytest.skip("needs script(1) for a terminal")
    tree, python = fresh_copy(tmp_path), fresh_venv(tmp_path)
    env = {key: value for key, value in os.environ.items() if key != "AGGREGATOR_PURE"}
    env["CC"] = "false"  # a compiler that always fails
    command = f"{python} -m pip install --no-deps {tree}"
    shown = subprocess.run(
        ["script", "-qefc", command, "/dev/null"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout[-4000:]
    assert "WARNING: aggregator build: compiling failed" in shown.stdout, shown.stdout[-4000:]
    version = subprocess.run(
        [python.parent / "aggregator", "--version"], cwd=tmp_path, capture_output=True, text=True
    )
    assert version.stdout.strip() == "aggregator 0.1.0 (pure)", version.stderr
