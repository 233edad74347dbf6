"""Peak RSS of the aggregator under hostile floods (issue #24), this tree against another.

    python3 bench/floods.py                      # this tree only
    python3 bench/floods.py --before DIR         # and the tree checked out at DIR (e.g. main)

Each flood runs the aggregator as a subprocess and reports its peak RSS (VmHWM) in MiB, and how
much it grew from just before the flood:

- control: a raw-socket WebSocket client sends 300,000 one-byte frames (each answered with an
  error) and never reads.
- udp: 60 kB datagrams, paced so the kernel does not drop them, for 5,000 datagrams (300 MB),
  while the only record sink (stdout, a pipe nobody reads) is blocked.
- replay: 400 lines of 1 MiB through a tcp source, websocket sink with replay = 400, no
  subscriber.
- frame: ``aggregator connect`` to a server that sends one frame of 200 MiB.

Peak RSS is VmHWM while it runs, or the kernel's ru_maxrss once reaped (a run that crashed).

The tree ``--before`` names is run with ``python -S`` and PYTHONPATH (the venv's editable
install would otherwise import this tree).
"""

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from bench.common import table  # noqa: E402
from tests.helpers.rawws import handshake, masked_frame  # noqa: E402


def vm(pid: int, key: str) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0  # it has ended (a crash, before): its peak comes from wait4
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Aggregator:
    """``aggregator ARGS`` from a tree (None: this one), stderr collected in a file."""

    def __init__(self, tree: Path | None, args: list[str], workdir: Path, stdout: int) -> None:
        env = dict(os.environ)
        command = [sys.executable]
        if tree is not None:
            site = sysconfig.get_paths()["purelib"]
            env["PYTHONPATH"] = f"{tree}:{site}"
            command.append("-S")
        self.err = workdir / "stderr.log"
        self.proc = subprocess.Popen(
            [*command, "-m", "aggregator", *args],
            cwd=workdir,
            env=env,
            stdout=stdout,
            stderr=self.err.open("wb"),
        )
        self.final_peak = 0.0

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.err.read_text(errors="replace")
            for line in log.splitlines():
                if text in line:
                    return line
            if not self.alive():
                raise SystemExit(f"the aggregator ended: {log[-2000:]}")
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {text!r}")

    def address(self, text: str) -> tuple[str, int]:
        host, port = self.wait_for(text).rsplit("//", 1)[1].rstrip("/").split(":")
        return host, int(port)

    def alive(self) -> bool:
        """Whether it still runs; once it has ended, its peak RSS is taken as it is reaped."""
        if self.proc.returncode is not None:
            return False
        pid, _, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.proc.returncode = -1
        self.final_peak = usage.ru_maxrss / 1024
        return False

    def peak(self) -> float:
        return max(vm(self.proc.pid, "VmHWM"), self.final_peak)

    def stop(self) -> None:
        """Take its peak (VmHWM) and kill it. Only a run that ended by itself (a crash) is
        measured by ru_maxrss, which also counts what this process held when it forked."""
        if self.proc.returncode is None:
            self.final_peak = vm(self.proc.pid, "VmHWM")
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            os.wait4(self.proc.pid, 0)
            self.proc.returncode = -1


def config(workdir: Path, text: str) -> list[str]:
    path = workdir / "config.toml"
    path.write_text(
        f'[aggregator]\nstate_dir = "{workdir / "state"}"\norder_window = "0s"\n' + text
    )
    return ["run", "-c", str(path)]


def control(tree: Path | None, workdir: Path) -> tuple[float, float]:
    text = '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\n'
    text += '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    agg = Aggregator(tree, config(workdir, text), workdir, subprocess.DEVNULL)
    try:
        address = agg.address("serving on http://")
        before = agg.peak()
        sock, _ = handshake(address)
        chunk = masked_frame(b"x") * 1000
        try:
            for _ in range(300):
                sock.sendall(chunk)
        except OSError:
            pass
        settle(agg)
        sock.close()
    finally:
        agg.stop()
    return agg.peak(), agg.peak() - before


