"""Rotation under load (issue #3): 20k lines/s into app.log, renamed away every 2 s for 30 s.

    python3 bench/rotation_rename.py [--rate N] [--seconds S] [--every S]

The writer renames app.log to app.log.K, keeps writing to the renamed file for a moment (as
an application does until it reopens), then opens a new app.log. `aggregator run` follows
app.log (rotate_wait 5 s) into a file. Every line must arrive exactly once, and the lines of
each file generation in the order written.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import AGGREGATOR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aggregator-rotation-") as tmp:
        work = Path(tmp)
        log = work / "app.log"
        log.write_text("")
        config = work / "c.toml"
        config.write_text(
            f'[aggregator]\nstate_dir = "{work / "state"}"\norder_window = "0s"\n'
            '[sources.app]\ntype = "file"\npaths = ["app.log"]\nstart_at = "beginning"\n'
            'codec = "raw"\n[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
        )
        out_path = work / "out.log"
        with out_path.open("wb") as out:
            proc = subprocess.Popen([*AGGREGATOR, "run", "-c", str(config)], cwd=work,
                                    stdout=out, stderr=subprocess.PIPE)  # fmt: skip
            time.sleep(1.0)  # let it open app.log (a benchmark; the tests wait on conditions)
            written = 0
            generation = 0
            batch = max(1, args.rate // 100)
            file = log.open("a", buffering=1 << 16)
            start = time.monotonic()
            next_rotation = start + args.every
            while time.monotonic() - start < args.seconds:
                for _ in range(batch):
                    file.write(f"g{generation} n{written}\n")
                    written += 1
                file.flush()
                now = time.monotonic()
                if now >= next_rotation:
                    generation += 1
                    log.rename(work / f"app.log.{generation}")
                    for _ in range(batch):  # still writing to the renamed file
                        file.write(f"g{generation - 1} n{written}\n")
                        written += 1
                    file.close()
                    file = log.open("a", buffering=1 << 16)
                    next_rotation += args.every
                time.sleep(max(0.0, start + written / args.rate - time.monotonic()))
            file.close()
            elapsed = time.monotonic() - start
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if out_path.stat().st_size and sum(1 for _ in out_path.open("rb")) >= written:
                    break
                time.sleep(0.5)
            time.sleep(6)  # past rotate_wait: anything repeated late would show
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        lines = out_path.read_text().splitlines()
        numbers = [int(line.split(" n")[1]) for line in lines]
        by_generation: dict[str, list[int]] = {}
        for line in lines:
            gen, number = line.split(" n")
            by_generation.setdefault(gen, []).append(int(number))
        lost = written - len(set(numbers))
        repeated = len(numbers) - len(set(numbers))
        in_order = all(values == sorted(values) for values in by_generation.values())
        print(f"{written:,} lines written at {written / elapsed:,.0f}/s for {elapsed:.0f} s, "
              f"{generation} rotations; Python {sys.version.split()[0]}")  # fmt: skip
        print(f"received {len(numbers):,}: lost {lost}, repeated {repeated}, "
              f"each generation in order: {in_order}; exit {proc.returncode}")  # fmt: skip
        if err.strip():
            print(err.decode().strip()[-500:], file=sys.stderr)
        os.sync()


if __name__ == "__main__":
    main()
