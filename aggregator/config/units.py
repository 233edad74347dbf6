"""Durations ("250ms", "5m") and sizes ("64KiB", 1048576) as the config writes them."""

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_DURATION_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?")
_SIZE_BYTES = {
    None: 1,
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
}


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as "250ms", "1s", "1.5m"; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    number, unit = match.groups()
    return float(number) * _DURATION_SECONDS[unit]


def parse_size(value: int | str) -> int:
    """Bytes in ``value``: an integer, or a string such as "64KiB"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(value)
        return value
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(value)
    number, unit = match.groups()
    return int(number) * _SIZE_BYTES[unit]
