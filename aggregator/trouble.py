"""A fault that lasts (a full disk, a directory gone): said once, then a reminder now and then.

A part that retries something that keeps failing would otherwise log every attempt, burying
everything else on stderr. ``Trouble`` says the first failure at once, then at most one reminder
every ``REMIND_INTERVAL`` while it lasts, and that it is over once an attempt succeeds.
"""

import logging
import time

REMIND_INTERVAL = 30.0
"""Seconds between reminders that a fault still lasts."""


class Trouble:
    """The state of one thing that may keep failing (writing one file, say)."""

    def __init__(
        self,
        log: logging.Logger,
        subject: object,
        problem: str,
        recovered: str,
        consequence: str,
        remind_every: float = REMIND_INTERVAL,
    ) -> None:
        """Messages read "SUBJECT: PROBLEM: reason; CONSEQUENCE", "SUBJECT: still PROBLEM …"
        and "SUBJECT: RECOVERED after …": ``problem`` "cannot write", ``recovered`` "writing
        again", ``consequence`` what the program does meanwhile ("retrying")."""
        self.log = log
        self.subject = subject
        self.problem = problem
        self.recovered = recovered
        self.consequence = consequence
        self.remind_every = remind_every
        self.since: float | None = None
        """When the current fault began (monotonic); None while all is well."""
        self.failures = 0
        """Failed attempts since the fault began."""
        self._reminded = 0.0

    def failed(self, reason: str) -> None:
        """An attempt failed for ``reason``: said the first time, then every ``remind_every``."""
        now = time.monotonic()
        self.failures += 1
        if self.since is None:
            self.since = self._reminded = now
            self.log.error("%s: %s: %s; %s", self.subject, self.problem, reason, self.consequence)
        elif now - self._reminded >= self.remind_every:
            self._reminded = now
            self.log.warning("%s: still %s after %.0fs (%d attempts): %s; %s", self.subject,
                             self.problem, now - self.since, self.failures, reason,
                             self.consequence)  # fmt: skip

    def succeeded(self) -> None:
        """An attempt succeeded: say so if it ends a fault."""
        if self.since is None:
            return
        self.log.warning("%s: %s after %.1fs (%d failed attempts)", self.subject, self.recovered,
                         time.monotonic() - self.since, self.failures)  # fmt: skip
        self.since = None
        self.failures = 0


def reason_of(error: BaseException) -> str:
    """An error's reason as a person reads it: an OSError's ("No space left on device"), else
    its message, else its type's name."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
