"""Write → stdout latency for followed files (issue #3), against `tail -F` in the same run.

    python3 bench/latency.py [--seconds S] [--rate N]

8 files; a writer appends N lines/s in all (round robin), each line carrying the
CLOCK_MONOTONIC time it was written; `aggregator tail --order-window 0s --codec raw` and
`tail -F -q` follow the same files, and a reader thread per follower takes the time each line
arrives on its stdout. Prints p50, p99 and max per follower.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import AGGREGATOR, table


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def collect(proc: subprocess.Popen[bytes], into: list[float], seen: set[bytes]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.monotonic_ns()
        text = line.strip()
        if text.startswith(b"warmup"):
            seen.add(text)
        elif text.isdigit():
            into.append((now - int(text)) / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aggregator-latency-") as tmp:
        paths = [Path(tmp) / f"f{n}.log" for n in range(8)]
        for path in paths:
            path.write_text("")
        followers = {
            "aggregator": [*AGGREGATOR, "tail", *map(str, paths), "--order-window", "0s",
                           "--codec", "raw", "--format", "raw"],
            "tail -F": ["tail", "-F", "-q", "-n", "0", *map(str, paths)],
        }  # fmt: skip
        results: dict[str, list[float]] = {name: [] for name in followers}
        warm: dict[str, set[bytes]] = {name: set() for name in followers}
        procs = []
        for name, cmd in followers.items():
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            procs.append(proc)
            threading.Thread(
                target=collect, args=(proc, results[name], warm[name]), daemon=True
            ).start()
        files = [path.open("a", buffering=1) for path in paths]
        try:
            # Both must be following before the measured lines: write markers until both see one.
            deadline = time.monotonic() + 30
            marker = 0
            while not all(warm.values()) and time.monotonic() < deadline:
                files[marker % 8].write(f"warmup{marker}\n")
                marker += 1
                time.sleep(0.05)
            interval = 1 / args.rate
            start = time.monotonic()
            for number in range(int(args.seconds * args.rate)):
                target = start + number * interval
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # the writer's pacing: a benchmark, not a test
                files[number % 8].write(f"{time.monotonic_ns()}\n")
            time.sleep(1)
        finally:
            for file in files:
                file.close()
            for proc in procs:
                proc.terminate()
                proc.wait()
    rows = []
    for name, latencies in results.items():
        rows.append([name, str(len(latencies)), f"{statistics.median(latencies):.3f}",
                     f"{percentile(latencies, 0.99):.3f}", f"{max(latencies):.3f}"])  # fmt: skip
    print(
        f"{args.rate} lines/s over 8 files for {args.seconds:g} s; Python {sys.version.split()[0]}"
    )
    print(table(rows, ["follower", "lines", "p50 ms", "p99 ms", "max ms"]))


if __name__ == "__main__":
    main()
