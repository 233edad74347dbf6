"""Where a read-through's CPU goes: the main process (the event loop) apart from its parse
workers, for ``aggregator tail --no-follow`` over each directory given (issue #26).

With a core free for the workers, a read-through is bound by the loop, so the loop's CPU
against another run's is what their throughput ratio can reach; without one (a loaded box),
the total is. Each run reads its own ``getrusage`` at exit (the workers are waited for, so
they count as its children). Runs are alternated; each figure is the median.

    python3 bench/tail_cpu.py --repeat 2 DIR_PLAIN DIR_CRI        # --format raw and json
    PYTHONPATH=OTHER_BUILD python3 bench/tail_cpu.py ...          # the same for another build
"""

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from common import CLI_WITH_CPU, reported_cpu


def cpu(directory: Path, fmt: str) -> tuple[float, float]:
    """(loop, workers) CPU seconds of one ``tail --no-follow`` over ``directory/*.log``."""
    result = subprocess.run(
        [sys.executable, "-c", CLI_WITH_CPU, "tail", "--no-follow", "--format", fmt,
         str(directory / "*.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    return reported_cpu(result.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--formats", default="raw,json")
    args = parser.parse_args()
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        for fmt in args.formats.split(","):
            for directory in args.directories:
                runs.setdefault((directory.name, fmt), []).append(cpu(directory, fmt))
    print(f"{'tail --no-follow':<28} {'loop s':>7} {'workers s':>9} {'total s':>8}")
    for (name, fmt), measured in runs.items():
        loop = statistics.median(one[0] for one in measured)
        workers = statistics.median(one[1] for one in measured)
        total = statistics.median(sum(one) for one in measured)
        print(f"{name + ' --format ' + fmt:<28} {loop:>7.2f} {workers:>9.2f} {total:>8.2f}")


if __name__ == "__main__":
    main()
