"""Real rotation under load (issue #23): Debian's logrotate forced every 2 s while a writer
appends 2,000 lines/s, for each case of the matrix (create / copytruncate /
compress+delaycompress+dateext, by one path / a glob over the rotated names, by no restart /
SIGTERM / SIGKILL while a rotation happens). ``aggregator run`` follows the file into a JSON
file sink; every line written is looked for in what came out.

    python3 bench/rotation.py [--seconds 60] [--rate 2000] [--every 2] [--cases create-glob-none]

Prints a table: written, delivered, lost, doubled, out of file order, lines out that no one
wrote (a compressed file read as text), peak RSS (the largest of the runs of a case: a
restart case runs twice).
"""

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.helpers.rotation

from common import AGGREGATOR

from tests.helpers.rotation import run_logrotate_case

MODES = ["create", "copytruncate", "compress"]
PATHS = ["one", "glob"]
RESTARTS = ["none", "sigterm", "sigkill"]


async def run_case(case: tuple[str, str, str], args: argparse.Namespace) -> str:
    mode, paths, restart = case
    with tempfile.TemporaryDirectory(prefix="aggregator-rotation-") as tmp:
        work = Path(tmp)
        rotations = max(1, round(args.seconds / args.every))
        started = time.monotonic()
        counts, aggregator = await run_logrotate_case(
            work, mode, paths, restart, rate=args.rate, phase=args.every,
            rotations=rotations, command=AGGREGATOR,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    ratio = counts.delivered / counts.written if counts.written else 0.0
    return (f"| {mode} | {paths} | {restart} | {counts.written:,} | {counts.delivered:,} "
            f"({ratio:.3f}) | {counts.lost:,} | {counts.doubled:,} | {counts.out_of_order} | "
            f"{counts.garbage:,} | "
            f"{aggregator.peak_rss_kib / 1024:.0f} MiB | {elapsed:.0f} s |")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="writing time per case")
    parser.add_argument("--rate", type=int, default=2000, help="lines a second")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between rotations")
    parser.add_argument("--cases", default="", help="comma-separated MODE-PATHS-RESTART")
    args = parser.parse_args()
    cases = list(itertools.product(MODES, PATHS, RESTARTS))
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = [case for case in cases if "-".join(case) in wanted]
    print(f"logrotate -f every {args.every:g} s, {args.rate:,} lines/s, ~{args.seconds:g} s a "
          f"case; Python {sys.version.split()[0]}")  # fmt: skip
    print("| mode | paths | restart | written | delivered (ratio) | lost | doubled | "
          "out of order | not written | peak RSS | time |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        print(await run_case(case, args), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
