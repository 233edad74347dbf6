"""Soak: a long hard run with faults, checking that no file line is lost (issue #16).

    python3 bench/soak.py --minutes 12          # writes bench/soak.png and prints the figures

`aggregator run` follows `logs/*.log` (files rotating every 2-5 s, keep 2, a writer that goes
on for a moment in the renamed file), listens on TCP (connections coming and going) and serves
WebSocket subscribers (coming and going; a third of them never read), and writes the merged
stream as JSON to a file sink. Every `--kill-every` seconds it is SIGKILLed and started again.
At the end the writers stop, the program is let catch up and stopped with SIGTERM, and the
output is checked:

- file lines lost: every line written to a file must be in the output (must be 0);
- file duplicates: lines written more than once, which a SIGKILL may cause for what came after
  the last checkpoint; the bound printed is what the files got in the two checkpoint
  intervals before each kill;
- TCP lines: lost only where the program was SIGKILLed with them in flight (sent within a
  second before the kill, or into the dead connection before the sender heard of it); any
  other loss is reported as such;
- RSS and open descriptors of the aggregator's process, sampled every second, per lifetime.

Needs matplotlib (``pip install -e '.[bench]'``) for the plot.
"""

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

HERE = Path(__file__).resolve().parent
AGGREGATOR = [sys.executable, "-m", "aggregator"]
CHECKPOINT_INTERVAL = 1.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


@dataclass
class Ledger:
    """What was written where and when, to check the output against."""

    file_lines: dict[str, float] = field(default_factory=dict)
    """line id → when written (seconds since the start)"""
    tcp_lines: dict[str, float] = field(default_factory=dict)
    kills: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    samples: list[tuple[float, float, int, int]] = field(default_factory=list)
    """(seconds since start, RSS MiB, open descriptors, lifetime)"""
    subscribers: Counter[str] = field(default_factory=Counter)
    rotations: int = 0
    connections: int = 0


