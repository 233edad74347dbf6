"""The ordered merge, on two workloads: today's (1M lines in 8 equal files, JSON lines with
`ts` and text lines that start with a timestamp) and a production-shaped one (bench/workload.py:
8 unequal files, nested JSON, nginx, syslog, tracebacks, logfmt); merged by event time with
`--codec auto`, the order checked against the known one. syslog-ng (default configuration, the
same files into one file, unordered) runs on the same files in the same run, alternated.

    python3 bench/ordered_merge.py [--workload today|production|both] [--lines N] [--repeat R]
        [--no-syslog-ng] [--python NAME=INTERPRETER ...] [--where [EXPR]]

``--python`` (repeatable) runs the aggregator with each interpreter (a venv's, holding another
build: compiled and pure, say), the runs of each format interleaved, one of each in turn; with
``-P``, so that each runs its own install, never a checkout in the working directory.

``--where`` also runs each with ``--where EXPR`` (default ``WHERE``: three conditions that every
line of today's workload passes, so that the order is still checked), interleaved with the runs
without it, and prints what the filter costs as a ratio of the two in the same run (issue #29).
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import orjson
import workload
from common import AGGREGATOR, Run, median_of, table, timed

T0 = 1_795_600_800.0  # 2026-11-25T10:00:00Z
WHERE = 'level>=info and not msg contains "zzz" and source~"^svc"'
"""Three conditions (a level, a field, a regex) that every line of today's files passes."""