def settle(agg: Aggregator, quiet: float = 3.0, limit: float = 60.0) -> None:
    """Wait until the peak has not moved for ``quiet`` seconds (the flood is digested)."""
    start = last_change = time.monotonic()
    peak = agg.peak()
    while time.monotonic() - last_change < quiet and time.monotonic() - start < limit:
        time.sleep(0.2)
        if not agg.alive():
            return
        now = agg.peak()
        if now != peak:
            peak, last_change = now, time.monotonic()


def udp(tree: Path | None, workdir: Path) -> tuple[float, float]:
    text = '[sources.u]\ntype = "udp"\nlisten = "127.0.0.1:0"\nmax_line_bytes = "64KiB"\n'
    text += '[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
    agg = Aggregator(tree, config(workdir, text), workdir, subprocess.PIPE)  # never read
    try:
        address = agg.address("listening on udp://")
        before = agg.peak()
        payload = b"x" * 60_000
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for sent in range(5000):
                sender.sendto(payload, address)
                if sent % 3 == 2:
                    time.sleep(0.001)
        settle(agg)
    finally:
        agg.stop()
    return agg.peak(), agg.peak() - before


def replay(tree: Path | None, workdir: Path) -> tuple[float, float]:
    text = '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "raw"\n'
    text += '[sinks.out]\ntype = "file"\npath = "out.log"\nformat = "raw"\nfsync = "never"\n'
    text += '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\nreplay = 400\n'
    agg = Aggregator(tree, config(workdir, text), workdir, subprocess.DEVNULL)
    try:
        address = agg.address("listening on tcp://")
        before = agg.peak()
        line = b"z" * ((1 << 20) - 100) + b"\n"
        with socket.create_connection(address) as sock:
            for _ in range(400):
                sock.sendall(line)
        settle(agg)
    finally:
        agg.stop()
    return agg.peak(), agg.peak() - before


def frame(tree: Path | None, workdir: Path) -> tuple[float, float]:
    """``connect`` to a server (a thread of this process) that sends one frame of 200 MiB."""
    import threading

    from websockets.sync.server import serve

    def handle(connection: object) -> None:
        connection.send(b'{"hello":{"run":"r","seq":0}}', text=True)  # type: ignore[attr-defined]
        # Made only now: a child forked while this process held it would count it as its own
        # (ru_maxrss keeps the RSS from before exec).
        big = b" " * (200 << 20)
        with contextlib.suppress(Exception):  # the client cut it short
            connection.send(big, text=True)  # type: ignore[attr-defined]

    with serve(handle, "127.0.0.1", 0, max_size=None, compression=None) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        agg = Aggregator(
            tree, ["connect", f"ws://127.0.0.1:{port}/ws"], workdir, subprocess.DEVNULL
        )
        try:
            agg.wait_for("connected")
            before = agg.peak()
            settle(agg, quiet=4.0)
        finally:
            agg.stop()
            server.shutdown()
    return agg.peak(), agg.peak() - before


FLOODS: dict[str, Callable[[Path | None, Path], tuple[float, float]]] = {
    "control frames (300k, never read)": control,
    "UDP 60 kB x 5000, stdout blocked": udp,
    "replay ring, 400 records of 1 MiB": replay,
    "connect, one 200 MiB frame": frame,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another tree to measure too (e.g. main)")
    parser.add_argument("--only", help="run the floods whose name contains this")
    args = parser.parse_args()
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.before is not None:
        trees.insert(0, ("before", args.before.resolve()))
    rows = []
    for name, flood in FLOODS.items():
        if args.only and args.only not in name:
            continue
        row = [name]
        for _, tree in trees:
            with tempfile.TemporaryDirectory() as workdir:
                peak, grown = flood(tree, Path(workdir))
            row.append(f"{peak:.0f} (+{grown:.0f})")
        rows.append(row)
        print(" | ".join(row), file=sys.stderr, flush=True)
    print(table(rows, ["flood", *(f"{label}: peak RSS MiB (+growth)" for label, _ in trees)]))


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
