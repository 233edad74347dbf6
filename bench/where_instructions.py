"""A parse worker's ``parse_region`` over the first lines of one production file, with or
without a ``where``, for callgrind to count (issue #29, session 14): run it for 1,000 and
5,000 lines and take the difference over 4,000, which leaves out what is made once (the codec,
the ``where``'s judge, orjson's first call).

    python3 bench/workload.py DIR
    for n in 1000 5000; do PYTHONHASHSEED=0 valgrind --tool=callgrind --collect-atstart=no \\
        --toggle-collect=CPyDef_worker___parse_region --callgrind-out-file=OUT.$n \\
        VENV/bin/python -P bench/where_instructions.py DIR/0-api-json.log json $n \\
        [--where 'not level<info and not http.status>=500 and not http.path~"^/health"']; done
"""

import argparse
import gc
from pathlib import Path

from aggregator.parse.worker import CodecSpec, _codec, parse_region
from aggregator.record.verdicts import row_judge

LIMIT = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="one production file")
    parser.add_argument("needs", choices=["stamps", "json"])
    parser.add_argument("count", type=int, help="its first COUNT lines")
    parser.add_argument("--where", action="append", default=[])
    args = parser.parse_args()
    import orjson

    gc.disable()  # as in a worker
    wheres = tuple(args.where)
    spec = CodecSpec("auto", None, "auto", None, args.needs, source="app", wheres=wheres)
    lines = args.path.read_bytes().split(b"\n")[: args.count]
    _codec(spec)
    if wheres:
        row_judge(wheres, "app", "a.log")
    orjson.dumps(orjson.loads(b'{"a":[1]}'))
    parse_region(spec, b"\n".join(lines[:2]), LIMIT, "a.log")  # what is made once, made
    parse_region(spec, b"\n".join(lines), LIMIT, "a.log")


if __name__ == "__main__":
    main()
