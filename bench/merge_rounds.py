"""Where the merge does its rounds in one run: in its own task or in a source's put.

    PYTHON -P bench/merge_rounds.py tail --no-follow --from-start --codec auto FILE...

Runs the CLI in this process with the merge's (pure-Python) methods counted, then prints on
stderr how many chunks were taken (``_take``), how many waits and steps made in a put
(``_step_now``), and the batches and bytes handed to stdout. Tells a build's scheduling from
another's where CPU figures do not (bench/README.md, "Session 10 (s10catchup)").
"""

import atexit
import collections
import inspect
import sys
import time
from collections.abc import Callable
from typing import Any

import aggregator.flow.merge as merge
import aggregator.sinks.stdout as stdout

counts: collections.Counter[str] = collections.Counter()
sizes: collections.Counter[str] = collections.Counter()


def count(cls: type, name: str, size: Callable[[tuple[Any, ...]], int] | None = None) -> None:
    """Count calls of ``cls.name`` (and the sum of ``size`` of their arguments)."""
    original = getattr(cls, name, None)
    if original is None:  # a build without it
        return

    def note(args: tuple[Any, ...]) -> None:
        counts[name] += 1
        if size is not None:
            sizes[name] += size(args)

    if inspect.iscoroutinefunction(original):

        async def counted_async(self: object, *args: Any) -> Any:
            note(args)
            return await original(self, *args)

        setattr(cls, name, counted_async)
    else:

        def counted(self: object, *args: Any) -> Any:
            note(args)
            return original(self, *args)

        setattr(cls, name, counted)


count(merge.Merge, "_take")
count(merge.Merge, "_wait")
count(merge.Merge, "_step_now")
count(merge.Merge, "_send_batch", lambda args: len(args[0]))
count(stdout.StdoutSink, "write", lambda args: len(args[0]))
started = time.perf_counter()


@atexit.register
def report() -> None:
    seconds = time.perf_counter() - started
    print(f"{seconds:.2f} s; calls {dict(counts)}; records/bytes {dict(sizes)}", file=sys.stderr)


if __name__ == "__main__":
    from aggregator.cli import main

    sys.argv[0] = "aggregator"
    sys.exit(main())
