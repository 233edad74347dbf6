"""The build hook that compiles the per-line path with mypyc (issue #17).

Everything else about the package is in pyproject.toml. The modules in ``COMPILED`` are
compiled to C extension modules, unchanged: the same source is the pure-Python package. A
pure build is made instead, with a warning, when

- ``AGGREGATOR_PURE=1`` is set at build time (``AGGREGATOR_PURE=1 pip install -e .``),
- mypyc cannot be imported (not CPython, or mypy missing from a ``--no-build-isolation`` build),
- mypyc or the C compiler fails.

``pip install -e .`` builds the extensions in place, next to the sources (setuptools' editable
mode), where the import finds them before the ``.py`` files. Which build is installed:
``python3 -c "import aggregator.parse.lines as m; print(m.__file__)"`` ends in ``.so`` or
``.py``.
"""

import contextlib
import io
import os
import sys
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
_PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COMPILED: list[str] = _PYPROJECT["tool"]["aggregator"]["mypyc"]["modules"]
"""The modules to compile (pyproject.toml, ``[tool.aggregator.mypyc]``)."""
GROUP = "aggregator._compiled"
"""One shared library, ``aggregator/_compiled__mypyc``, holds them all; each compiled module
is a small shim that loads its part of it."""


def _warn(message: str, requested: bool = False) -> None:
    """Say why the build is pure. pip shows nothing of a build that succeeds unless run with
    ``-v``: a fall back that was not asked for is also written to the terminal, which pip does
    not capture (``aggregator --version`` says which build runs, SPEC §1)."""
    line = f"aggregator build: {message}; building pure Python\n"
    sys.stderr.write(line)
    if requested:
        return
    loud = (
        f"WARNING: {line}"
        "WARNING: its per-line path runs slower so; `aggregator --version` says which build\n"
        "WARNING: runs (compiled or pure); `pip install -v` shows the build's whole output\n"
    )
    try:
        with open("/dev/tty", "w") as terminal:
            terminal.write(loud)
    except OSError:  # no terminal (CI, a Docker build): the stderr line and --version remain
        pass


def _pure_requested() -> bool:
    return os.environ.get("AGGREGATOR_PURE", "").strip().lower() not in ("", "0", "false", "no")


def _remove_compiled(keep: list[str]) -> None:
    """In an editable build, remove the extension modules beside the sources that this build
    does not make again: each would be imported instead of its ``.py`` file. ``keep``: the
    modules this build compiles (the new files replace theirs). Other builds (a wheel) leave
    the source tree alone: an editable install made from it goes on as it was."""
    if "editable_wheel" not in sys.argv:  # setuptools' build_editable runs this command
        return
    kept = {ROOT / Path(path).with_suffix("") for path in keep}
    for built in ROOT.glob("aggregator/**/*.so"):
        module = built.with_name(built.name.split(".")[0])
        is_library = module.name == f"{GROUP.rsplit('.', 1)[-1]}__mypyc"
        if (is_library and not keep) or (module.with_suffix(".py").exists() and module not in kept):
            built.unlink()


def _builds() -> bool:
    """Whether this run of setup.py builds (pip runs it also for the build's requirements
    and the metadata, where mypyc's type check and C code would be wasted: ~15 s each)."""
    return not {"build", "build_ext", "bdist_wheel", "editable_wheel"}.isdisjoint(sys.argv[1:])


def _extensions() -> list[object]:
    if not _builds():
        return []
    if _pure_requested():
        _warn("AGGREGATOR_PURE is set", requested=True)
        _remove_compiled([])
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as error:
        _warn(f"mypyc is not available ({error})")
        _remove_compiled([])
        return []
    _remove_compiled(COMPILED)
    report = io.StringIO()  # mypyc prints its type errors, then exits
    try:
        with contextlib.redirect_stdout(report):
            return list(mypycify(COMPILED, opt_level="3", group_name=GROUP))
    except (Exception, SystemExit) as error:
        errors = [line for line in report.getvalue().splitlines() if ": error:" in line]
        _warn(f"mypyc failed ({'; '.join(errors[:3]) or repr(error)})")
        _remove_compiled([])
        return []
    finally:
        sys.stdout.write(report.getvalue())  # for `pip install -v`


class OptionalBuildExt(build_ext):
    """build_ext that leaves the package pure when the C compiler fails: nothing half-built
    stays behind (a shim without its shared library would not import)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:
            self._remove_outputs()
            _warn(f"compiling failed ({error!r})")

    def _remove_outputs(self) -> None:
        for output in self.get_outputs():  # in build/
            Path(output).unlink(missing_ok=True)
        _remove_compiled([])  # beside the sources (editable)
        self.extensions = []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
