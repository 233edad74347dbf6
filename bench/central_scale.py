"""How far one central goes (issue #25): many simulated sidecars → NATS JetStream → centrals.

    python3 bench/central_scale.py [--nodes 10,100,500,1000] [--rate 100000] [--seconds 10]
                                   [--window 0.25] [--centrals 1] [--core-only]
                                   [--python NAME=PYTHON ...] [--rounds N] [--lanes 10,100]

For each node count: its own nats-server (JetStream, file store in a temporary directory), a
central (`aggregator run`: nats source → JSON file), and a publisher process that plays
NODES x 2 sidecars: every `--interval` each (node, source) sends one message of the records
due at the total `--rate`, made by `encode_message` (the sink's own encoder) with ts = the
wall clock when it was made. Published with core NATS (no wait for each ack), so that one
Python process can play a thousand sidecars. The publisher starts once every central's
consumer exists: before, a central's start-up counted as merge delay and what was published
meanwhile was its backlog. Reported per node count: records/s written by the central, merge
delay (a record's ts → the central's file, as read by this process every 10 ms) p50/p99, the
central's peak RSS, CPU (its user + system seconds from the publisher's start to its last
record: start-up is not counted) and the seconds it was ready to run but waited for a core
(/proc/PID/schedstat: what a busy box takes from it), the cores it used meanwhile (CPU / wall
time), how far the publisher fell behind its schedule, with its CPU, and the central's CPU per
record: what grows with the rate.

`--centrals K` splits the nodes into K groups, each with its own subject prefix (`logs.gN`),
stream and central: the sharding docs/central-scale.md describes.

Then the ordering core alone, in a process of each python: µs per record as the lanes grow
(the same open source, window and chunk sizes as at the central), to see how its cost grows
with lanes. ``--python before=… --python after=…``: the centrals (and the core) run under each
build in turn, ``--rounds`` times alternated; a table of medians follows the runs.

Everything shares this machine's cores: the publisher, nats-server, the central(s), this
reader. Figures from a busy box are lower bounds of what one central does.
"""