class RotatingWriter:
    """Appends timestamped lines to one file and rotates it (rename, keep 2) now and then."""

    def __init__(
        self, directory: Path, index: int, ledger: Ledger, rng: random.Random, started: float
    ) -> None:
        self.started = started
        self.path = directory / f"app-{index}.log"
        self.index = index
        self.ledger = ledger
        self.rng = rng
        self.generation = 0
        self.number = 0
        self.file = self.path.open("a", buffering=1)

    def write(self, count: int) -> None:
        now = time.time()
        for _ in range(count):
            ident = f"file{self.index}-g{self.generation}-n{self.number}"
            self.file.write(f"{stamp(now)} INFO {ident} {'x' * 60}\n")
            self.ledger.file_lines[ident] = time.monotonic() - self.started
            self.number += 1

    def rotate(self) -> None:
        older, old = self.path.with_suffix(".log.2"), self.path.with_suffix(".log.1")
        if old.exists():
            os.replace(old, older)  # what was .2 is gone: it must have been read by now
        os.replace(self.path, old)
        self.write(self.rng.randint(0, 3))  # the writer goes on a moment in the renamed file
        self.file.close()
        self.generation += 1
        self.file = self.path.open("a", buffering=1)
        self.ledger.rotations += 1


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.ledger = Ledger()
        self.rng = random.Random(args.seed)
        self.tcp_port, self.ws_port = free_port(), free_port()
        self.out = work / "out.jsonl"
        self.config = work / "soak.toml"
        self.proc: asyncio.subprocess.Process | None = None
        self.started = time.monotonic()
        self.stopping = False
        self.lifetime = 0

    def write_config(self) -> None:
        logs = self.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'[aggregator]\nstate_dir = "{self.work / "state"}"\n'
            f'checkpoint_interval = "{CHECKPOINT_INTERVAL:g}s"\n'
            f'[sources.files]\ntype = "file"\npaths = ["{logs}/*.log"]\n'
            'start_at = "beginning"\nrotate_wait = "1s"\n'
            f'[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:{self.tcp_port}"\n'
            f'[sinks.out]\ntype = "file"\npath = "{self.out}"\nformat = "json"\n'
            f'[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:{self.ws_port}"\n'
            'replay = 100\nsubscriber_buffer = "256KiB"\n'
        )

    async def start(self) -> None:
        self.lifetime += 1
        self.proc = await asyncio.create_subprocess_exec(
            *AGGREGATOR, "run", "-c", str(self.config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=(self.work / f"stderr-{self.lifetime}.log").open("wb"),
        )  # fmt: skip
        self.ledger.starts.append(time.monotonic() - self.started)

    async def killer(self, until: float) -> None:
        while True:
            await asyncio.sleep(min(self.args.kill_every, max(0.0, until - time.monotonic())))
            if time.monotonic() >= until:
                return
            assert self.proc is not None
            self.ledger.kills.append(time.monotonic() - self.started)
            self.proc.kill()
            await self.proc.wait()
            await asyncio.sleep(0.5)
            await self.start()

    async def files(self, until: float) -> None:
        writers = [
            RotatingWriter(self.work / "logs", index, self.ledger, self.rng, self.started)
            for index in range(self.args.files)
        ]
        due = [time.monotonic() + self.rng.uniform(2, 5) for _ in writers]
        per_tick = max(1, self.args.rate // 20)
        while time.monotonic() < until:
            for index, writer in enumerate(writers):
                writer.write(per_tick)
                if time.monotonic() >= due[index]:
                    writer.rotate()
                    due[index] = time.monotonic() + self.rng.uniform(2, 5)
            await asyncio.sleep(0.05)
        for writer in writers:
            writer.file.close()

    async def tcp_client(self, index: int, until: float) -> None:
        number = 0
        while time.monotonic() < until:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.tcp_port)
            except OSError:
                await asyncio.sleep(0.2)  # down (killed, restarting)
                continue
            self.ledger.connections += 1
            try:
                for _ in range(self.rng.randint(10, 200)):
                    now = time.time()
                    ident = f"tcp{index}-n{number}"
                    number += 1
                    writer.write(f"{stamp(now)} INFO {ident}\n".encode())
                    await writer.drain()
                    self.ledger.tcp_lines[ident] = time.monotonic() - self.started
                    await asyncio.sleep(0.01)
                writer.close()
                await writer.wait_closed()
            except OSError:
                pass  # killed under it
            await asyncio.sleep(self.rng.uniform(0, 1))

    async def subscriber(self, until: float) -> None:
        while time.monotonic() < until:
            reads = self.rng.random() > 1 / 3
            try:
                async with asyncio.timeout(self.rng.uniform(1, 6)):
                    async with connect(f"ws://127.0.0.1:{self.ws_port}/ws?replay=50") as ws:
                        self.ledger.subscribers["reading" if reads else "never reading"] += 1
                        if reads:
                            async for _ in ws:
                                pass
                        else:
                            await asyncio.Future()  # holds the socket, reads nothing
            except (TimeoutError, OSError, WebSocketException):
                pass
            await asyncio.sleep(self.rng.uniform(0, 0.5))

    async def sampler(self, until: float) -> None:
        while time.monotonic() < until or not self.stopping:
            await asyncio.sleep(1.0)
            proc = self.proc
            if proc is None or proc.returncode is not None:
                continue
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                rss = next(ln for ln in status.splitlines() if ln.startswith("VmRSS:"))
                rss_kib = int(rss.split()[1])
                fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            except (OSError, StopIteration):
                continue
            elapsed = time.monotonic() - self.started
            self.ledger.samples.append((elapsed, rss_kib / 1024, fds, self.lifetime))

    async def run(self) -> None:
        self.write_config()
        await self.start()
        until = time.monotonic() + self.args.minutes * 60
        sampler = asyncio.create_task(self.sampler(until))
        tasks = [self.killer(until)] if self.args.kill_every > 0 else []
        tasks.append(self.files(until))
        tasks += [self.tcp_client(index, until) for index in range(self.args.connections)]
        tasks += [self.subscriber(until) for _ in range(self.args.subscribers)]
        await asyncio.gather(*tasks)
        await self.catch_up()
        self.stopping = True
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = await self.proc.wait()
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        print(f"last run ended with exit code {code}")

    async def catch_up(self) -> None:
        """Until every file line is in the output, or it has not grown for 20 s."""
        size, still_since = -1, time.monotonic()
        while time.monotonic() - still_since < 20:
            await asyncio.sleep(1)
            now = self.out.stat().st_size if self.out.exists() else 0
            if now != size:
                size, still_since = now, time.monotonic()
            elif not self.missing_file_lines():
                return

    def delivered(self) -> Counter[str]:
        seen: Counter[str] = Counter()
        with self.out.open("rb") as file:
            for raw in file:
                line = orjson.loads(raw)["line"]
                parts = line.split(" ", 3)
                if len(parts) >= 3:
                    seen[parts[2]] += 1
        return seen

    def missing_file_lines(self) -> int:
        seen = self.delivered()
        return sum(1 for ident in self.ledger.file_lines if ident not in seen)

    def report(self) -> dict[str, object]:
        ledger, seen = self.ledger, self.delivered()
        files_lost = [ident for ident in ledger.file_lines if ident not in seen]
        file_dups = sum(seen[ident] - 1 for ident in ledger.file_lines if seen[ident] > 1)
        window = 2 * CHECKPOINT_INTERVAL
        bound = sum(
            1
            for when in ledger.file_lines.values()
            if any(kill - window <= when <= kill for kill in ledger.kills)
        )
        tcp_lost = [ident for ident in ledger.tcp_lines if ident not in seen]
        # In flight: sent within a second before a kill, or after it into the dead connection
        # before the sender heard of it (until the restart).
        restarts = ledger.starts[1:]
        in_flight = [
            ident
            for ident in tcp_lost
            if any(
                kill - 1.0 <= ledger.tcp_lines[ident] <= restart + 0.5
                for kill, restart in zip(ledger.kills, restarts, strict=False)
            )
        ]
        tcp_dups = sum(seen[ident] - 1 for ident in ledger.tcp_lines if seen[ident] > 1)
        samples = ledger.samples
        lifetimes = sorted({sample[3] for sample in samples})
        per_life = []
        for life in lifetimes:
            rows = [sample for sample in samples if sample[3] == life]
            per_life.append((life, max(r[1] for r in rows), max(r[2] for r in rows), len(rows)))
        return {
            "minutes": self.args.minutes,
            "kills": len(ledger.kills),
            "rotations": ledger.rotations,
            "file_lines": len(ledger.file_lines),
            "file_lines_lost": len(files_lost),
            "file_lost_examples": files_lost[:5],
            "file_duplicates": file_dups,
            "file_duplicate_bound": bound,
            "tcp_connections": ledger.connections,
            "tcp_lines": len(ledger.tcp_lines),
            "tcp_lost_in_flight_at_a_kill": len(in_flight),
            "tcp_lost_otherwise": len(tcp_lost) - len(in_flight),
            "tcp_duplicates": tcp_dups,
            "subscribers": dict(ledger.subscribers),
            "per_lifetime_max_rss_mib_fds_samples": per_life,
        }

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        samples = self.ledger.samples
        minutes = [sample[0] / 60 for sample in samples]
        figure, (rss, fds) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
        rss.plot(minutes, [sample[1] for sample in samples], ".", markersize=3)
        rss.set_ylabel("RSS (MiB)")
        rss.set_ylim(bottom=0)
        fds.plot(minutes, [sample[2] for sample in samples], ".", markersize=3, color="C1")
        fds.set_ylabel("open descriptors")
        fds.set_ylim(bottom=0)
        fds.set_xlabel("minutes")
        for axis in (rss, fds):
            for kill in self.ledger.kills:
                axis.axvline(kill / 60, color="red", alpha=0.3, linewidth=1)
            axis.grid(alpha=0.3)
        kills = (
            f"SIGKILL every {self.args.kill_every:g} s (red lines)"
            if self.args.kill_every > 0
            else "never killed"
        )
        figure.suptitle(
            f"aggregator soak: {self.args.minutes:g} min, {kills}, files rotating every 2-5 s,"
            " TCP and WebSocket clients coming and going",
            fontsize=9,
        )
        figure.tight_layout()
        figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--kill-every", type=float, default=60.0, help="seconds (default 60; 0: never)"
    )
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--rate", type=int, default=200, help="lines/s per file (default 200)")
    parser.add_argument("--connections", type=int, default=3, help="TCP senders at a time")
    parser.add_argument("--subscribers", type=int, default=6, help="WebSocket clients at a time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plot", type=Path, default=HERE / "soak.png")
    parser.add_argument("--samples", type=Path, help="also write the samples here (CSV)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aggregator-soak-"))
    soak = Soak(args, work)
    asyncio.run(soak.run())
    report = soak.report()
    for key, value in report.items():
        print(f"{key}: {value}")
    soak.plot(args.plot)
    if args.samples is not None:
        rows = ["seconds,rss_mib,fds,lifetime"]
        rows += [f"{t:.1f},{rss:.2f},{fds},{life}" for t, rss, fds, life in soak.ledger.samples]
        args.samples.write_text("\n".join(rows) + "\n")
    print(f"plot: {args.plot}")
    if args.keep:
        print(f"work directory: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    if report["file_lines_lost"] or report["tcp_lost_otherwise"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
