"""Input from outside that is not what it should be (SPEC §9): counted, named on stderr at most
once a minute per peer with its control characters escaped, and dropped; the rest goes on.

A broken or hostile peer may send a bad frame a thousand times a second: each is counted, but
stderr says so once a minute (with how many came meanwhile), and never writes what the peer
sent raw (an ANSI escape in an error text could drive the terminal).
"""

import logging
import time

from aggregator.record.formats import escape_control

REPORT_INTERVAL = 60.0
"""Seconds between two reports of invalid input from one peer."""
MAX_SHOWN = 200
"""Characters of a peer's own text (an error message, a name) shown at most."""


def shown(text: object) -> str:
    """What a peer said, fit for stderr: control characters escaped, cut to MAX_SHOWN."""
    value = escape_control(str(text))
    return value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "…"


class InvalidInput:
    """Counts what was dropped as invalid and reports it, per peer, at most once a minute."""

    def __init__(self, log: logging.Logger, interval: float = REPORT_INTERVAL) -> None:
        self.log = log
        self.interval = interval
        self.count = 0
        self._reported: dict[str, list[float]] = {}  # peer: [when reported, dropped since]

    def dropped(self, peer: str, why: str) -> None:
        """One item from ``peer`` was dropped because ``why``."""
        self.count += 1
        now = time.monotonic()
        last = self._reported.get(peer)
        if last is not None and now < last[0] + self.interval:
            last[1] += 1
            return
        since = f" ({last[1]:.0f} more since the last report)" if last and last[1] else ""
        if len(self._reported) > 1000:
            self._reported.clear()  # peers that come and go must not grow the table
        self._reported[peer] = [now, 0]
        self.log.warning("%s: dropped what is not a valid record: %s%s", shown(peer),
                         shown(why), since)  # fmt: skip