import argparse
import asyncio
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from common import AGGREGATOR, table

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
SOURCES = ("app", "db")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port, log = free_port(), root / "server.log"
    log.write_bytes(b"")
    proc = subprocess.Popen(
        [NATS_SERVER, "-js", "-sd", str(root / "store"), "-a", "127.0.0.1", "-p", str(port),
         "-l", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while "Server is ready" not in log.read_text():
        if time.monotonic() > deadline:
            raise SystemExit("nats-server did not start")
        time.sleep(0.02)
    return proc, f"nats://127.0.0.1:{port}"


def central_config(root: Path, url: str, group: int, window: float, out: Path) -> Path:
    config = root / f"central-{group}.toml"
    config.write_text(f"""
[aggregator]
state_dir = "{root / f"state-{group}"}"
order_window = "{int(window * 1000)}ms"
[sources.bus]
type = "nats"
url = "{url}"
subject = "logs.g{group}"
stream = "LOGS_G{group}"
durable = "central{group}"
batch = 256
max_ack_pending = 100000
[sinks.out]
type = "file"
path = "{out}"
format = "json"
fsync = "never"
""")  # fmt: skip
    return config


def importable() -> None:
    """Import ``aggregator`` as this python has it installed (a compiled build), else from
    this checkout."""
    try:
        import aggregator  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# --- the publisher (a process of its own: `central_scale.py --publish JSON`) -----------------


async def publish(spec: dict[str, object]) -> None:
    """Play the sidecars: each (node, source) a message every ``interval``, spread evenly."""
    import nats
    from nats.js.api import StreamConfig

    importable()
    from aggregator.jetstream.messages import encode_message, subject_for
    from aggregator.record.record import Record

    url, nodes, groups = str(spec["url"]), int(spec["nodes"]), int(spec["groups"])  # type: ignore[call-overload]
    rate, seconds, interval = float(spec["rate"]), float(spec["seconds"]), float(spec["interval"])  # type: ignore[arg-type]
    client = await nats.connect(url, pending_size=64 << 20)
    js = client.jetstream()
    for group in range(groups):
        await js.add_stream(StreamConfig(name=f"LOGS_G{group}", subjects=[f"logs.g{group}.>"]))
    lanes = [(f"node-{n:04d}", source) for n in range(nodes) for source in SOURCES]
    subjects = [subject_for(f"logs.g{n % groups}", f"node-{n:04d}", s) for n in range(nodes)
                for s in SOURCES]  # fmt: skip
    per_message = rate * interval / len(lanes)  # records each message carries, on average
    owed = [0.0] * len(lanes)
    seq = [0] * len(lanes)
    tick = 0.01
    slots = max(1, round(interval / tick))
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go": the centrals consume
    start = time.monotonic()
    step = 0
    sent = 0
    behind = 0.0  # the most the publisher fell behind its schedule (it could not keep up)
    while time.monotonic() - start < seconds:
        behind = max(behind, time.monotonic() - (start + step * tick))
        for index in range(step % slots, len(lanes), slots):
            owed[index] += per_message
            count = int(owed[index])
            if not count:
                continue
            owed[index] -= count
            node, source = lanes[index]
            now = time.time_ns() // 1000
            records = []
            for _ in range(count):
                seq[index] += 1
                line = f"{node} {source} {seq[index]} some text of a line"
                records.append(Record(now, source, f"/var/log/{source}.log", line))
            await client.publish(subjects[index], encode_message(node, source, records, now))
            sent += count
        step += 1
        await asyncio.sleep(max(0.0, start + step * tick - time.monotonic()))
    await client.flush()
    await client.close()
    done = {"sent": sent, "seconds": time.monotonic() - start, "behind": behind,
            "cpu": time.process_time()}  # fmt: skip
    print(json.dumps(done), flush=True)


# --- the measuring side ------------------------------------------------------------------------


class Reader(threading.Thread):
    """Follows a central's JSON file: counts records and samples the merge delay of each."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.count = 0
        self.delays: list[float] = []
        self.first = self.last = 0.0
        self.stop = threading.Event()
        self.sample = 10  # every tenth record's delay

    def run(self) -> None:
        import orjson

        while not self.path.exists() and not self.stop.is_set():
            time.sleep(0.01)
        with self.path.open("rb") as file:
            rest = b""
            while not self.stop.is_set():
                data = file.read(1 << 20)
                if not data:
                    time.sleep(0.01)
                    continue
                now = time.time()
                lines = (rest + data).split(b"\n")
                rest = lines.pop()
                for line in lines[:: self.sample]:  # a sample: this reader shares the cores
                    written = datetime.fromisoformat(orjson.loads(line)["ts"]).timestamp()
                    self.delays.append(now - written)
                if not self.first:
                    self.first = now
                self.last = now
                self.count += len(lines)


async def consumers_made(url: str, groups: int) -> None:
    """Until every central's durable consumer exists."""
    import nats
    from nats.js.errors import NotFoundError

    client = await nats.connect(url)
    js = client.jetstream()
    deadline = time.monotonic() + 60
    for group in range(groups):
        while True:
            try:
                await js.consumer_info(f"LOGS_G{group}", f"central{group}")
                break
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"central {group} did not start consuming") from None
                await asyncio.sleep(0.05)
    await client.close()


def proc_stats(pid: int) -> tuple[float, float, float]:
    """(peak RSS MiB, CPU seconds, seconds its main thread was ready to run but waited for a
    core) of a running process: the last is what a busy box takes from it."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    waited = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    return peak / 1024, ticks / 100, waited


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def run_nodes(args: argparse.Namespace, nodes: int, python: str = sys.executable) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="aggregator-scale-") as tmp:
        root = Path(tmp)
        server, url = start_server(root)
        centrals, readers = [], []
        spy: subprocess.Popen[bytes] | None = None
        try:
            spec = {"url": url, "nodes": nodes, "groups": args.centrals, "rate": args.rate,
                    "seconds": args.seconds, "interval": args.interval}  # fmt: skip
            publisher = subprocess.Popen(
                [sys.executable, __file__, "--publish", json.dumps(spec)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert publisher.stdin is not None and publisher.stdout is not None
            json.loads(publisher.stdout.readline())  # the streams exist
            for group in range(args.centrals):
                out = root / f"out-{group}.json"
                config = central_config(root, url, group, args.window, out)
                profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
                centrals.append(subprocess.Popen(
                    [python, *profile, *AGGREGATOR[1:], "run", "-c", str(config)], cwd=root,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
                readers.append(Reader(out))
                readers[-1].start()
            if args.py_spy:  # sample the first central's stacks (collapsed, for grep)
                spy = subprocess.Popen(
                    [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                     "record", "--pid", str(centrals[0].pid), "--format", "raw", "--rate", "200",
                     "--output", args.py_spy, "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            # Publish once every central consumes: what a central finds at its start is a
            # backlog (merged as catch-up), and its start-up would count as merge delay.
            asyncio.run(consumers_made(url, args.centrals))
            before = [proc_stats(c.pid) for c in centrals]  # its start-up: not counted
            went = time.time()  # as the readers' times
            publisher.stdin.write("go\n")
            publisher.stdin.flush()
            published = json.loads(publisher.stdout.readline())
            sent = published["sent"]
            publisher.wait()
            deadline = time.monotonic() + args.seconds + 30
            while sum(r.count for r in readers) < sent and time.monotonic() < deadline:
                time.sleep(0.05)
            after = [proc_stats(c.pid) for c in centrals]
            stats = [(b[0], b[1] - a[1], b[2] - a[2]) for a, b in zip(before, after, strict=True)]
            took = max(r.last for r in readers) - went
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            for proc in centrals:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
            server.send_signal(signal.SIGKILL)
            server.wait()
            for reader in readers:
                reader.stop.set()
    got = sum(r.count for r in readers)
    span = max(r.last for r in readers) - min(r.first for r in readers)
    delays = [d for r in readers for d in r.delays]
    shared = f", {args.centrals} centrals" if args.centrals > 1 else ""
    return [
        f"{nodes:,} x {len(SOURCES)}{shared}",
        f"{got:,} of {sent:,}",
        f"{got / span:,.0f}" if span > 0 else "-",
        f"{percentile(delays, 0.5) * 1000:,.0f}",
        f"{percentile(delays, 0.99) * 1000:,.0f}",
        " + ".join(f"{rss:.0f}" for rss, _, _ in stats),
        " + ".join(f"{cpu:.1f} / {waited:.1f}" for _, cpu, waited in stats),
        " + ".join(f"{cpu / took:.2f}" for _, cpu, _ in stats),
        f"{published['behind'] * 1000:,.0f} / {published['cpu']:.1f}",
        f"{sum(cpu for _, cpu, _ in stats) / max(got, 1) * 1e6:.1f}",
    ]


def core_cost(lanes: int, rate: float = 200_000, records: int = 200_000) -> float:
    """µs per record through the ordering core with ``lanes`` live lanes of an open source:
    chunks of a few records pushed round-robin, popped after each, the window expiring."""
    importable()
    from aggregator.flow.chunk import Announce, Chunk
    from aggregator.flow.ordering import OrderingCore
    from aggregator.record.record import Record

    core = OrderingCore(window=0.25, idle_timeout=1.0)
    core.add_source("bus")
    core.announce("bus", Announce([], live=True, open=True), 0.0)
    per_chunk = 4
    pool = [Record(0, "app", "o", "line") for _ in range(records)]
    now, ts, out = 0.0, 0, 0
    started = time.perf_counter()
    for start in range(0, records, per_chunk):
        lane = (start // per_chunk) % lanes
        ts += 10
        now += per_chunk / rate
        chunk = pool[start : start + per_chunk]
        for record in chunk:
            record.ts = ts
        core.push("bus", Chunk(f"n{lane}", chunk), now)
        out += len(core.pop_ready(now))
    elapsed = time.perf_counter() - started
    return elapsed / records * 1e6


def core_costs(python: str, lanes: list[int], rate: float) -> list[float]:
    """µs per record through the ordering core at each lane count (median of 3), measured by
    ``python`` (its build of the core)."""
    run = subprocess.run(
        [python, __file__, "--core-json", ",".join(map(str, lanes)), "--core-rate", str(rate)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [float(cost) for cost in json.loads(run.stdout)]


def median_rows(rows: list[list[str]]) -> list[list[str]]:
    """One row per (nodes, build): the median of each numeric column over the rounds."""
    groups: dict[tuple[str, str], list[list[str]]] = {}
    for row in rows:
        groups.setdefault((row[0], row[1]), []).append(row)

    def median_of(cells: list[str]) -> str:
        if " + " in cells[0]:  # one figure per central: the median of each
            per_central = zip(*(cell.split(" + ") for cell in cells), strict=True)
            return " + ".join(median_of(list(parts)) for parts in per_central)
        try:
            values = [float(cell.replace(",", "").split(" ")[0]) for cell in cells]
        except ValueError:
            return cells[0]
        if " / " in cells[0]:  # "CPU / waited": the median of each side
            rest = [float(cell.split(" / ")[1]) for cell in cells]
            return f"{statistics.median(values):.1f} / {statistics.median(rest):.1f}"
        decimals = len(cells[0].split(" ")[0].partition(".")[2])
        return f"{statistics.median(values):,.{decimals}f}"

    out = []
    for (nodes, build), group in groups.items():
        columns = list(zip(*group, strict=True))
        out.append([nodes, build, *(median_of(list(column)) for column in columns[2:])])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,100,500,1000")
    parser.add_argument("--rate", type=float, default=100_000, help="records/s, all nodes")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.1, help="s between a lane's messages")
    parser.add_argument("--window", type=float, default=0.25, help="the central's order_window")
    parser.add_argument("--centrals", type=int, default=1)
    parser.add_argument("--core-only", action="store_true")
    parser.add_argument("--lanes", help="the core's lane counts (default: 2 per node)")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help="run the centrals and the core under this python (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternated runs per build")
    parser.add_argument("--profile", help="write the (first) central's cProfile stats here")
    parser.add_argument("--py-spy", help="sample the (first) central with py-spy into this file")
    parser.add_argument("--publish", help=argparse.SUPPRESS)
    parser.add_argument("--core-rate", type=float, default=200_000,
                        help="records/s of the core's injected clock")  # fmt: skip
    parser.add_argument("--core-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        asyncio.run(publish(json.loads(args.publish)))
        return
    if args.core_json:
        lanes = [int(n) for n in args.core_json.split(",")]
        rate = args.core_rate
        print(json.dumps([statistics.median(core_cost(n, rate) for _ in range(3)) for n in lanes]))
        return
    builds = [tuple(spec.split("=", 1)) for spec in args.python] or [("", sys.executable)]
    counts = [int(n) for n in args.nodes.split(",")]
    if not args.core_only:
        rows = []
        for nodes in counts:
            for _ in range(args.rounds):
                for name, python in builds:
                    load = Path("/proc/loadavg").read_text().split()[0]
                    row = run_nodes(args, nodes, python)
                    rows.append([row[0], name, load, *row[1:]])
        print(f"\n{args.rate:,.0f} records/s for {args.seconds:g} s, a message per lane every "
              f"{args.interval:g} s, order_window {args.window:g} s\n")  # fmt: skip
        heads = ["nodes x sources", "build", "load avg", "records at the central", "records/s",
                 "merge delay p50 ms", "p99 ms", "peak RSS MiB", "CPU s / waited for a core s",
                 "cores used", "publisher behind ms / CPU s",
                 "central CPU µs / record"]  # fmt: skip
        print(table(rows, heads))
        if args.rounds > 1:
            print(f"\nmedians of {args.rounds} alternated rounds\n")
            print(table(median_rows(rows), heads))
    lanes = [int(n) for n in args.lanes.split(",")] if args.lanes else [2 * n for n in counts]
    costs = {name: core_costs(python, lanes, args.core_rate) for name, python in builds}
    print(f"\nthe ordering core alone (median of 3), 4 records a chunk, one pop per chunk, "
          f"{args.core_rate:,.0f} records/s: µs per record\n")  # fmt: skip
    rows = [[f"{n:,}", *(f"{costs[name][i]:.2f}" for name, _ in builds)]
            for i, n in enumerate(lanes)]  # fmt: skip
    print(table(rows, ["lanes", *(name or "µs" for name, _ in builds)]))


if __name__ == "__main__":
    main()
