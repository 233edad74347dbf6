"""A parse worker's cost per line, file by file of the production-shaped workload: what
``--format raw`` needs of each line (its time, ``parse_lines(..., stamps_only=True)`` with the
``auto`` codec), in CPU µs, for each interpreter given, alternated.

    python3 bench/stamp_costs.py DIR [--python NAME=INTERPRETER ...] [--repeat R]

DIR holds bench/workload.py's files (made there if it has none). Each interpreter runs in a
process of its own (``-P``: its own install), over the first 1.5 MB of each file, the best of
five passes; the table gives the minimum over ``--repeat`` processes, and each interpreter's
ratio to the first.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import workload
from common import table

CHILD = """
import sys, time
from pathlib import Path
from aggregator.parse.codecs import make_codec, parse_lines
codec = make_codec("auto")
for path in sorted(Path(sys.argv[1]).glob("*.log")):
    texts = path.read_text()[:1_500_000].split("\\n")[:-1]
    best = 1e9
    for _ in range(5):
        start = time.process_time()
        parse_lines(codec, texts, True)
        best = min(best, time.process_time() - start)
    print(path.name, len(texts), best / len(texts) * 1e6)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--python", action="append", metavar="NAME=INTERPRETER", default=[])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not any(args.dir.glob("*.log")):
        workload.make_files(args.dir, 920_000)
    pythons = dict(item.split("=", 1) for item in args.python) or {"this": sys.executable}
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.repeat):
        for name, python in pythons.items():
            out = subprocess.run([python, "-P", "-c", CHILD, str(args.dir)],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            for line in out.splitlines():
                file, _, micros = line.split()
                best[(file, name)] = min(best.get((file, name), 1e9), float(micros))
    files = sorted({file for file, _ in best})
    first = next(iter(pythons))
    rows = []
    for file in files:
        row = [file]
        for name in pythons:
            ratio = best[(file, first)] / best[(file, name)]
            row.append(f"{best[(file, name)]:.2f}" + ("" if name == first else f" ({ratio:.2f}x)"))
        rows.append(row)
    print(table(rows, ["file", *(f"{name} µs/line" for name in pythons)]))


if __name__ == "__main__":
    main()
