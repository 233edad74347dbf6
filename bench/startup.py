"""Start-up: ``aggregator tail --no-follow --from-start`` on a one-line file, and ``aggregator
run -c config.example.toml`` (its ports moved to free ones) until it says it listens (its last
start-up line, on stderr) and until its first line out (a line sent to its TCP source as soon as
that listens, written on stdout), against the same interpreter's ``import asyncio`` (issue #27's
target: at most 1.5x), medians of alternated runs.

    python bench/startup.py [RUNS] [--python NAME=INTERPRETER ...] [--instructions]

``--python`` (repeatable): each build's interpreter (a venv's, holding its own install), all
alternated within each round, each against its own ``import asyncio``; the package is run with
``-P``, so that the working directory's sources are never imported instead.

The first line out waits in the merge for the config's ``order_window`` (slower sources may
still send older records): its wall-clock time is given less that window, which no start-up
can shorten; its CPU time is the process's (every thread's, from /proc) when the line is read.

``--instructions``: instead, each command once under valgrind's callgrind, its instructions
(every thread): ``import asyncio`` and ``tail`` whole, ``run -c`` until it listens and until
its first line out (callgrind's counts dumped then, with ``callgrind_control``). Deterministic,
unlike the times, so one run says it on a busy machine; but valgrind runs the program tens of
times slower while timers keep the clock's pace, so the first line out may come after work a
timer started that at full speed comes later (the first checkpoint save, after 1 s): the count
until it listens has no timer's work in it.

Children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed), as a user's
install has it, after one warm-up run each: compiling the package's sources at every start
would otherwise be measured (about 50 ms).
"""

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ROOT = Path(__file__).resolve().parent.parent
TAIL = "tail --no-follow --from-start"
READY = "run -c config.example.toml, listening"
FIRST_LINE = "run -c config.example.toml, first line out"
FIRST_LINE_TEXT = b"2026-12-01T10:00:00Z the first line out\n"


def elapsed(command: list[str]) -> dict[str, tuple[float, float]]:
    """Wall-clock seconds and CPU seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"": (wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid`` so far, every live thread's, to the nanosecond (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def until_ready(
    command: list[str], cwd: Path, tcp_port: int, window: float
) -> dict[str, tuple[float, float]]:
    """Wall-clock and CPU seconds of ``command`` (``run -c``) until it writes its line saying it
    listens on TCP, and until a line sent to that port is on its stdout (wall less ``window``,
    the time the merge holds a live line); then it is stopped."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                            cwd=cwd)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        wait_for_line(proc.stderr, b"listening on tcp", command)
        ready = time.perf_counter() - start, cpu_seconds(proc.pid)
        with socket.create_connection(("127.0.0.1", tcp_port)) as connection:
            connection.sendall(FIRST_LINE_TEXT)
            wait_for_line(proc.stdout, b"the first line out", command)
        out = time.perf_counter() - start - window, cpu_seconds(proc.pid)
        return {READY: ready, FIRST_LINE: out}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def wait_for_line(stream: IO[bytes], text: bytes, command: list[str]) -> None:
    for line in stream:
        if text in line:
            return
    raise SystemExit(f"{command} ended before a line with {text!r}")


def example_config(directory: Path) -> tuple[Path, int, float]:
    """config.example.toml with its ports moved to free ones (other runs may hold them); its
    TCP source's port, and its order window in seconds."""
    text = (ROOT / "config.example.toml").read_text()
    ports = {port: free_port() for port in ("5170", "5514", "8765")}
    for port, free in ports.items():
        text = text.replace(f":{port}", f":{free}")
    config = directory / "config.toml"
    config.write_text(text)
    window = re.search(r'order_window = "(\d+)ms"', text)
    assert window is not None, "the example's order_window is no longer in ms"
    return config, ports["5170"], int(window.group(1)) / 1000


