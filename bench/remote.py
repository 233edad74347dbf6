"""Beyond one machine (issue #14): sidecars → NATS JetStream → a central aggregator.

    python3 bench/remote.py [--lines N] [--seconds S]

Starts its own nats-server (JetStream, file store in a temporary directory), then measures:

1. throughput: N lines read through by a sidecar (`follow = false`) into NATS and consumed by
   a central aggregator into a JSON file, from the sidecar's start to the central's last line;
   against the same lines through one aggregator, file → JSON file; records per NATS message;
2. the central's peak RSS with two sidecars (N/2 lines each);
3. latency from a line's write to the central's stdout, at 1000 lines/s for S seconds;
4. an outage of nats-server of 10 s while a sidecar follows a file written at 1000 lines/s:
   the sidecar's RSS before and at its peak, and whether every line reached the central once.

Everything shares this machine: the aggregators, nats-server and the writer.
"""

import argparse
import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import AGGREGATOR, make_lines, table, timed

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.root / "server.log"
        log.write_bytes(b"")
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-sd", str(self.root / "store"), "-a", "127.0.0.1",
             "-p", str(self.port), "-l", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while "Server is ready" not in log.read_text():
            if time.monotonic() > deadline:
                raise SystemExit("nats-server did not start")
            time.sleep(0.02)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.send_signal(signum)
            self.proc.wait(15)
            self.proc = None


def sidecar(
    root: Path, url: str, node: str, paths: list[Path], follow: bool, workers: int = 0
) -> Path:
    config = root / f"sidecar-{node}.toml"
    config.write_text(f"""
[aggregator]
state_dir = "{root / ("state-" + node)}"
parse_workers = {workers}
[sources.app]
type = "file"
paths = {[str(path) for path in paths]!r}
start_at = "{"beginning" if not follow else "end"}"
follow = {"true" if follow else "false"}
codec = "raw"
[sinks.bus]
type = "nats"
url = "{url}"
node = "{node}"
""".replace("'", '"'))  # fmt: skip
    return config


def central(root: Path, url: str, name: str, sink: str) -> Path:
    config = root / f"central-{name}.toml"
    config.write_text(f"""
[aggregator]
state_dir = "{root / ("state-central-" + name)}"
[sources.bus]
type = "nats"
url = "{url}"
durable = "{name}"
{sink}
""")  # fmt: skip
    return config


def file_sink(path: Path) -> str:
    return f'[sinks.out]\ntype = "file"\npath = "{path}"\nformat = "json"\n'


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as file:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def wait_lines(path: Path, count: int, timeout: float) -> float:
    """Seconds until ``path`` holds ``count`` lines."""
    start = time.monotonic()
    while count_lines(path) < count:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"{path}: {count_lines(path)} of {count} lines after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stream_messages(url: str) -> int:
    import nats

    async def look() -> int:
        client = await nats.connect(url)
        try:
            info = await client.jetstream().stream_info("LOGS")
            return int(info.state.messages)
        finally:
            await client.close()

    return asyncio.run(look())


