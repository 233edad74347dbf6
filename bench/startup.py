"""Start-up: ``aggregator tail --no-follow --from-start`` on a one-line file against the same
interpreter's ``import asyncio`` (issue #17's target: at most 2.0x), medians of alternated runs.

    python bench/startup.py [RUNS]

Children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed), as a user's
install has it, after one warm-up run each: compiling the package's sources at every start
would otherwise be measured (about 50 ms).
"""

import os
import resource
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


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    with tempfile.TemporaryDirectory() as directory:
        one = Path(directory) / "one.log"
        one.write_text("2026-12-01T10:00:00Z hello\n")
        commands = {
            "import asyncio": [sys.executable, "-c", "import asyncio"],
            "tail --no-follow --from-start": [
                sys.executable, "-m", "aggregator", "tail", "--no-follow", "--from-start", str(one)
            ],
            "--version": [sys.executable, "-m", "aggregator", "--version"],
        }  # fmt: skip
        for command in commands.values():
            elapsed(command)  # warm-up: caches the bytecode, fills the page cache
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):  # alternated, so that a busy moment hits all alike
            for name, command in commands.items():
                wall, cpu = elapsed(command)
                walls[name].append(wall)
                cpus[name].append(cpu)
    wall_base = statistics.median(walls["import asyncio"])
    cpu_base = statistics.median(cpus["import asyncio"])
    print(f"{runs} runs each, medians: wall-clock, then CPU (user + system)")
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"{name:30} {wall * 1000:6.1f} ms {wall / wall_base:4.2f}x   "
            f"cpu {cpu * 1000:6.1f} ms {cpu / cpu_base:4.2f}x"
        )


if __name__ == "__main__":
    main()
