"""The ordered merge: 1M lines in 8 files, JSON lines with `ts` and text lines that start with
a timestamp, merged by event time with `--codec auto`; the order is checked against the known
one. syslog-ng (default configuration, the same files into one file, unordered) runs on the
same files in the same run.

    python3 bench/ordered_merge.py [--lines N] [--repeat R] [--no-syslog-ng]
        [--python NAME=INTERPRETER ...] [--where [EXPR]]

``--python`` (repeatable) runs the aggregator with each interpreter (a venv's, holding another
build: compiled and pure, say), the runs of each format interleaved, one of each in turn; with
``-P``, so that each runs its own install, never a checkout in the working directory.

``--where`` also runs each with ``--where EXPR`` (default ``WHERE``: three conditions that every
line passes, so that the order is still checked), interleaved with the runs without it, and
prints what the filter costs as a ratio of the two in the same run (issue #29).
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
from common import AGGREGATOR, Run, median_of, table, timed

T0 = 1_795_600_800.0  # 2026-11-25T10:00:00Z
WHERE = 'level>=info and not msg contains "zzz" and source~"^svc"'
"""Three conditions (a level, a field, a regex) that every line of the files passes."""


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


def check_order(output: Path, expected: list[str]) -> bool:
    """Whether the output holds exactly the expected ids, in the expected order."""
    got = []
    with output.open("rb") as lines:
        for line in lines:
            start = line.index(b"id=")
            got.append(line[start : line.index(b" ", start)].decode().rstrip('\\"'))
    return got == expected


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
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
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
    with tempfile.TemporaryDirectory(prefix="aggregator-bench-") as tmp:
        work = Path(tmp)
        paths, expected = make_files(work / "in", args.files, args.lines)
        total = len(expected)
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        rows = []
        timings: dict[str, float] = {}
        for fmt in ("raw", "json"):
            names = [name + variant for name in aggregators for variant in variants]
            runs: dict[str, list[Run]] = {name: [] for name in names}
            for _ in range(args.repeat):
                for name, aggregator in aggregators.items():
                    for variant, extra in variants.items():
                        cmd = [*aggregator, "tail", "--no-follow", "--from-start", "--codec",
                               "auto", "--format", fmt, *extra, *map(str, paths)]  # fmt: skip
                        runs[name + variant].append(timed(cmd, work / f"out.{name}{variant}.{fmt}"))
            for name in names:
                run = median_of(runs[name])
                exact = check_order(work / f"out.{name}.{fmt}", expected)
                label = f"{name} --format {fmt}"
                timings[label] = run.seconds
                rows.append([label, f"{total / run.seconds:,.0f}",
                             f"{size_mb / run.seconds:.1f}", f"{run.rss_mib:.0f}",
                             f"{run.user_s:.2f}", f"{run.sys_s:.2f}",
                             "exact" if exact else "WRONG ORDER"])  # fmt: skip
        if not args.no_syslog_ng and shutil.which("syslog-ng"):
            seconds = sorted(run_syslog_ng(paths, work, total) for _ in range(args.repeat))
            median = seconds[len(seconds) // 2]
            timings["syslog-ng"] = median
            rows.append(["syslog-ng (unordered)", f"{total / median:,.0f}",
                         f"{size_mb / median:.1f}", "-", "-", "-", "arrival order"])  # fmt: skip
        print(f"{total:,} lines, {size_mb:.0f} MB in {args.files} files (half JSON, half text); "
              f"median of {args.repeat} runs on {os.cpu_count()} cores")  # fmt: skip
        print(table(rows, ["tool", "lines/s", "MB/s", "peak RSS MiB", "user s", "sys s", "order"]))
        for label, taken in timings.items():
            if " --where " in label:
                plain = timings[label.replace(" --where", "")]
                print(f"{label}: throughput {plain / taken:.1%} of without ({args.where})")
        if "syslog-ng" in timings:
            for label, taken in timings.items():
                if label != "syslog-ng":
                    print(f"{label}: {timings['syslog-ng'] / taken:.2f}x syslog-ng")


if __name__ == "__main__":
    main()
