"""The two hot paths of the production merge, each alone, to count their instructions with
callgrind (stable on a shared machine, where wall time is not): a parse worker's
``parse_region`` over a share of each production file, or ``encode_json`` over their records in
the sinks' batches (issue #27, session 11).

    python3 bench/workload.py DIR
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='CPyPy_worker___parse_region' \\
        VENV/bin/python -P bench/hot_paths.py worker json DIR       # or stamps (--format raw)
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='CPyPy_formats___encode_json' \\
        VENV/bin/python -P bench/hot_paths.py encode json DIR

``--share N``: the first 1/N of each file's lines (default 8).

One kind of line at a time (session 13): ``kind NEEDS FILE`` parses lines 1,000 to 5,000 of one
production file and pickles the worker's answer, the codec and orjson made first and the
collector off, as in a worker; the instructions a line of each file, weighted by the
workload's lines per file, compare builds per line of the whole workload:

    for f in DIR/*.log; do valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect=CPyPy_worker___parse_region --toggle-collect=_pickle_dumps \
        VENV/bin/python -P bench/hot_paths.py kind json $f; done
"""

import argparse
import gc
import pickle
from pathlib import Path

from aggregator.parse.worker import CodecSpec, _codec, answer_of, parse_region
from aggregator.record.formats import encode_json
from aggregator.record.record import Record

READ = 256 * 1024
LIMIT = 1 << 20
BATCH = 2048
"""Records a batch, as the merge hands them to a sink (``OUTPUT_BATCH``)."""


def regions(path: Path, share: int) -> list[bytes]:
    """The first ``1/share`` of ``path``'s lines, in reads of about 256 KiB of whole lines."""
    data = path.read_bytes()
    wanted, lines, start, out = data.count(b"\n") // share, 0, 0, []
    while (end := data.rfind(b"\n", start, start + READ)) > start and lines < wanted:
        out.append(data[start:end])
        lines += data.count(b"\n", start, end) + 1
        start = end + 1
    return out


def one_kind(spec: CodecSpec, path: Path, first: int = 1000, count: int = 4000) -> None:
    """A worker's step over ``count`` lines of ``path`` from line ``first``: what a callgrind
    of ``parse_region`` and ``_pickle_dumps`` counts, and nothing made once before it."""
    import orjson

    gc.disable()
    lines = path.read_bytes().split(b"\n")[first : first + count]
    _codec(spec).stamp('{"ts": 1}')  # a JSON stamp's decoder is made at the first (msgspec)
    orjson.dumps(orjson.loads(b'{"a":[1]}'))
    pickle.dumps(answer_of(parse_region(spec, b"\n".join(lines), LIMIT)), protocol=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=["worker", "encode", "kind"])
    parser.add_argument("needs", choices=["stamps", "json"])
    parser.add_argument("directory", type=Path, help="the workload's folder; a file for kind")
    parser.add_argument("--share", type=int, default=8)
    args = parser.parse_args()
    spec = CodecSpec("auto", None, "auto", None, args.needs)
    if args.path == "kind":
        one_kind(spec, args.directory)
        return
    records: list[Record] = []
    for path in sorted(args.directory.glob("*.log")):
        for region in regions(path, args.share):
            parsed = parse_region(spec, region, LIMIT)
            if args.path == "worker":
                continue
            tails: list[str | None] = list(parsed.json_tails or [None] * len(parsed.texts))
            for text, ts, tail in zip(parsed.texts, parsed.columns[0], tails, strict=True):
                records.append(Record(ts or 0, path.name, str(path), text, json_tail=tail))
    records.sort(key=lambda record: record.ts)
    for seq, record in enumerate(records, 1):
        record.seq = seq
    size = sum(len(encode_json(records[at : at + BATCH])) for at in range(0, len(records), BATCH))
    print(f"{len(records):,} records, {size:,} bytes of json" if records else "parsed")


if __name__ == "__main__":
    main()
