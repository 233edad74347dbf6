"""Records from the future: a time more than ``future_grace`` ahead of the moment a record was
read is not believed (SPEC §9). Such a record is placed at that moment instead, keeps what it
claimed in ``ts_claimed``, and is counted. Believed, one ``9999-12-31`` line would rank after
everything to come, and every later record of every source would be late.

Pure: the merge passes the wall clock, in microseconds since the epoch.
"""

from collections.abc import Sequence

from aggregator.record.record import Record


def place_future(records: Sequence[Record], now: int, grace: int) -> int:
    """Place records stamped after ``now + grace`` at ``now``; how many there were.

    One pass to find whether one is ahead (the common case: none is), a second only when
    one is."""
    limit = now + grace
    for record in records:  # a loop, not max() of a generator: one is made for each chunk
        if record.ts > limit:
            break
    else:
        return 0
    placed = 0
    for record in records:
        if record.ts > limit:
            record.ts_claimed = record.ts
            record.ts = now
            placed += 1
    return placed
