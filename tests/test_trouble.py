"""A lasting fault is said once, reminded now and then, and its end said (issue #16)."""

import logging
import time

import pytest

from aggregator.trouble import Trouble


def test_said_once_reminded_then_over(caplog: pytest.LogCaptureFixture) -> None:
    """Many failures give one error, a reminder per interval, and one line when it is over."""
    caplog.set_level(logging.INFO)
    trouble = Trouble(logging.getLogger("t"), "out.log", "cannot write", "writing again",
                      "retrying", remind_every=0.05)  # fmt: skip
    for _ in range(20):
        trouble.failed("No space left on device")
    assert [r.getMessage() for r in caplog.records] == [
        "out.log: cannot write: No space left on device; retrying"
    ]
    began = time.monotonic()
    while True:  # one reminder interval, spent failing (at least once after it: a busy
        trouble.failed("No space left on device")  # machine may pause this loop past it)
        if time.monotonic() - began >= 0.06:
            break
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage().startswith("out.log: still cannot write after 0s (")
    trouble.succeeded()
    trouble.succeeded()
    assert len(caplog.records) == 3
    assert caplog.records[2].getMessage().startswith("out.log: writing again after ")
    trouble.failed("Input/output error")
    assert caplog.records[3].getMessage() == "out.log: cannot write: Input/output error; retrying"
