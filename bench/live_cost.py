"""The cost of a live line (issue #27): files written line by line, as applications write,
followed by `aggregator tail -n 0 --format raw`, GNU `tail -F` and syslog-ng in turn, in the
same run; each follower's CPU (its process and children, from /proc) over the window, and, for
the two that write to stdout, each line's latency from its write to its arrival on the pipe.

    python3 bench/live_cost.py [--seconds S] [--repeat R] [--python NAME=INTERPRETER ...]

Cases: 1 and 8 files at 1,000 and 10,000 lines/s, and idle (8 quiet files). syslog-ng reads
the files with its defaults (polling once a second: no latency is claimed for it) into
/dev/null. ``--stdout file`` also runs the aggregator with stdout to a file (CPU only).
``--floor`` also runs bench/live_floor.py, the least an asyncio follower costs a line, and the
same without asyncio: what no follower that wakes once a line goes below.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import AGGREGATOR, table

FLOOR = str(Path(__file__).with_name("live_floor.py"))

TICKS = os.sysconf("SC_CLK_TCK")
ID = re.compile(rb"id=(\d+)")


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


class Writer:
    """Appends ``rate`` lines a second over ``paths``, one write() each, in turn; remembers
    when each line was written (by its id)."""

    def __init__(self, paths: list[Path], rate: int) -> None:
        self.fds = [os.open(path, os.O_WRONLY | os.O_APPEND) for path in paths]
        self.rate = rate
        self.sent: dict[int, float] = {}
        self.stop = threading.Event()
        self.count = 0

    def run(self, seconds: float) -> None:
        start = time.perf_counter()
        end = start + seconds
        pad = "x" * 60
        while not self.stop.is_set():
            now = time.perf_counter()
            if now >= end:
                return
            due = int((now - start) * self.rate)
            while self.count < due:
                ident = self.count
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                line = f"{stamp}.{int(time.time() % 1 * 1e6):06d}Z INFO id={ident} {pad}\n"
                self.sent[ident] = time.perf_counter()
                os.write(self.fds[ident % len(self.fds)], line.encode())
                self.count += 1
            time.sleep(max(0.0, start + (self.count + 1) / self.rate - time.perf_counter()))

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def read_arrivals(stream: object, arrivals: dict[int, float]) -> None:
    """Each id's arrival time on the follower's stdout."""
    for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
        match = ID.search(line)
        if match:
            arrivals.setdefault(int(match.group(1)), time.perf_counter())


def syslog_ng(paths: list[Path], work: Path) -> list[str]:
    sources = " ".join(f'file("{path}");' for path in paths)
    conf = work / "syslog-ng.conf"
    conf.write_text(
        "@version: 3.38\n"
        f"source s {{ {sources} }};\n"
        'destination d { file("/dev/null"); };\n'
        "log { source(s); destination(d); };\n"
    )
    state = work / "syslog-ng-state"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    return ["syslog-ng", "-F", "-f", str(conf), "-R", str(state / "persist"),
            "-c", str(state / "ctl"), "-p", str(state / "pid"), "--no-caps"]  # fmt: skip


def measure(
    command: list[str], paths: list[Path], rate: int, seconds: float, stdout: str
) -> tuple[float, float | None, float | None, int]:
    """(CPU % of one core, latency p50 ms, p99 ms, lines seen) of ``command`` following
    ``paths`` while ``rate`` lines/s are written for ``seconds`` (0: quiet)."""
    out = subprocess.PIPE if stdout == "pipe" else open(stdout, "wb")  # noqa: SIM115
    proc = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
    arrivals: dict[int, float] = {}
    reader = None
    if stdout == "pipe":
        reader = threading.Thread(target=read_arrivals, args=(proc.stdout, arrivals), daemon=True)
        reader.start()
    try:
        time.sleep(1.5)  # start-up: not part of a live line's cost
        writer = Writer(paths, rate) if rate else None
        cpu0, wall0 = tree_cpu(proc.pid), time.perf_counter()
        if writer is not None:
            writer.run(seconds)
        else:
            time.sleep(seconds)
        settle = time.perf_counter() + 1.0
        while writer is not None and stdout == "pipe" and time.perf_counter() < settle:
            if len(arrivals) >= writer.count:
                break
            time.sleep(0.01)  # a benchmark's poll for the last lines
        cpu = (tree_cpu(proc.pid) - cpu0) / (time.perf_counter() - wall0) * 100
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        if out is not subprocess.PIPE:
            out.close()
    if writer is None:
        return cpu, None, None, 0
    writer.close()
    if stdout != "pipe" or not arrivals:
        return cpu, None, None, writer.count
    if len(arrivals) < writer.count:
        print(f"{command[0]}: {writer.count - len(arrivals)} of {writer.count} lines "
              "not seen within a second of the last write")  # fmt: skip
    latencies = sorted((arrivals[i] - writer.sent[i]) * 1000 for i in arrivals if i in writer.sent)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return cpu, p50, p99, len(arrivals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--python", action="append", metavar="NAME=INTERPRETER", default=[])
    parser.add_argument("--stdout", choices=["pipe", "file"], action="append", default=[])
    parser.add_argument("--floor", action="store_true", help="run bench/live_floor.py too")
    parser.add_argument(
        "--cases", default="1x1000,8x1000,1x10000,8x10000,8x0", help="FILESxRATE, comma-separated"
    )
    args = parser.parse_args()
    pythons = [tuple(item.split("=", 1)) for item in args.python]
    aggregators = {name: [python, "-P", *AGGREGATOR[1:]] for name, python in pythons}
    if not aggregators:
        aggregators = {"aggregator": AGGREGATOR}
    outputs = args.stdout or ["pipe"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="aggregator-live-") as tmp:
        work = Path(tmp)
        for case in args.cases.split(","):
            files, rate = (int(part) for part in case.split("x"))
            paths = [work / f"live-{index}.log" for index in range(files)]
            names = [str(path) for path in paths]
            followers: dict[str, tuple[list[str], str]] = {}
            for name, aggregator in aggregators.items():
                for output in outputs:
                    label = name if output == "pipe" else f"{name} > file"
                    target = "pipe" if output == "pipe" else str(work / "out.txt")
                    command = [*aggregator, "tail", "-n", "0", "--format", "raw", *names]
                    followers[label] = (command, target)
            if args.floor:
                followers["asyncio floor"] = ([sys.executable, FLOOR, *names], "pipe")
                followers["floor, no asyncio"] = ([sys.executable, FLOOR, *names, "--no-asyncio"],
                                                  "pipe")  # fmt: skip
            followers["GNU tail -F"] = (["tail", "-q", "-n", "0", "-F", *names], "pipe")
            if shutil.which("syslog-ng"):
                followers["syslog-ng"] = (syslog_ng(paths, work), str(os.devnull))
            results: dict[str, list[tuple[float, float | None, float | None, int]]] = {}
            for _ in range(args.repeat):
                for label, (command, target) in followers.items():
                    for path in paths:
                        path.write_bytes(b"")
                    results.setdefault(label, []).append(
                        measure(command, paths, rate, args.seconds, target)
                    )
            for label, measured in results.items():
                cpu = statistics.median(m[0] for m in measured)
                p50s = [m[1] for m in measured if m[1] is not None]
                p99s = [m[2] for m in measured if m[2] is not None]
                per_line = f"{cpu / 100 / rate * 1e6:.0f}" if rate else "-"
                rows.append([
                    f"{files} file{'s' if files > 1 else ''}", f"{rate:,}/s" if rate else "quiet",
                    label, f"{cpu:.1f}", per_line,
                    f"{statistics.median(p50s):.2f}" if p50s else "-",
                    f"{statistics.median(p99s):.2f}" if p99s else "-",
                    f"{measured[-1][3]:,}" if rate else "-",
                ])  # fmt: skip
    load = os.getloadavg()
    print(f"{args.seconds:.0f} s a case, median of {args.repeat}; {os.cpu_count()} cores, "
          f"load average {load[0]:.1f} / {load[1]:.1f}")  # fmt: skip
    print(table(rows, ["files", "rate", "follower", "CPU %", "us CPU/line", "p50 ms", "p99 ms",
                       "lines"]))  # fmt: skip


if __name__ == "__main__":
    main()
