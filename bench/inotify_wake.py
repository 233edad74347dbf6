"""The cost of one inotify wake in the file sources' shared instance (issue #27): a line
appended to a followed file, then the loop's reader callback that reads the event and sets the
follower's event, timed alone (CPU of the callback only, median of rounds).

    PYTHON bench/inotify_wake.py [--events N] [--rounds R]

Run it with each build's interpreter (``--python`` wrappers as for live_cost.py) to compare.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from aggregator.sources.file.watch import Watcher


async def one_round(directory: Path, events: int) -> float:
    """Microseconds a wake costs, over ``events`` appends, each read before the next."""
    path = directory / "app.log"
    path.write_text("")
    watcher = Watcher()
    changed = watcher.watch(path)
    inotify = watcher._inotify  # the callback is what is measured
    assert inotify is not None, "no inotify here"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    spent = 0.0
    try:
        for _ in range(events):
            os.write(fd, b"a line\n")
            start = time.process_time()
            inotify._read()
            spent += time.process_time() - start
            assert changed.is_set(), "the event was not dispatched"
            changed.clear()
    finally:
        os.close(fd)
        watcher.close()
    return spent / events * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aggregator-wake-") as tmp:
        costs = [await one_round(Path(tmp), args.events) for _ in range(args.rounds)]
    print(f"{statistics.median(costs):.1f} us CPU a wake (one event), median of {args.rounds}: "
          + ", ".join(f"{cost:.1f}" for cost in costs))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
