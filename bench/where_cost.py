"""What a ``where`` costs the ordered merge (issue #29): ``tail --no-follow --from-start --codec
auto`` over bench/ordered_merge.py's workloads, each format with and without ``--where``,
alternated (ABBA: the order flips every repeat), with each run's wall time and the CPU time of
its two processes (the loop, and its parse workers: read at the program's exit).

One wall-clock ratio on a shared box scatters by ±20 %, more than the cost measured, so each
pair of runs (with, without: one after the other) gives its own ratios and the table shows
their median and spread, beside two ratios of CPU time that other work on the box moves much
less:

- ``bound``: the busier process's CPU without over with. With a core for each (a quiet box),
  loop and workers run side by side and the busier one sets the throughput: this is what the
  wall ratio comes to there;
- ``total``: the CPU of both processes, without over with: the throughput ratio when the two
  share one core (a loaded box).

    cd /tmp/empty && python3 bench/where_cost.py [--workload today|production|both] \\
        [--lines N] [--repeat R] [--formats raw,json] [--python NAME=INTERPRETER ...]
"""

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import workload
from common import CLI_WITH_CPU, reported_cpu
from ordered_merge import make_files

WHERES = {
    "today": 'level>=info and not msg contains "zzz" and not msg~"^/health"',
    "production": 'not level<info and not http.status>=500 and not http.path~"^/health"',
}
"""Three conditions each, a level, a field compared and a field's pattern, as the issue's
``level>=warn and status>=500 and not path~"^/health"``: every line of today's files passes
(``msg`` is in the JSON lines only, and missing fails its test: ``not`` passes it); on the
production-shaped files, what a dashboard would keep (no debug, no server errors, no health
checks: 87 % of the lines; ``not level<info`` keeps the lines without a level)."""


class Run(NamedTuple):
    wall: float
    loop: float
    """CPU seconds (user and system) of the main process."""
    workers: float
    """CPU seconds of its parse workers."""
    ids: list[str]


def run(python: str, fmt: str, where: str | None, paths: list[Path], out: Path) -> Run:
    """One ``tail --no-follow`` of ``paths``; its output's ids in order."""
    extra = ["--where", where] if where else []
    cmd = [python, "-P", "-c", CLI_WITH_CPU, "tail", "--no-follow", "--from-start", "--codec",
           "auto", "--format", fmt, *extra, *map(str, paths)]  # fmt: skip
    start = time.perf_counter()
    with out.open("wb") as sink:
        result = subprocess.run(cmd, stdout=sink, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd[:2])} tail failed: {result.stderr[-2000:]}")
    loop, workers = reported_cpu(result.stderr)
    return Run(wall, loop, workers, workload.read_ids(out))


def in_order(found: list[str], expected: list[str]) -> bool:
    """``found`` is ``expected`` with some left out, the rest in their order."""
    position = {ident: number for number, ident in enumerate(expected)}
    numbers = [position.get(ident, -1) for ident in found]
    return -1 not in numbers and all(a < b for a, b in itertools.pairwise(numbers))


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1%} ({min(values):.0%} to {max(values):.0%})"


def measure(
    name: str, paths: list[Path], expected: list[str], pythons: dict[str, str], args: object
) -> None:
    where = WHERES[name]
    formats = args.formats.split(",")  # type: ignore[attr-defined]
    repeat: int = args.repeat  # type: ignore[attr-defined]
    pairs: dict[tuple[str, str], list[tuple[Run, Run]]] = {}
    passed: dict[tuple[str, str], int] = {}
    load_before = os.getloadavg()[0]
    work = paths[0].parent.parent
    for number in range(repeat):
        for fmt in formats:
            for label, python in pythons.items():
                order = [None, where] if number % 2 == 0 else [where, None]
                done = {
                    bool(w): run(python, fmt, w, paths, work / f"out.{label}.{fmt}") for w in order
                }
                without, with_ = done[False], done[True]
                for one in (without, with_):
                    if not in_order(one.ids, expected):
                        raise SystemExit(f"{label} --format {fmt}: WRONG ORDER")
                if len(without.ids) != len(expected):
                    raise SystemExit(f"{label} --format {fmt}: lines lost")
                passed[(label, fmt)] = len(with_.ids)
                pairs.setdefault((label, fmt), []).append((without, with_))
                each = f"wall {without.wall:.2f} / {with_.wall:.2f} s, loop {without.loop:.2f} / "
                each += f"{with_.loop:.2f} s, workers {without.workers:.2f} / {with_.workers:.2f} s"
                print(f"  {name} {label} {fmt}: {each}", file=sys.stderr)
    load_after = os.getloadavg()[0]
    total = len(expected)
    print(f"{name}: {total:,} lines, --where '{where}' ({passed[next(iter(passed))] / total:.0%} "
          f"pass); {repeat} pairs, load average {load_before:.1f} → {load_after:.1f}")  # fmt: skip
    header = ["build", "format", "lines/s without", "lines/s with", "wall with/without",
              "loop s", "workers s", "bound", "total"]  # fmt: skip
    rows = []
    for (label, fmt), measured in pairs.items():
        walls = [a.wall / b.wall for a, b in measured]
        bound = [max(a.loop, a.workers) / max(b.loop, b.workers) for a, b in measured]
        both = [(a.loop + a.workers) / (b.loop + b.workers) for a, b in measured]

        def med(values: list[float]) -> float:
            return statistics.median(values)

        loops = (
            f"{med([a.loop for a, _ in measured]):.2f} → {med([b.loop for _, b in measured]):.2f}"
        )
        workers = (
            f"{med([a.workers for a, _ in measured]):.2f} → "
            f"{med([b.workers for _, b in measured]):.2f}"
        )
        rows.append([label, fmt, f"{total / med([a.wall for a, _ in measured]):,.0f}",
                     f"{total / med([b.wall for _, b in measured]):,.0f}", spread(walls),
                     loops, workers, spread(bound), spread(both)])  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["today", "production", "both"], default="both")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--formats", default="raw,json")
    parser.add_argument("--python", action="append", metavar="NAME=INTERPRETER", default=[])
    args = parser.parse_args()
    pythons = dict(item.split("=", 1) for item in args.python) or {"aggregator": sys.executable}
    names = ["today", "production"] if args.workload == "both" else [args.workload]
    with tempfile.TemporaryDirectory(prefix="aggregator-where-") as tmp:
        for name in names:
            directory = Path(tmp) / name / "in"
            if name == "today":
                paths, ids = make_files(directory, 8, args.lines)
                expected = [ident.removeprefix("id=") for ident in ids]
            else:
                paths, expected = workload.make_files(directory, args.lines)
            measure(name, paths, expected, pythons, args)


if __name__ == "__main__":
    main()
