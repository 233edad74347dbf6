"""Instructions a live line costs (issue #27): ``aggregator tail -n 0 --format raw`` under
callgrind, instrumentation switched on once it follows, lines written slowly (each its own
wake) over 1 or more files, switched off; the total, from which the idle cost of the same
window (a run with no line written: ``--lines 0``) is subtracted by hand. Steadier than CPU
time on a loaded machine.

    python3 bench/live_instructions.py PYTHON [--files 8] [--lines 400] [--rate 50] --out FILE

It prints the window's instructions (callgrind_annotate's "PROGRAM TOTALS") and the loop's
wakes (calls of epoll's poll). The window is 1 s + LINES/RATE s + 2 s (a run with
``--lines 0``: 3 s). Compare builds in runs made at the same time, with as many wakes a line:
on a busy machine valgrind falls behind and a wake finds several lines (fewer instructions a
line); at 50 lines/s over 8 files on a quiet one, the merge's timer wakes it too.
"""

import argparse
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from live_cost import Writer, read_arrivals

PROBE = 99_999_999


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("python")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--lines", type=int, default=400)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aggregator-instructions-") as tmp:
        paths = [Path(tmp) / f"live-{index}.log" for index in range(args.files)]
        for path in paths:
            path.write_bytes(b"")
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={args.out}", args.python, "-P", "-m", "aggregator",
                   "tail", "-n", "0", "--format", "raw", *map(str, paths)]  # fmt: skip
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        arrivals: dict[int, float] = {}
        threading.Thread(target=read_arrivals, args=(proc.stdout, arrivals), daemon=True).start()
        probe = os.open(paths[0], os.O_WRONLY | os.O_APPEND)
        deadline = time.monotonic() + 120
        while PROBE not in arrivals and time.monotonic() < deadline:  # until it follows
            os.write(probe, f"2026-01-01T00:00:00.000000Z INFO id={PROBE}\n".encode())
            time.sleep(2)  # a benchmark's poll: valgrind starts the CLI slowly
        os.close(probe)
        time.sleep(3)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True)
        time.sleep(1)
        writer = Writer(paths, args.rate)
        writer.run(args.lines / args.rate)
        time.sleep(2)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        writer.close()
        seen = sum(1 for ident in arrivals if ident != PROBE)
        total, wakes = totals(args.out)
        print(f"lines written {writer.count}, seen {seen}; instructions {total:,}, wakes {wakes:,}")


def totals(out: str) -> tuple[int, int]:
    """(instructions in the window, calls of epoll's poll: the loop's wakes) of a callgrind
    output file."""
    tree = subprocess.run(["callgrind_annotate", "--tree=caller", out], capture_output=True,
                          text=True).stdout  # fmt: skip
    total = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", tree)
    polls = re.search(r"< \S*:select_epoll_poll \(([\d,]+)x\)", tree)
    return number(total), number(polls)


def number(match: re.Match[str] | None) -> int:
    return int(match.group(1).replace(",", "")) if match else 0


if __name__ == "__main__":
    main()
