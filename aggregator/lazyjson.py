"""orjson's ``loads`` and ``dumps``, orjson imported at the first call.

``aggregator tail`` of text lines never needs JSON, and importing orjson (which imports json,
uuid, datetime and platform) was about 10 ms of CPU of a 160 ms start (issue #27,
bench/README.md). A call costs what ``orjson.loads`` did: one lookup, then orjson's own call.
A JSON error is orjson's ``JSONDecodeError``, a ``ValueError``.
"""

from collections.abc import Callable
from typing import Any

_loads: Callable[[str | bytes], Any] | None = None
_dumps: Callable[[Any], bytes] | None = None


def loads(data: str | bytes) -> Any:
    """``orjson.loads(data)``."""
    global _loads
    call = _loads
    if call is None:
        import orjson

        call = _loads = orjson.loads
    return call(data)


def dumps(value: Any) -> bytes:
    """``orjson.dumps(value)``."""
    global _dumps
    call = _dumps
    if call is None:
        import orjson

        call = _dumps = orjson.dumps
    return call(value)
