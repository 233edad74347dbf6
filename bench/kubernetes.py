"""Kubernetes container logs and the otlp sink (issue #26).

1. ``aggregator tail --no-follow`` over 8 CRI files (a tenth of the lines split by the runtime
   into a ``P`` and an ``F`` piece) against the same lines as plain files, in the same run,
   alternated; ``--format raw`` (only the times are read) and ``--format json`` (the inner
   codec reads each message). The raw outputs must be the same bytes: the CRI path gives
   the plain lines back, in the same merged order.
2. ``aggregator run`` reading plain files through (``follow = false``) into an otlp sink (gzip)
   whose receiver, a thread of this process, answers 200 at once, against the file sink
   (``format = "json"``) over the same files: lines/s, requests and their size.

    python3 bench/kubernetes.py                  # 1M lines; otlp: 200k lines
    python3 bench/kubernetes.py --lines 200000 --otlp-lines 50000 --repeat 3
    python3 bench/kubernetes.py --only otlp      # one of the two parts (cri or otlp)
    python3 bench/kubernetes.py --only cri --python before=VENV/bin/python --python after=...

``--python`` (repeatable, the CRI part) runs the aggregator with each interpreter (a venv's,
holding another build), the runs interleaved, one of each in turn, each against plain files
read by the same build; with ``-P``, so that each runs its own install.
"""

import argparse
import gzip
import hashlib
import itertools
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import AGGREGATOR, Run, make_lines, median_of, table, timed


def cri_files(plain: list[Path], directory: Path, split_every: int = 10) -> list[Path]:
    """The same lines as a containerd node writes them: each wrapped (the line's own time as
    the runtime's, in nanoseconds), every ``split_every``-th in two pieces, P then F."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, source in enumerate(plain):
        path = directory / f"app-{index}_bench_main-{index:064x}.log"
        with source.open() as lines, path.open("w") as out:
            for number, line in enumerate(lines):
                line = line.rstrip("\n")
                stamp = line[:26] + "000Z"  # YYYY-MM-DDTHH:MM:SS.ffffff → nanoseconds
                if number % split_every == 0:
                    half = len(line) // 2
                    out.write(f"{stamp} stdout P {line[:half]}\n{stamp} stdout F {line[half:]}\n")
                else:
                    out.write(f"{stamp} stdout F {line}\n")
        paths.append(path)
    return paths


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def read_through(
    plain_dir: Path,
    cri_dir: Path,
    lines: int,
    repeat: int,
    work: Path,
    aggregators: dict[str, list[str]],
) -> None:
    """``cri_dir`` holds the CRI files under kubelet names; read through a symlink to it named
    ``cri``, they are only CRI (no k8s fields from their path); through ``containers``, they
    also get the four k8s fields. Each of ``aggregators`` (name: command) reads each set, one
    run of each in turn."""
    plain_link = work / "cri"
    plain_link.symlink_to(cri_dir)
    kinds = {"plain": plain_dir, "cri": plain_link, "cri + k8s fields": cri_dir}
    rows = []
    for fmt in ("raw", "json"):
        kept = {k: v for k, v in kinds.items() if fmt == "json" or "k8s" not in k}
        chosen = {(name, kind): v for name in aggregators for kind, v in kept.items()}
        runs: dict[tuple[str, str], list[Run]] = {key: [] for key in chosen}
        outputs: dict[tuple[str, str], Path] = {}
        for _ in range(repeat):
            for number, ((name, kind), directory) in enumerate(chosen.items()):
                out = outputs[name, kind] = work / f"out-{number}.{fmt}"
                command = [*aggregators[name], "tail", "--no-follow", "--format", fmt,
                           str(directory / "*.log")]  # fmt: skip
                runs[name, kind].append(timed(command, out))
        count = {key: sum(1 for _ in path.open("rb")) for key, path in outputs.items()}
        assert set(count.values()) == {lines}, count
        for name in aggregators:
            if fmt == "raw":
                same = digest(outputs[name, "plain"]) == digest(outputs[name, "cri"])
                assert same, "the CRI path did not give the plain lines back in the same order"
        for name, kind in chosen:
            plain = median_of(runs[name, "plain"])
            run = median_of(runs[name, kind])
            label = f"{name}: " if len(aggregators) > 1 else ""
            rows.append(
                [
                    f"{label}{kind} --format {fmt}",
                    f"{lines / run.seconds / 1000:,.0f}k",
                    f"{run.seconds:.2f}",
                    f"{run.user_s:.2f}",
                    f"{run.rss_mib:.0f}",
                    f"{plain.seconds / run.seconds:.2f}x",
                ]
            )
    print(table(rows, ["tail --no-follow", "lines/s", "seconds", "CPU user s", "peak RSS MiB",
                       "vs plain"]))  # fmt: skip
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")


class Receiver:
    """An OTLP/HTTP receiver that answers 200 ``{}`` at once and keeps each body's size."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.bodies: list[bytes] = []
        self.arrivals: list[float] = []  # when each request had been read (perf_counter)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrivals.append(time.perf_counter())
                receiver.sizes.append(len(body))
                receiver.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_afresh(config: Path, work: Path) -> Run:
    """``aggregator run -c config``, with no checkpoint of an earlier run to resume from."""
    shutil.rmtree(work / "state", ignore_errors=True)
    return timed([*AGGREGATOR, "run", "-c", str(config)], work / "stdout.txt")