def start(config: Path, stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*AGGREGATOR, "run", "-c", str(config)], stdout=stdout, stderr=subprocess.DEVNULL
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def throughput(root: Path, server: Server, lines: int) -> list[list[str]]:
    data = make_lines(root / "data", 1, lines)
    local_config = root / "local.toml"
    local_out = root / "local.json"
    local_config.write_text(f"""
[aggregator]
state_dir = "{root / "state-local"}"
[sources.app]
type = "file"
paths = ["{data[0]}"]
start_at = "beginning"
follow = false
codec = "raw"
{file_sink(local_out)}""")  # fmt: skip
    local = timed([*AGGREGATOR, "run", "-c", str(local_config)], root / "local.stdout")
    assert count_lines(local_out) == lines

    remote_out = root / "remote.json"
    consumer = start(central(root, server.url, "one", file_sink(remote_out)))
    time.sleep(1.0)  # the central connects and subscribes before the clock starts
    started = time.monotonic()
    side = start(sidecar(root, server.url, "n1", data, follow=False))
    wait_lines(remote_out, lines, 600)
    remote_seconds = time.monotonic() - started
    side.wait(60)
    messages = stream_messages(server.url)
    central_rss = peak_rss_mib(consumer.pid)
    stop(consumer)

    # Two sidecars, half the lines each, into a second central (its own durable, from the
    # start of a fresh stream: the first run's messages are purged by a new server store).
    halves = make_lines(root / "halves", 2, lines)
    two_out = root / "two.json"
    fresh(server)
    consumer = start(central(root, server.url, "two", file_sink(two_out)))
    time.sleep(1.0)
    started = time.monotonic()
    sides = [
        start(sidecar(root, server.url, f"s{n}", [path], follow=False))
        for n, path in enumerate(halves)
    ]
    wait_lines(two_out, 2 * (lines // 2), 600)
    two_seconds = time.monotonic() - started
    for proc in sides:
        proc.wait(60)
    two_rss = peak_rss_mib(consumer.pid)
    stop(consumer)
    return [
        ["local: file → aggregator → file", f"{lines / local.seconds:,.0f}", "", "",
         f"{local.rss_mib:.0f}"],
        ["remote: sidecar → NATS → central → file", f"{lines / remote_seconds:,.0f}",
         f"{lines / remote_seconds / (lines / local.seconds):.2f}x",
         f"{lines / max(messages, 1):,.0f}", f"{central_rss:.0f}"],
        ["remote, two sidecars (half each)", f"{lines / two_seconds:,.0f}",
         f"{lines / two_seconds / (lines / local.seconds):.2f}x", "", f"{two_rss:.0f}"],
    ]  # fmt: skip


def fresh(server: Server) -> None:
    """nats-server again on an empty store: each measure starts from an empty stream."""
    server.stop()
    shutil.rmtree(server.root / "store")
    server.start()


def latency(root: Path, server: Server, seconds: float, rate: int) -> list[str]:
    fresh(server)
    logs = root / "live.log"
    logs.write_text("")
    consumer = start(
        central(root, server.url, "live", '[sinks.out]\ntype = "stdout"\nformat = "raw"\n'),
        stdout=subprocess.PIPE,
    )
    side = start(sidecar(root, server.url, "live", [logs], follow=True))
    delays: list[float] = []
    warm = threading.Event()

    def collect() -> None:
        assert consumer.stdout is not None
        for line in consumer.stdout:
            now = time.monotonic_ns()
            text = line.strip()
            if text == b"warmup":
                warm.set()
            elif text.isdigit():
                delays.append((now - int(text)) / 1e6)

    threading.Thread(target=collect, daemon=True).start()
    with logs.open("a") as file:
        while not warm.is_set():  # until the pipeline is followed end to end
            file.write("warmup\n")
            file.flush()
            warm.wait(0.2)
        interval = 1 / rate
        next_at = time.monotonic()
        end = next_at + seconds
        while time.monotonic() < end:
            file.write(f"{time.monotonic_ns()}\n")
            file.flush()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    expected = int(seconds * rate)
    deadline = time.monotonic() + 30
    while len(delays) < expected * 0.999 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop(side)
    stop(consumer)
    ordered = sorted(delays)

    def pct(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return [f"{len(delays)}/{expected}", f"{pct(0.5):.1f}", f"{pct(0.99):.1f}",
            f"{ordered[-1]:.1f}"]  # fmt: skip


def outage(root: Path, server: Server, rate: int) -> list[str]:
    fresh(server)
    logs = root / "outage.log"
    logs.write_text("")
    out = root / "outage.json"
    consumer = start(central(root, server.url, "outage", file_sink(out)))
    side = start(sidecar(root, server.url, "out", [logs], follow=True))
    time.sleep(2.0)  # both connected; the sidecar follows the file from its end
    written = 0
    samples: list[float] = []
    before = rss_mib(side.pid)
    with logs.open("a") as file:
        started = time.monotonic()
        stopped = restarted = False
        next_at = started
        while time.monotonic() - started < 20:
            now = time.monotonic() - started
            if now >= 5 and not stopped:
                server.stop(signal.SIGKILL)
                stopped = True
            if now >= 15 and not restarted:
                server.start()
                restarted = True
            file.write(f"2026-01-01T00:00:00Z outage {written}\n")
            file.flush()
            written += 1
            if written % 100 == 0:
                samples.append(rss_mib(side.pid))
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    wait_lines(out, written, 120)
    time.sleep(2.0)  # anything sent twice would come by now
    got = count_lines(out)
    numbers = [line.rsplit(b" ", 1)[-1].rstrip(b'"}') for line in out.read_bytes().splitlines()]
    if sorted(numbers, key=int) != [str(n).encode() for n in range(written)]:
        raise SystemExit("the central did not get every line exactly once")
    peak = max(samples)
    stop(side)
    stop(consumer)
    return [f"{written}", f"{got}", f"{before:.0f}", f"{peak:.0f}", f"{peak - before:+.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--parts", default="throughput,latency,outage", help="which parts to run (comma list)"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="aggregator-remote-") as tmp:
        root = Path(tmp)
        server = Server(root / "nats")
        (root / "nats").mkdir()
        server.start()
        try:
            if "throughput" in parts:
                rows = throughput(root, server, args.lines)
                print(f"\n{args.lines:,} lines of 120 bytes, read through (follow = false)\n")
                print(table(rows, ["pipeline", "lines/s", "vs local", "records/message",
                                   "central peak RSS MiB"]))  # fmt: skip
            if "latency" in parts:
                live = latency(root, server, args.seconds, 1000)
                print(f"\nwrite → central stdout, 1000 lines/s for {args.seconds:g} s\n")
                print(table([live], ["received", "p50 ms", "p99 ms", "max ms"]))
            if "outage" in parts:
                lost = outage(root, server, 1000)
                print("\nnats-server SIGKILLed for 10 s while a sidecar follows 1000 lines/s\n")
                print(table([lost], ["written", "at the central", "sidecar RSS before MiB",
                                     "peak MiB", "growth MiB"]))  # fmt: skip
        finally:
            server.stop(signal.SIGKILL)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