def make_files(directory: Path, files: int, lines: int) -> tuple[list[Path], list[str]]:
    """The files, and the ids of their lines in the exact merged order."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(4)
    words = ["GET", "POST", "user", "cache", "miss", "hit", "timeout", "db", "queue", "retry"]
    keyed: list[tuple[int, int, int, str]] = []
    paths = []
    for index in range(files):
        path = directory / f"svc-{index}.log"
        paths.append(path)
        micros = int(T0 * 1e6)
        with path.open("w") as out:
            for number in range(lines // files):
                micros += rng.choice((0, 500, 1500, 4000))
                seconds, fraction = divmod(micros, 1_000_000)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
                stamp += f".{fraction:06d}Z"
                ident = f"id={index}-{number}"
                body = " ".join(rng.choice(words) for _ in range(8))
                if number % 2:
                    line = orjson.dumps({"ts": stamp, "level": "info", "msg": f"{ident} {body}"})
                    out.write(line.decode() + "\n")
                else:
                    out.write(f"{stamp} WARN svc-{index} {ident} {body} {body}"[:119] + "\n")
                keyed.append((micros, index, number, ident))
    keyed.sort()
    return paths, [ident for *_, ident in keyed]


SYSLOG_NG_CONF = """@version: 3.38
source s_files {{ {sources} }};
destination d_out {{ file("{out}"); }};
log {{ source(s_files); destination(d_out); }};
"""


def run_syslog_ng(paths: list[Path], work: Path, lines: int) -> float:
    """Seconds until syslog-ng has written every line of the files to one file."""
    out = work / "syslog-ng.out"
    out.unlink(missing_ok=True)
    state = work / "syslog-ng-state"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    sources = " ".join(f'file("{path}");' for path in paths)
    conf = work / "syslog-ng.conf"
    conf.write_text(SYSLOG_NG_CONF.format(sources=sources, out=out))
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["syslog-ng", "-F", "-f", str(conf), "-R", str(state / "persist"),
         "-c", str(state / "ctl"), "-p", str(state / "pid"), "--no-caps"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = start + 300
    try:
        while time.perf_counter() < deadline:
            if out.exists() and out.stat().st_size and count_lines(out) >= lines:
                return time.perf_counter() - start
            time.sleep(0.02)  # a benchmark's poll: syslog-ng never ends on its own
        raise SystemExit("syslog-ng did not write every line within 300 s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["today", "production", "both"], default="both")
    parser.add_argument(
        "--lines",
        type=int,
        default=None,
        help="lines in all (default: 1,000,000 today's, 920,000 production)",
    )
    parser.add_argument("--files", type=int, default=8, help="files of today's workload")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-syslog-ng", action="store_true")
    parser.add_argument("--python", action="append", metavar="NAME=INTERPRETER", default=[])
    parser.add_argument("--where", nargs="?", const=WHERE, metavar="EXPR")
    args = parser.parse_args()
    variants: dict[str, list[str]] = {"": []}
    if args.where:
        variants[" --where"] = ["--where", args.where]
    pythons = [tuple(item.split("=", 1)) for item in args.python]
    aggregators = {name: [python, "-P", *AGGREGATOR[1:]] for name, python in pythons}
    if not aggregators:
        aggregators = {"aggregator": AGGREGATOR}
    syslog_ng = not args.no_syslog_ng and shutil.which("syslog-ng") is not None
    names = ["today", "production"] if args.workload == "both" else [args.workload]
    with tempfile.TemporaryDirectory(prefix="aggregator-bench-") as tmp:
        for name in names:
            work = Path(tmp) / name
            if name == "today":
                paths, ids = make_files(work / "in", args.files, args.lines or 1_000_000)
                expected = [ident.removeprefix("id=") for ident in ids]
                what = f"in {args.files} equal files (half JSON, half text)"
            else:
                paths, expected = workload.make_files(work / "in", args.lines or 920_000)
                what = "in 8 unequal files, production-shaped (bench/workload.py)"
            report(work, paths, expected, aggregators, variants, syslog_ng, args.repeat, what)
            print()


def report(
    work: Path,
    paths: list[Path],
    expected: list[str],
    aggregators: dict[str, list[str]],
    variants: dict[str, list[str]],
    syslog_ng: bool,
    repeat: int,
    what: str,
) -> None:
    """Run each aggregator in each format (with each of ``variants``' extra options) and
    syslog-ng in turn, ``repeat`` times; the table of medians, each one's ratio to syslog-ng,
    and what a variant costs against the plain run."""
    total = len(expected)
    size_mb = sum(p.stat().st_size for p in paths) / 1e6
    runs: dict[str, list[Run]] = {}
    peer: list[float] = []
    for _ in range(repeat):
        for fmt in ("raw", "json"):
            for name, aggregator in aggregators.items():
                for variant, extra in variants.items():
                    cmd = [*aggregator, "tail", "--no-follow", "--from-start", "--codec", "auto",
                           "--format", fmt, *extra, *map(str, paths)]  # fmt: skip
                    out = work / f"out.{name}{variant}.{fmt}"
                    runs.setdefault(f"{name}{variant} --format {fmt}", []).append(timed(cmd, out))
        if syslog_ng:
            peer.append(run_syslog_ng(paths, work, total))
    rows = []
    for label, measured in runs.items():
        run = median_of(measured)
        name, fmt = label.split(" --format ")
        exact = workload.read_ids(work / f"out.{name}.{fmt}") == expected
        rows.append([label, f"{total / run.seconds:,.0f}", f"{size_mb / run.seconds:.1f}",
                     f"{run.rss_mib:.0f}", f"{run.user_s:.2f}", f"{run.sys_s:.2f}",
                     "exact" if exact else "WRONG ORDER"])  # fmt: skip
    if peer:
        median = sorted(peer)[len(peer) // 2]
        rows.append(["syslog-ng (unordered)", f"{total / median:,.0f}",
                     f"{size_mb / median:.1f}", "-", "-", "-", "arrival order"])  # fmt: skip
    load = os.getloadavg()[0]
    print(f"{total:,} lines, {size_mb:.0f} MB {what}; median of {repeat} runs on "
          f"{os.cpu_count()} cores, load average {load:.1f}")  # fmt: skip
    print(table(rows, ["tool", "lines/s", "MB/s", "peak RSS MiB", "user s", "sys s", "order"]))
    for label, measured in runs.items():
        if " --where " in label:
            plain = median_of(runs[label.replace(" --where", "")]).seconds
            taken = median_of(measured).seconds
            print(f"{label}: throughput {plain / taken:.1%} of without ({variants[' --where'][1]})")
    if peer:
        for label, measured in runs.items():
            print(f"{label}: {median / median_of(measured).seconds:.2f}x syslog-ng")


if __name__ == "__main__":
    main()
