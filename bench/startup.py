"""Start-up: ``aggregator tail --no-follow --from-start`` on a one-line file, and ``aggregator
run -c config.example.toml`` until it says it listens (its last start-up line, on stderr; the
example's ports moved to free ones), against the same interpreter's ``import asyncio``
(issue #27's target: at most 1.5x), medians of alternated runs.

    python bench/startup.py [RUNS] [--python NAME=INTERPRETER ...]

``--python`` (repeatable): each build's interpreter (a venv's, holding its own install), all
alternated within each round, each against its own ``import asyncio``; the package is run with
``-P``, so that the working directory's sources are never imported instead.

Children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed), as a user's
install has it, after one warm-up run each: compiling the package's sources at every start
would otherwise be measured (about 50 ms).
"""

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def elapsed(command: list[str]) -> tuple[float, float]:
    """Wall-clock seconds and CPU seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def until_ready(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall-clock seconds until ``command`` writes its line saying it listens on TCP, and the
    CPU seconds it used by then (from /proc); then it is stopped."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=ENV, cwd=cwd)  # fmt: skip
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if b"listening on tcp" in line:
                wall = time.perf_counter() - start
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                return wall, cpu
        raise SystemExit(f"{command} ended without saying it listens")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def example_config(directory: Path) -> Path:
    """config.example.toml with its ports moved to free ones (other runs may hold them)."""
    text = (ROOT / "config.example.toml").read_text()
    for port in ("5170", "5514", "8765"):
        text = text.replace(f":{port}", f":{free_port()}")
    config = directory / "config.toml"
    config.write_text(text)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=21)
    parser.add_argument("--python", action="append", metavar="NAME=INTERPRETER", default=[])
    args = parser.parse_args()
    pythons = [tuple(item.split("=", 1)) for item in args.python] or [("", sys.executable)]
    with tempfile.TemporaryDirectory() as directory:
        one = Path(directory) / "one.log"
        one.write_text("2026-12-01T10:00:00Z hello\n")
        config = example_config(one.parent)
        commands: dict[tuple[str, str], list[str]] = {}
        for build, python in pythons:
            package = [python, "-P", "-m", "aggregator"]
            commands[build, "import asyncio"] = [python, "-c", "import asyncio"]
            commands[build, "tail --no-follow --from-start"] = [
                *package, "tail", "--no-follow", "--from-start", str(one)
            ]  # fmt: skip
            commands[build, "--version"] = [*package, "--version"]
            commands[build, READY] = [*package, "run", "-c", str(config)]
        os.environ["AGGREGATOR_STATE_DIR"] = str(Path(directory) / "state")
        ENV["AGGREGATOR_STATE_DIR"] = os.environ["AGGREGATOR_STATE_DIR"]

        def once(name: str, command: list[str]) -> tuple[float, float]:
            return until_ready(command, one.parent) if name == READY else elapsed(command)

        for (_, name), command in commands.items():
            once(name, command)  # warm-up: caches the bytecode, fills the page cache
        walls: dict[tuple[str, str], list[float]] = {key: [] for key in commands}
        cpus: dict[tuple[str, str], list[float]] = {key: [] for key in commands}
        for _ in range(args.runs):  # alternated, so that a busy moment hits all alike
            for key, command in commands.items():
                wall, cpu = once(key[1], command)
                walls[key].append(wall)
                cpus[key].append(cpu)
    load = os.getloadavg()[0]
    print(f"{args.runs} runs each, medians: wall-clock, then CPU (user + system); load {load:.1f}")
    for build, _ in pythons:
        wall_base = statistics.median(walls[build, "import asyncio"])
        cpu_base = statistics.median(cpus[build, "import asyncio"])
        for key in commands:
            if key[0] != build:
                continue
            wall, cpu = statistics.median(walls[key]), statistics.median(cpus[key])
            label = f"{build}: {key[1]}" if build else key[1]
            print(
                f"{label:44} {wall * 1000:6.1f} ms {wall / wall_base:4.2f}x   "
                f"cpu {cpu * 1000:6.1f} ms {cpu / cpu_base:4.2f}x"
            )


READY = "run -c config.example.toml (ready)"

if __name__ == "__main__":
    main()
