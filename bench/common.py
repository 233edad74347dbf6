"""Shared benchmark helpers: test data, timing a command with its peak RSS, the table."""

import compileall
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

AGGREGATOR = [sys.executable, "-m", "aggregator"]


def compile_package() -> None:
    """Compile the package's bytecode, as installing it does: in a source checkout with
    PYTHONDONTWRITEBYTECODE set, every start would compile it again (~50 ms)."""
    import aggregator

    compileall.compile_dir(Path(aggregator.__file__).parent, quiet=1)


compile_package()

CLI_WITH_CPU = """
import atexit, json, resource, sys
from aggregator.cli import main

def report() -> None:
    own, workers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    sys.stderr.write("\\n" + json.dumps([own.ru_utime + own.ru_stime,
                                          workers.ru_utime + workers.ru_stime]) + "\\n")

atexit.register(report)
sys.exit(main(sys.argv[1:]))
"""
"""``python -c CLI_WITH_CPU ARGS...`` runs ``aggregator ARGS...`` and, at its exit, writes the
CPU seconds (user + system) of the main process and of its children (the parse workers) as
the last line of stderr: ``reported_cpu`` reads them."""


def reported_cpu(stderr: str) -> tuple[float, float]:
    """(loop, workers) CPU seconds that a ``CLI_WITH_CPU`` run wrote last on ``stderr``."""
    loop, workers = json.loads(stderr.strip().splitlines()[-1])
    return loop, workers


# Runs `cmd` as this wrapper's only child, so RUSAGE_CHILDREN's ru_maxrss is that command's.
_WRAPPER = """
import json, resource, subprocess, sys, time
cmd, out = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
with open(out, "wb") as sink:
    code = subprocess.run(cmd, stdout=sink).returncode
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "seconds": elapsed, "rss_kib": usage.ru_maxrss,
                  "user": usage.ru_utime, "sys": usage.ru_stime}))
"""


@dataclass
class Run:
    seconds: float
    rss_mib: float
    user_s: float = 0.0
    """CPU seconds in user mode of the command and every process it waited for (its workers)."""
    sys_s: float = 0.0


def timed(cmd: list[str], out: Path) -> Run:
    """Run ``cmd`` with stdout to ``out``; its wall time, peak RSS and CPU time."""
    result = subprocess.run(
        [sys.executable, "-c", _WRAPPER, json.dumps(cmd), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    if report["code"] != 0:
        raise SystemExit(f"{cmd[0]} failed with {report['code']}: {result.stderr}")
    return Run(report["seconds"], report["rss_kib"] / 1024, report["user"], report["sys"])


def median_run(cmd: list[str], out: Path, repeat: int) -> Run:
    return median_of([timed(cmd, out) for _ in range(repeat)])


def median_of(runs: list[Run]) -> Run:
    """Each measure's median over ``runs``."""
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.rss_mib for r in runs),
        statistics.median(r.user_s for r in runs),
        statistics.median(r.sys_s for r in runs),
    )


def make_lines(
    directory: Path, files: int, lines: int, width: int = 120, seed: int = 1
) -> list[Path]:
    """``files`` files holding ``lines`` lines in all, about ``width`` bytes each, with an
    ISO 8601 timestamp first and increasing through each file (so files interleave in time)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = [directory / f"app-{index}.log" for index in range(files)]
    per_file = lines // files
    base = 1_795_600_800.0  # 2026-11-25T10:00:00Z
    words = ["GET", "POST", "user", "cache", "miss", "hit", "timeout", "db", "queue", "retry"]
    for path in paths:
        now = base
        with path.open("w") as file:
            for number in range(per_file):
                now += rng.random() * 0.002
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                head = f"{stamp}.{int(now % 1 * 1e6):06d}Z INFO {path.stem} #{number} "
                body = " ".join(rng.choice(words) for _ in range(30))
                file.write((head + body)[: width - 1] + "\n")
    return paths


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def cpu_count() -> int:
    return os.cpu_count() or 1
