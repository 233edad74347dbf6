"""Instructions of a live step's compiled parts, outside the loop (issue #27): the decode of a
live read of ``LINES`` lines (``LaneDecoder.feed``), and the ordering core's push of one record
into each of ``LANES`` live lanes then ``pop_ready`` and ``next_deadline`` (one step of the
merge after one read of inotify's events). Deterministic under callgrind, unlike a live run,
whose wakes find as many lines as the machine's load lets gather:

    valgrind --tool=callgrind --callgrind-out-file=OUT PYTHON -P bench/live_parts.py \
        --lanes 8 --lines 1 --steps 2000
    (and --steps 0: the difference over the steps is the figure; PYTHONHASHSEED=0)
"""

import argparse
import time

from aggregator.config import FileSourceConfig
from aggregator.flow.chunk import Announce, Chunk
from aggregator.flow.ordering import OrderingCore
from aggregator.parse.decode import Decoding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--lines", type=int, default=1, help="lines a read")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    config = FileSourceConfig(type="file", paths=["/x/*.log"])
    decoding = Decoding("files", config, "stamps")
    origins = [f"/x/live-{index}.log" for index in range(args.lanes)]
    decoders = [decoding.lane(origin) for origin in origins]
    core = OrderingCore(window=0.25, idle_timeout=5.0)
    core.add_source("files")
    core.announce("files", Announce(origins, live=True), 0.0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    ident = 0
    out = 0
    for step in range(args.steps):
        now = 1.0 + step * 0.001
        for decoder, origin in zip(decoders, origins, strict=True):
            data = b""
            for _ in range(args.lines):
                ident += 1
                data += f"{stamp}.{ident % 1_000_000:06d}Z INFO id={ident} {'x' * 60}\n".encode()
            records = decoder.feed(data)
            core.push("files", Chunk(origin, records, True, False, None, None), now)
        out += len(core.pop_ready(now))
        core.next_deadline(now)
    print(f"records out {out}, held {core.held}")


if __name__ == "__main__":
    main()
