"""10,000 quiet files followed (issue #3): CPU and memory while nothing is written.

    python3 bench/quiet_files.py [--files N] [--seconds S]

Creates N files, starts `aggregator tail 'DIR/*.log'`, waits until every file is open, then
until the quiet files have been closed (close_idle, 60 s), then reads the process's CPU time
(utime + stime) over S seconds and its RSS from /proc. Last, a line is appended to one file
and must show on stdout.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import AGGREGATOR, table

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def memory_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_files(pid: int, directory: Path) -> int:
    fd_dir = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += os.readlink(fd).startswith(str(directory))
        except OSError:
            continue
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)  # rescans come every 30 s
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aggregator-quiet-") as tmp:
        directory = Path(tmp) / "logs"
        directory.mkdir()
        for number in range(args.files):
            (directory / f"f{number:05d}.log").write_text("existing line\n")
        start = time.monotonic()
        proc = subprocess.Popen(
            [*AGGREGATOR, "tail", str(directory / "*.log"), "--codec", "raw", "--format", "raw"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            while open_files(proc.pid, directory) < args.files:
                if time.monotonic() - start > 300 or proc.poll() is not None:
                    raise SystemExit("not every file was opened")
                time.sleep(0.5)
            settled = time.monotonic() - start
            # Quiet files give their descriptors back after close_idle (60 s): wait for that,
            # then measure the steady state.
            while open_files(proc.pid, directory) and time.monotonic() - start < 300:
                time.sleep(1)
            closed_after = time.monotonic() - start
            still_open = open_files(proc.pid, directory)
            time.sleep(2)
            before, began = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu = (cpu_seconds(proc.pid) - before) / (time.monotonic() - began) * 100
            rss, peak = memory_mib(proc.pid, "VmRSS"), memory_mib(proc.pid, "VmHWM")
            with (directory / "f00042.log").open("a") as file:
                file.write("still followed\n")
            assert proc.stdout is not None
            shown = proc.stdout.readline().decode().strip() == "still followed"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    rows = [
        ["files followed", f"{args.files:,}"],
        ["time until all were open", f"{settled:.1f} s"],
        ["files still open after close_idle (60 s)", f"{still_open} (at {closed_after:.0f} s)"],
        [f"CPU while quiet ({args.seconds:g} s)", f"{cpu:.2f} %"],
        ["RSS while quiet", f"{rss:.0f} MiB"],
        ["peak RSS", f"{peak:.0f} MiB"],
        ["a line written afterwards was shown", str(shown)],
    ]
    print(f"Python {sys.version.split()[0]}")
    print(table(rows, ["measure", "value"]))


if __name__ == "__main__":
    main()
