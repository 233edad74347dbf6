"""Process-wide settings of the running program: garbage collection and the task dump."""

import asyncio
import gc
import logging
import resource
import sys

log = logging.getLogger(__name__)

GC_INTERVAL = 30.0
"""Seconds between collections while automatic collection is off."""
FULL_EVERY = 10
"""Every this many collections, the long-lived objects are walked again too."""


async def collect_garbage_periodically(
    interval: float = GC_INTERVAL, full_every: int = FULL_EVERY
) -> None:
    """Turn automatic cyclic GC off and collect every ``interval`` seconds instead.

    Records make no reference cycles, but each automatic collection of the oldest generation
    walks every live record, which slowed a large catch-up a lot (bench/README.md). What
    survives a collection is frozen (``gc.freeze``), so the next passes walk only what is new.
    Every ``full_every`` passes the frozen objects are walked again, so that cycles among them
    are freed too (exceptions with their tracebacks, tasks that ended). When it ends, automatic
    collection is as it found it: ``cli.main`` turns it back on only once the run is over, so
    that the pipeline's last steps do not walk all it ever allocated.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    passes = 0
    try:
        while True:
            await asyncio.sleep(interval)
            passes += 1
            if passes % full_every == 0:
                gc.unfreeze()
            gc.collect()
            gc.freeze()
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def dump_tasks() -> None:
    """Every task with its stack, to stderr (SIGUSR1 with --debug)."""
    for task in asyncio.all_tasks():
        sys.stderr.write(f"--- task {task.get_name()}\n")
        task.print_stack(file=sys.stderr)


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one: every followed file and connection
    holds a descriptor, and the usual soft limit of 1024 is far below what a log host needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as error:
        log.debug("cannot raise the open file limit from %d: %s", soft, error)