def instructions(command: list[str], cwd: Path, tcp_port: int | None, out: Path) -> list[int]:
    """Instructions ``command`` runs under callgrind (every thread): to its end; or, given the
    TCP port of ``run -c``, until it says it listens there, and until a line sent there then
    is on its stdout (callgrind's counts dumped at each)."""
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p"]
    proc = subprocess.Popen([*valgrind, *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, cwd=cwd)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    if tcp_port is None:
        proc.communicate(timeout=600)
        return [dump_total(Path(f"{out}.{proc.pid}"))]
    control = ["callgrind_control", "--dump", str(proc.pid)]
    try:
        wait_for_line(proc.stderr, b"listening on tcp", command)
        subprocess.run(control, check=True, capture_output=True, timeout=600)
        with socket.create_connection(("127.0.0.1", tcp_port)) as connection:
            connection.sendall(FIRST_LINE_TEXT)
            wait_for_line(proc.stdout, b"the first line out", command)
        subprocess.run(control, check=True, capture_output=True, timeout=600)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=600)
    ready = dump_total(Path(f"{out}.{proc.pid}.1"))  # each dump counts from the one before
    return [ready, ready + dump_total(Path(f"{out}.{proc.pid}.2"))]


def dump_total(dump: Path) -> int:
    totals = re.search(r"^(?:totals|summary): (\d+)", dump.read_text(), re.MULTILINE)
    assert totals is not None, f"no total in {dump}"
    return int(totals.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=21)
    parser.add_argument("--python", action="append", metavar="NAME=INTERPRETER", default=[])
    parser.add_argument("--instructions", action="store_true", help="callgrind, once each")
    args = parser.parse_args()
    pythons = [tuple(item.split("=", 1)) for item in args.python] or [("", sys.executable)]
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        one = directory / "one.log"
        one.write_text("2026-12-01T10:00:00Z hello\n")
        config, tcp_port, window = example_config(directory)
        ENV["AGGREGATOR_STATE_DIR"] = str(directory / "state")
        commands: dict[tuple[str, str], list[str]] = {}
        for build, python in pythons:
            package = [python, "-P", "-m", "aggregator"]
            commands[build, "import asyncio"] = [python, "-c", "import asyncio"]
            commands[build, TAIL] = [*package, "tail", "--no-follow", "--from-start", str(one)]
            commands[build, "--version"] = [*package, "--version"]
            commands[build, READY] = [*package, "run", "-c", str(config)]

        def once(key: tuple[str, str]) -> dict[str, tuple[float, float]]:
            if key[1] == READY:
                return until_ready(commands[key], directory, tcp_port, window)
            return elapsed(commands[key])

        for key in commands:
            once(key)  # warm-up: caches the bytecode, fills the page cache
        if args.instructions:
            count_instructions(pythons, commands, directory, tcp_port)
            return
        walls: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):  # alternated, so that a busy moment hits all alike
            for key in commands:
                for measure, (wall, cpu) in once(key).items():
                    walls.setdefault((key[0], measure or key[1]), []).append(wall)
                    cpus.setdefault((key[0], measure or key[1]), []).append(cpu)
    load = os.getloadavg()[0]
    print(f"{args.runs} runs each, medians: wall-clock, then CPU (user + system); load {load:.1f}")
    print(f"(the first line out's wall-clock is less the order window, {window * 1000:.0f} ms)")
    for build, _ in pythons:
        wall_base = statistics.median(walls[build, "import asyncio"])
        cpu_base = statistics.median(cpus[build, "import asyncio"])
        for key in walls:
            if key[0] != build:
                continue
            wall, cpu = statistics.median(walls[key]), statistics.median(cpus[key])
            label = f"{build}: {key[1]}" if build else key[1]
            print(
                f"{label:52} {wall * 1000:6.1f} ms {wall / wall_base:4.2f}x   "
                f"cpu {cpu * 1000:6.1f} ms {cpu / cpu_base:4.2f}x"
            )


def count_instructions(
    pythons: list[tuple[str, ...]],
    commands: dict[tuple[str, str], list[str]],
    directory: Path,
    tcp_port: int,
) -> None:
    print("instructions (callgrind, every thread), and the ratio to the build's import asyncio")
    for build, _ in pythons:
        counts: dict[str, int] = {}
        for (owner, name), command in commands.items():
            if owner != build or name == "--version":
                continue
            port = tcp_port if name == READY else None
            found = instructions(command, directory, port, directory / "callgrind")
            if name == READY:
                counts[READY], counts[FIRST_LINE] = found
            else:
                counts[name] = found[0]
        base = counts["import asyncio"]
        for name, count in counts.items():
            label = f"{build}: {name}" if build else name
            print(f"{label:52} {count / 1e6:7.1f} M {count / base:4.2f}x")


if __name__ == "__main__":
    main()
