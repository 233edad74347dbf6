"""orjson's ``loads`` and ``dumps``, orjson imported at the first call; and ``FirstValue``, a
JSON line's time key read through msgspec without the object (imported at its first line).

``aggregator tail`` of text lines never needs JSON, and importing orjson (which imports json,
uuid, datetime and platform) was about 10 ms of CPU of a 160 ms start (issue #27,
bench/README.md). A call costs what ``orjson.loads`` did: one lookup, then orjson's own call.
A JSON error is orjson's ``JSONDecodeError``, a ``ValueError``.
"""

from collections.abc import Callable
from typing import Any, Final

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


ABSENT: Final = object()
"""``FirstValue.of``: the object has none of the keys."""
UNSURE: Final = object()
"""``FirstValue.of``: msgspec cannot say what orjson would; read the line with ``loads``."""
_I64_MIN: Final = -(1 << 63)
_U64_END: Final = 1 << 64


class FirstValue:
    """The value of the first of ``keys`` that a JSON object line holds, read as ``loads``
    reads it, without the object: msgspec decodes the line into a struct of those keys alone,
    skipping (but checking) every other value, 3 to 6 times faster than ``loads`` on a log line
    (bench/README.md, session 14). msgspec is imported at the first line (about 16 ms).

    Where msgspec refuses a line (not JSON, not an object, a lone surrogate, a key's number
    out of a double's range) or nests past its recursion limit (orjson's is 1024 levels),
    ``of`` says ``UNSURE``. A key's integer outside orjson's 64 bits is a float, as orjson
    reads it. One difference is kept (tests/parse/test_first_value.py compares the two): a
    number elsewhere in the line too large for a double (``1e400``), valid JSON that orjson
    refuses and msgspec skips, leaves the line its time here (docs/records.md). Telling such
    a number apart first cost every JSON line more than msgspec's whole read.
    """

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self._decode: Callable[[str], Any] | None = None
        self._values: Callable[[Any], tuple[Any, ...]] | None = None
        self._unset: object = None

    def _make(self) -> Callable[[str], Any]:
        import msgspec

        names = [f"k{index}" for index in range(len(self.keys))]
        struct = msgspec.defstruct(
            "Times",
            [(name, Any, msgspec.UNSET) for name in names],
            rename=dict(zip(names, self.keys, strict=True)),
            gc=False,
        )
        self._values = msgspec.structs.astuple
        self._unset = msgspec.UNSET
        decode = self._decode = msgspec.json.Decoder(struct).decode
        return decode

    def of(self, line: str) -> object:
        """The value of the first of the keys that the object on ``line`` has (null is
        ``None``), ``ABSENT`` if it has none, or ``UNSURE``."""
        decode = self._decode
        if decode is None:
            decode = self._make()
        try:
            found = decode(line)
        except (ValueError, RecursionError):  # msgspec's DecodeError, ValidationError
            return UNSURE
        values = self._values
        assert values is not None
        unset = self._unset
        for value in values(found):
            if value is not unset:
                if type(value) is int and not _I64_MIN <= value < _U64_END:
                    try:
                        return float(value)  # what orjson reads it as
                    except OverflowError:  # infinite as a double: orjson refuses the line
                        return UNSURE
                return value
        return ABSENT
