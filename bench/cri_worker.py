"""What a parse worker spends a line on, CRI against plain (issue #26): each 256 KiB region of
``bench/kubernetes.py``'s files parsed as a worker does (``parse_region``) and its answer
written (``answer_of``, pickled), per record (a plain line, or a CRI line or its two pieces), median
of runs alternated, CPU time.

    python3 bench/cri_worker.py                      # this interpreter's build
    VENV/bin/python -P bench/cri_worker.py           # another build (-P: its own install)

The worker's answer for a plain region is the times (the loop splits the region again); for a
container's region, its messages too: "answer" is what that costs besides the parse.
"""

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_lines, table
from kubernetes import cri_files

from aggregator.parse.container import EnvelopeRegion
from aggregator.parse.worker import CodecSpec, answer_of, parse_region

REGION = 256 * 1024
LIMIT = 1 << 20


def regions(path: Path) -> list[bytes]:
    """``path`` in regions of whole lines, ~``REGION`` bytes each, as a tailer reads it."""
    data, out, start = path.read_bytes(), [], 0
    while (end := data.rfind(b"\n", start, start + REGION)) > start:
        out.append(data[start:end])
        start = end + 1
    return out


def per_record(work: Callable[[bytes], object], parts: list[bytes], records: int) -> float:
    """µs of CPU a record (a plain line; a CRI line or two pieces) for ``work`` on each part."""
    started = time.process_time()
    for part in parts:
        work(part)
    return (time.process_time() - started) / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cri-worker-") as temp:
        plain = make_lines(Path(temp) / "plain", 1, args.lines)
        cri = cri_files(plain, Path(temp) / "cri")
        plain_parts, cri_parts = regions(plain[0]), regions(cri[0])
    rows = []
    for needs, fmt in (("stamps", "raw"), ("json", "json")):
        plain_spec = CodecSpec("auto", None, "auto", None, needs)
        cri_spec = plain_spec._replace(envelope="cri")

        def parse_plain(part: bytes, spec: CodecSpec = plain_spec) -> object:
            return parse_region(spec, part, LIMIT)

        def parse_cri(part: bytes, spec: CodecSpec = cri_spec) -> object:
            return parse_region(spec, EnvelopeRegion(part, (), LIMIT), LIMIT)

        def answer_plain(part: bytes, spec: CodecSpec = plain_spec) -> object:
            return pickle.dumps(answer_of(parse_region(spec, part, LIMIT)), protocol=5)

        def answer_cri(part: bytes, spec: CodecSpec = cri_spec) -> object:
            parsed = parse_region(spec, EnvelopeRegion(part, (), LIMIT), LIMIT)
            return pickle.dumps(answer_of(parsed), protocol=5)

        measured: dict[str, list[float]] = {}
        for _ in range(args.runs):  # alternated, one run of each in turn
            for name, work, parts in (
                ("plain parse", parse_plain, plain_parts),
                ("cri parse", parse_cri, cri_parts),
                ("plain parse + answer", answer_plain, plain_parts),
                ("cri parse + answer", answer_cri, cri_parts),
            ):
                measured.setdefault(name, []).append(per_record(work, parts, args.lines))
        median = {name: statistics.median(times) for name, times in measured.items()}
        for kind in ("plain", "cri"):
            parse, whole = median[f"{kind} parse"], median[f"{kind} parse + answer"]
            ratio = median["plain parse + answer"] / whole
            rows.append(
                [f"{kind} --format {fmt}", f"{parse:.3f}", f"{whole - parse:.3f}",
                 f"{whole:.3f}", f"{ratio:.2f}x"]
            )  # fmt: skip
    print(f"{args.lines:,} lines (a tenth split in CRI pieces), median of {args.runs}\n")
    print(table(rows, ["worker µs a record", "parse", "answer", "total", "plain / this"]))


if __name__ == "__main__":
    main()