def run_config(work: Path, name: str, files: Path, sink: str) -> Path:
    path = work / f"{name}.toml"
    path.write_text(
        f"""
[aggregator]
state_dir = "{work / "state"}"
[sources.app]
type = "file"
paths = ["{files}/*.log"]
start_at = "beginning"
follow = false
{sink}
"""
    )
    return path


def otlp_against_file(files: Path, lines: int, repeat: int, work: Path) -> None:
    """The file sink, the otlp sink with its default batches (1,000 records) and with batches
    of 5,000 records (1 MiB of JSON closes them first), alternated."""
    receiver = Receiver()
    out = work / "sink.json"
    endpoint = f'endpoint = "http://127.0.0.1:{receiver.port}"'
    configs = {
        "file (json)": run_config(
            work, "file", files, f'[sinks.file]\ntype = "file"\npath = "{out}"\nformat = "json"'
        ),
        "otlp (gzip)": run_config(
            work, "otlp", files, f'[sinks.otlp]\ntype = "otlp"\n{endpoint}'
        ),
        "otlp, max_records = 5000": run_config(
            work, "otlp5k", files,
            f'[sinks.otlp]\ntype = "otlp"\n{endpoint}\nbatch = {{ max_records = 5000 }}',
        ),
    }  # fmt: skip
    runs: dict[str, list[Run]] = {kind: [] for kind in configs}
    steady: dict[str, list[float]] = {kind: [] for kind in configs}  # first to last request
    gaps: dict[str, list[float]] = {kind: [] for kind in configs}  # between two requests
    sent: dict[str, tuple[list[int], list[bytes]]] = {}
    try:
        for _ in range(repeat):
            for kind, config in configs.items():
                receiver.sizes.clear()
                receiver.bodies.clear()
                receiver.arrivals.clear()
                out.unlink(missing_ok=True)
                runs[kind].append(run_afresh(config, work))
                if kind.startswith("file"):
                    assert sum(1 for _ in out.open("rb")) == lines
                    continue
                sizes = sent[kind] = (list(receiver.sizes), list(receiver.bodies))
                first, last = receiver.arrivals[0], receiver.arrivals[-1]
                steady[kind].append((lines - lines / len(sizes[0])) / (last - first))
                arrivals = receiver.arrivals
                gaps[kind] += [later - at for at, later in itertools.pairwise(arrivals)]
    finally:
        receiver.close()
    file_run = median_of(runs["file (json)"])
    rows = []
    for kind in configs:
        run = median_of(runs[kind])
        rate = f"{statistics.median(steady[kind]) / 1000:,.0f}k" if steady[kind] else "-"
        gap = f"{statistics.median(gaps[kind]) * 1000:.1f}" if gaps[kind] else "-"
        rows.append(
            [
                kind,
                f"{lines / run.seconds / 1000:,.0f}k",
                rate,
                gap,
                f"{run.seconds:.2f}",
                f"{run.user_s:.2f}",
                f"{run.rss_mib:.0f}",
                f"{file_run.seconds / run.seconds:.2f}x",
            ]
        )
    print(table(rows, ["run, follow = false", "lines/s", "first→last request",
                       "ms between requests (median)", "seconds",
                       "CPU user s", "peak RSS MiB", "vs file"]))  # fmt: skip
    for kind, (sizes, bodies) in sent.items():
        raw = [len(gzip.decompress(body)) for body in bodies]
        records = sum(body.count(b'"timeUnixNano"') for body in map(gzip.decompress, bodies))
        assert records == lines, (records, lines)
        print(
            f"{kind}: {len(sizes)} requests of {lines / len(sizes):,.0f} records; median body "
            f"{statistics.median(sizes) / 1024:,.0f} KiB gzip, {statistics.median(raw) / 1024:,.0f}"
            f" KiB of JSON ({sum(raw) / lines:,.0f} B a record, {sum(sizes) / lines:,.0f} B gzip)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--otlp-lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["cri", "otlp"], help="run one of the two parts")
    parser.add_argument("--python", action="append", metavar="NAME=INTERPRETER", default=[])
    args = parser.parse_args()
    pythons = [item.split("=", 1) for item in args.python]
    aggregators = {name: [python, "-P", *AGGREGATOR[1:]] for name, python in pythons}
    with tempfile.TemporaryDirectory(prefix="bench-k8s-") as temp:
        work = Path(temp)
        if args.only != "otlp":
            plain = make_lines(work / "plain", 8, args.lines)
            cri_files(plain, work / "containers")
            print(f"{args.lines:,} lines in 8 files ({args.lines // 10:,} of them split in two "
                  f"CRI pieces), median of {args.repeat}, alternated\n")  # fmt: skip
            print(f"load average (1 min) at the start: {os.getloadavg()[0]:.1f}")
            read_through(work / "plain", work / "containers", args.lines, args.repeat, work,
                         aggregators or {"aggregator": AGGREGATOR})  # fmt: skip
            print()
        if args.only == "cri":
            return
        small = make_lines(work / "otlp", 8, args.otlp_lines, seed=2)
        assert small
        print(f"{args.otlp_lines:,} lines in 8 files to a receiver answering at once\n")
        otlp_against_file(work / "otlp", args.otlp_lines, args.repeat, work)


if __name__ == "__main__":
    main()
