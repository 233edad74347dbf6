"""The event loop's share of the ordered merge, per record, without I/O or asyncio: what the
loop does with a parse worker's replies for ordered_merge.py's files, step by step.

    python3 bench/loop_costs.py [--lines N]

The answers are made (and pickled) first, as a worker would; then, region by region across
the 8 lanes, the loop's steps are timed: unpickling an answer and splitting its region into
lines again (``with_lines``), building the Records, queueing
them in the ordering core, taking out what may leave, numbering it, encoding it (raw, then
json) and freeing the records once written. What the real run adds on top is the reads, the
pipes, the channels and the tasks (compare with ordered_merge.py's CPU time).
"""

import argparse
import gc
import pickle
import tempfile
import time
from pathlib import Path

from common import table
from ordered_merge import make_files

from aggregator.config import LineSourceConfig
from aggregator.flow.chunk import Announce, Chunk
from aggregator.flow.ordering import OrderingCore
from aggregator.parse.decode import Decoding
from aggregator.parse.worker import CodecSpec, answer_of, parse_region, with_lines
from aggregator.record.formats import encode_json, encode_raw

READ = 256 * 1024  # the file tailer's read size
LIMIT = 1 << 20  # max_line_bytes' default
STEPS = ("answer", "build", "push", "pop", "seq", "encode", "free")
Reply = tuple[bytes, bytes]  # a region, and the worker's pickled answer for it


def worker_replies(paths: list[Path], spec: CodecSpec) -> list[list[Reply]]:
    """Each file's regions of whole lines, with the answers a worker sends for them."""
    lanes = []
    for path in paths:
        data = path.read_bytes()
        replies, start = [], 0
        while (end := data.rfind(b"\n", start, start + READ)) > start:
            region = data[start:end]
            answer = answer_of(parse_region(spec, region, LIMIT))
            replies.append((region, pickle.dumps(answer, protocol=5)))
            start = end + 1
        lanes.append(replies)
    return lanes


def loop_costs(lanes: list[list[Reply]], encode_name: str) -> tuple[int, dict[str, float]]:
    """Records seen, and seconds spent in each of STEPS."""
    encode = encode_json if encode_name == "json" else encode_raw
    decodings = [Decoding(f"svc-{index}", LineSourceConfig()) for index in range(len(lanes))]
    core = OrderingCore(0.0, 1.0)
    for index in range(len(lanes)):
        core.add_source(str(index))
        core.announce(str(index), Announce([f"svc-{index}.log"], live=False), 0.0)
    spent = dict.fromkeys(STEPS, 0.0)
    clock = time.perf_counter
    records = seq = 0
    for round_ in range(max(map(len, lanes))):
        for index, replies in enumerate(lanes):
            if round_ >= len(replies):
                continue
            origin = f"svc-{index}.log"
            region, answer = replies[round_]
            start = clock()
            parsed = with_lines(pickle.loads(answer), region, LIMIT)
            answered = clock()
            batch, _ = decodings[index].parsed_records(origin, parsed, 0)
            built = clock()
            core.push(
                str(index), Chunk(origin, batch, live=False, final=round_ == len(replies) - 1), 0
            )
            spent["answer"] += answered - start
            spent["build"] += built - answered
            spent["push"] += clock() - built
            records += len(batch)
        del parsed, batch
        start = clock()
        released = core.pop_ready(0.0)
        popped = clock()
        for record in released:
            seq += 1
            record.seq = seq
        numbered = clock()
        for first in range(0, len(released), 4096):
            encode(released[first : first + 4096])
        encoded = clock()
        del released  # the last references: the records are freed here
        spent["pop"] += popped - start
        spent["seq"] += numbered - popped
        spent["encode"] += encoded - numbered
        spent["free"] += clock() - encoded
    return records, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    gc.disable()  # as in the pipeline, which collects every 30 s
    with tempfile.TemporaryDirectory(prefix="aggregator-bench-") as tmp:
        paths, _ = make_files(Path(tmp), 8, args.lines)
        rows = []
        for output, needs in (("raw", "stamps"), ("json", "json")):
            lanes = worker_replies(paths, CodecSpec("auto", None, "auto", None, needs))
            records, spent = loop_costs(lanes, output)
            per_record = [f"{spent[step] / records * 1e6:.2f}" for step in STEPS]
            total = f"{sum(spent.values()) / records * 1e6:.2f}"
            rows.append([f"--format {output}", *per_record, total])
    print(f"{records:,} records; µs a record on the event loop, without I/O")
    print(table(rows, ["output", *STEPS, "total"]))


if __name__ == "__main__":
    main()
