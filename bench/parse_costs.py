"""A parse worker's share of the ordered merge, per line, and two per-line parts that the merge
bench does not use (multiline joining, octet-counted framing): to compare builds (issue #17).

    python3 bench/parse_costs.py [--lines N]

The worker's step is ``parse_region`` and pickling its answer, over ordered_merge.py's files
in 256 KiB regions, for what each kind of sink needs; the best of 3 passes.
"""

import argparse
import pickle
import re
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ordered_merge import make_files

import aggregator.parse.worker
from aggregator.parse.framing import OctetCountedSplitter
from aggregator.parse.lines import Lines
from aggregator.parse.multiline import MultilineJoiner
from aggregator.parse.worker import NEEDS, CodecSpec, answer_of, parse_region

READ = 256 * 1024
LIMIT = 1 << 20


def best(passes: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def parse_all(spec: CodecSpec, regions: list[bytes]) -> None:
    for region in regions:
        pickle.dumps(answer_of(parse_region(spec, region, LIMIT)), protocol=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=400_000)
    args = parser.parse_args()
    print(f"aggregator.parse.worker: {aggregator.parse.worker.__file__}")
    with tempfile.TemporaryDirectory(prefix="aggregator-bench-") as tmp:
        paths, expected = make_files(Path(tmp), 8, args.lines)
        regions = []
        for path in paths:
            data, start = path.read_bytes(), 0
            while (end := data.rfind(b"\n", start, start + READ)) > start:
                regions.append(data[start:end])
                start = end + 1
    for needs in NEEDS:
        spec: CodecSpec = ("auto", None, "auto", None, needs)
        seconds = best(3, partial(parse_all, spec, regions))
        print(f"worker, {needs:10}  {seconds / len(expected) * 1e6:.2f} µs a line")

    text = ["2026-11-25T10:00:00Z start" if i % 4 == 0 else "   at frame" for i in range(200_000)]

    def multiline() -> None:
        joiner = MultilineJoiner(re.compile(r"^\S"), 1000, LIMIT, 1.0)
        for start in range(0, len(text), 2000):
            joiner.feed(Lines(text[start : start + 2000]), 0.0)

    print(f"multiline joining     {best(5, multiline) / len(text) * 1e6:.2f} µs a line")
    frame = b"<13>1 2026-11-25T10:00:00Z host app - - - hello world " * 2
    data = b"".join(f"{len(frame)} ".encode() + frame for _ in range(2000))

    def framing() -> None:
        splitter = OctetCountedSplitter(LIMIT)
        for _ in range(100):
            splitter.feed(data)

    print(f"octet-counted frames  {best(5, framing) / 200_000 * 1e6:.2f} µs a frame")


if __name__ == "__main__":
    main()
