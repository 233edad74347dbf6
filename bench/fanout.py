"""Fan-out over WebSocket: one file's new lines served to 1, 10, 100 and 1000 subscribers.

    python3 bench/fanout.py [--repeat N] [--only aggregator,websocketd,frontail]

For each server and subscriber count: lines are appended to a file as fast as the writer can,
every subscriber counts the lines it receives, and the table gives the lines delivered per
second in total (all subscribers), the server's CPU (its process tree, in cores), drops, and its
peak RSS. Then two aggregator-only figures: write → subscriber latency at 1000 lines/s with 100
subscribers, and what a subscriber that never reads adds to the server's RSS.

Peers, on the same workload in the same run (skipped when not installed):
  websocketd (apt-get install websocketd) serving `tail -n 0 -F FILE`, one process per client;
  frontail (npm install --prefix bench/peers frontail), socket.io, one message per line.
Subscribers are Python (websockets) or Node (socket.io-client) processes, two of them: they
share the two cores with the server, so every figure here includes the clients' own cost.
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import AGGREGATOR, table

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers" / "node_modules"
SCENARIOS = [(1, 200_000), (10, 100_000), (100, 20_000), (1000, 2_000)]
"""(subscribers, lines written): each subscriber is to receive every line."""
CLIENT_PROCESSES = 2
LINE_PAD = "GET /api/v1/items user=ann cache=miss db=12ms queue=3 retry=0 " * 2


@dataclass
class Server:
    name: str
    start: Callable[[Path, int], list[str]]
    url: Callable[[Path, int], str]
    client: Callable[[str, int, int], list[str]]


def aggregator_command(log: Path, port: int) -> list[str]:
    config = log.with_suffix(".toml")
    config.write_text(
        f'[sources.app]\ntype = "file"\npaths = ["{log}"]\ncodec = "raw"\n'
        f'[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:{port}"\nreplay = 0\n'
    )
    return [*AGGREGATOR, "run", "-c", str(config)]


def python_client(url: str, connections: int, lines: int) -> list[str]:
    return [sys.executable, str(HERE / "ws_subscribers.py"), url, str(connections), str(lines)]


def node_client(url: str, connections: int, lines: int) -> list[str]:
    return ["node", str(HERE / "frontail_subscribers.js"), url, str(connections), str(lines)]


SERVERS = [
    Server(
        "aggregator",
        aggregator_command,
        lambda log, port: f"ws://127.0.0.1:{port}/ws?format=text",
        python_client,
    ),
    Server(
        "websocketd",
        lambda log, port: [
            "websocketd",
            f"--port={port}",
            "--address=127.0.0.1",
            "--loglevel=fatal",
            "tail",
            "-n",
            "0",
            "-F",
            str(log),
        ],
        lambda log, port: f"ws://127.0.0.1:{port}/",
        python_client,
    ),
    Server(
        "frontail",
        lambda log, port: [
            "node",
            str(PEERS / "frontail" / "index.js"),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-n",
            "0",
            str(log),
        ],
        lambda log, port: f"http://127.0.0.1:{port}/{hashlib.md5(str(log).encode()).hexdigest()}",
        node_client,
    ),
]


def installed(server: Server) -> bool:
    if server.name == "websocketd":
        return shutil.which("websocketd") is not None
    if server.name == "frontail":
        return (PEERS / "frontail").exists() and shutil.which("node") is not None
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_port(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def more_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU of ``pid``'s tree, reaped children included (websocketd's tails end with clients)."""
    total = 0
    for index, member in enumerate(tree(pid)):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if index == 0:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Peak RSS of ``pid`` plus the current RSS of its descendants."""
    total = 0
    for index, member in enumerate(tree(pid)):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        key = "VmHWM:" if index == 0 else "VmRSS:"
        for line in status.splitlines():
            if line.startswith(key):
                total += int(line.split()[1])
    return total / 1024


def start_server(server: Server, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    log.write_text("")
    port = free_port()
    proc = subprocess.Popen(
        server.start(log, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=more_files,
        start_new_session=True,
    )
    wait_port(port)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_clients(
    command: list[list[str]],
) -> list[subprocess.Popen[str]]:
    clients = [
        subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=more_files,
            env={**os.environ, "NODE_PATH": str(PEERS)},
        )
        for cmd in command
    ]
    for client in clients:
        assert client.stdout is not None
        line = client.stdout.readline()
        if line.strip() != "READY":
            raise SystemExit(f"a client did not connect: {line!r}")
    return clients


def split(total: int, parts: int) -> list[int]:
    return [n for n in (total // parts + (i < total % parts) for i in range(parts)) if n]


@dataclass
class Result:
    rate: float
    cores: float
    dropped: int
    delivered: int
    expected: int
    rss: float


def fan_out(server: Server, subscribers: int, lines: int, work: Path) -> Result:
    log = work / f"{server.name}.log"
    proc, port = start_server(server, log)
    try:
        url = server.url(log, port)
        clients = start_clients(
            [server.client(url, n, lines) for n in split(subscribers, CLIENT_PROCESSES)]
        )
        time.sleep(0.5)  # let every connection settle (websocketd starts a tail for each)
        payload = "".join(f"INFO fan #{n} {LINE_PAD}\n" for n in range(lines)).encode()
        cpu_before = cpu_seconds(proc.pid)
        start = time.time()
        with log.open("ab") as file:
            for offset in range(0, len(payload), 1 << 20):
                file.write(payload[offset : offset + (1 << 20)])
                file.flush()
        reports = []
        for client in clients:
            assert client.stdout is not None
            reports.append(json.loads(client.stdout.readline()))
            client.wait()
        cpu = cpu_seconds(proc.pid) - cpu_before
        rss = rss_mib(proc.pid)
    finally:
        stop(proc)
    delivered = sum(report["lines"] for report in reports)
    last = max(report["last"] for report in reports)
    elapsed = max(last - start, 1e-6)
    return Result(
        delivered / elapsed,
        cpu / elapsed,
        sum(report["dropped"] for report in reports),
        delivered,
        lines * subscribers,
        rss,
    )


def latency(
    work: Path, subscribers: int = 100, rate: int = 1000, seconds: float = 5
) -> list[float]:
    """Write → subscriber latencies (ms) at ``rate`` lines/s to ``subscribers``."""
    server = SERVERS[0]
    log = work / "latency.log"
    proc, port = start_server(server, log)
    count = int(rate * seconds)
    try:
        url = server.url(log, port)
        command = [
            [*python_client(url, n, count), "--latency"]
            for n in split(subscribers, CLIENT_PROCESSES)
        ]
        clients = start_clients(command)
        time.sleep(0.5)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        begin = time.perf_counter()
        for n in range(count):
            pause = begin + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # pacing the writer; a busy loop would take a core
            os.write(fd, f"INFO lat #{n} t={time.time_ns()} {LINE_PAD[:60]}\n".encode())
        os.close(fd)
        latencies: list[float] = []
        for client in clients:
            assert client.stdout is not None
            latencies.extend(json.loads(client.stdout.readline())["latencies"])
            client.wait()
    finally:
        stop(proc)
    return latencies


def stuck_subscriber_cost(work: Path, lines: int = 300_000) -> tuple[float, float]:
    """Server peak RSS (MiB) for ``lines`` to one reader, without and with a stuck one."""
    stuck_client = (
        "import asyncio, sys\n"
        "from websockets.asyncio.client import connect\n"
        "async def main():\n"
        "    async with connect(sys.argv[1], max_queue=1, max_size=None):\n"
        "        print('READY', flush=True)\n"
        "        await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    peaks = []
    for with_stuck in (False, True):
        server = SERVERS[0]
        log = work / f"stuck-{with_stuck}.log"
        proc, port = start_server(server, log)
        stuck = None
        try:
            url = server.url(log, port)
            if with_stuck:
                stuck = start_clients([[sys.executable, "-c", stuck_client, url]])[0]
            reader = start_clients([python_client(url, 1, lines)])[0]
            payload = "".join(f"INFO stuck #{n} {LINE_PAD}\n" for n in range(lines)).encode()
            log.write_bytes(payload)
            assert reader.stdout is not None
            json.loads(reader.stdout.readline())
            reader.wait()
            peaks.append(rss_mib(proc.pid))
        finally:
            if stuck is not None:
                stuck.kill()
            stop(proc)
    return peaks[0], peaks[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; medians shown")
    parser.add_argument("--only", default="aggregator,websocketd,frontail")
    args = parser.parse_args()
    wanted = args.only.split(",")
    servers = [server for server in SERVERS if server.name in wanted]
    rows = []
    ours: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        work = Path(tmp)
        for subscribers, lines in SCENARIOS:
            for server in servers:
                if not installed(server):
                    rows.append(
                        [server.name, str(subscribers), "not installed", "", "", "", "", ""]
                    )
                    continue
                runs = [fan_out(server, subscribers, lines, work) for _ in range(args.repeat)]
                rate = statistics.median(run.rate for run in runs)
                delivered = statistics.median(run.delivered for run in runs)
                if server.name == "aggregator":
                    ours[subscribers] = rate
                ratio = (
                    f"{ours[subscribers] / rate:.1f}x"
                    if server.name != "aggregator" and subscribers in ours
                    else ""
                )
                rows.append(
                    [
                        server.name,
                        str(subscribers),
                        f"{rate:,.0f}",
                        f"{statistics.median(run.cores for run in runs):.2f}",
                        f"{delivered:,.0f}/{runs[0].expected:,}",
                        f"{statistics.median(run.dropped for run in runs):,.0f}",
                        f"{statistics.median(run.rss for run in runs):.0f}",
                        ratio,
                    ]
                )
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
        print(
            table(
                rows,
                [
                    "server",
                    "subscribers",
                    "lines/s delivered",
                    "server CPU (cores)",
                    "delivered",
                    "dropped",
                    "peak RSS MiB",
                    "aggregator is",
                ],
            )
        )
        if "aggregator" in wanted:
            samples = [latency(work) for _ in range(args.repeat)]
            p50 = statistics.median(percentile(s, 0.50) for s in samples)
            p99 = statistics.median(percentile(s, 0.99) for s in samples)
            print(
                f"\nlatency, 1000 lines/s to 100 subscribers: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
                f" ({sum(len(s) for s in samples):,} samples)"
            )
            base, stuck = stuck_subscriber_cost(work)
            print(
                f"a subscriber that never reads: peak RSS {base:.0f} → {stuck:.0f} MiB "
                f"(+{stuck - base:.1f} MiB) for 300,000 lines"
            )


if __name__ == "__main__":
    main()
