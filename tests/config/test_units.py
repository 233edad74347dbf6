"""Durations and sizes as the config writes them."""

import pytest

from aggregator.config.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("1s", 1.0), ("5m", 300.0), ("1.5h", 5400.0), ("0s", 0.0), ("20us", 2e-5)],
)
def test_durations(text: str, seconds: float) -> None:
    """Each unit converts to seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "ms", "-1s", "1 s s"])
def test_bad_durations(text: str) -> None:
    """Anything else is refused."""
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "size"),
    [(4096, 4096), ("64KiB", 65536), ("100MiB", 100 << 20), ("1GiB", 1 << 30), ("10KB", 10_000)],
)
def test_sizes(value: int | str, size: int) -> None:
    """Integers are bytes; binary and decimal units convert."""
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["1MiBB", "", "KiB", -1, True])
def test_bad_sizes(value: int | str) -> None:
    """Anything else is refused."""
    with pytest.raises(ValueError):
        parse_size(value)
