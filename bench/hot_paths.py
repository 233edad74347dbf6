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
"""

import argparse
from pathlib import Path

from aggregator.parse.worker import CodecSpec, parse_region
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=["worker", "encode"])
    parser.add_argument("needs", choices=["stamps", "json"])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--share", type=int, default=8)
    args = parser.parse_args()
    spec = CodecSpec("auto", None, "auto", None, args.needs)
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
