"""Passthrough throughput: 1M lines of ~120 bytes in 8 files, read through and written raw.

    python3 bench/throughput.py [--lines N] [--repeat R]

Runs `aggregator tail --from-start --no-follow --format raw` on the files into a file (with the
default codec, auto, and with --codec raw), and the same files through `cat` and
`tail -q -n +1` in the same run; prints the medians of R runs. Every line starts with a
timestamp, so the files interleave: the merge does real work.
"""

import argparse
import tempfile
from pathlib import Path

from common import AGGREGATOR, make_lines, median_run, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aggregator-bench-") as tmp:
        work = Path(tmp)
        paths = [str(p) for p in make_lines(work / "in", args.files, args.lines)]
        size_mb = sum(Path(p).stat().st_size for p in paths) / 1e6
        out = work / "out.log"
        tail = [*AGGREGATOR, "tail", "--from-start", "--no-follow", "--format", "raw"]
        commands = {
            "aggregator": [*tail, *paths],
            "aggregator --codec raw": [*tail, "--codec", "raw", *paths],
            "cat": ["cat", *paths],
            "tail -q -n +1": ["tail", "-q", "-n", "+1", *paths],
        }
        results = {name: median_run(cmd, out, args.repeat) for name, cmd in commands.items()}
        ours = results["aggregator"].seconds
        rows = [
            [
                name,
                f"{args.lines / run.seconds:,.0f}",
                f"{size_mb / run.seconds:,.1f}",
                f"{run.seconds:.3f}",
                f"{run.rss_mib:.1f}",
                f"{run.seconds / ours:.3f}",
            ]
            for name, run in results.items()
        ]
        print(
            f"{args.lines:,} lines, {size_mb:.0f} MB in {args.files} files; "
            f"median of {args.repeat} runs"
        )
        print(
            table(
                rows, ["tool", "lines/s", "MB/s", "seconds", "peak RSS MiB", "time vs aggregator"]
            )
        )


if __name__ == "__main__":
    main()
