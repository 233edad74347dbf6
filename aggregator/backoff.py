"""Delays between attempts at something that fails for a while (a peer away, a receiver busy):
shared by the sinks that retry (tcp, and those that POST)."""

import random


class Backoff:
    """Delays between attempts: doubling from ``first`` to ``last``, with jitter so that many
    senders do not retry in step; ``reset`` after a success."""

    def __init__(self, first: float = 0.5, last: float = 30.0) -> None:
        self.first = first
        self.last = last
        self._next = first

    def next(self, asked: float | None = None) -> float:
        """The delay before the next attempt; ``asked`` (a receiver's Retry-After) wins
        when longer."""
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self._next * 2, self.last)
        return max(delay, asked or 0.0)

    def reset(self) -> None:
        self._next = self.first
