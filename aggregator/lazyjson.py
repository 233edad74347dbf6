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

    Where msgspec and orjson differ on a line, ``of`` says ``UNSURE`` (tests/parse/
    test_first_value.py compares them):

    - msgspec refuses the line (not JSON, not an object, a lone surrogate, a key's number out
      of a double's range), or nests past its recursion limit (orjson's is 1024 levels);
    - a number anywhere that orjson refuses as infinite and msgspec skips
      (``may_hold_infinity``).

    A key's integer outside orjson's 64 bits is a float, as orjson reads it.
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
        if may_hold_infinity(line):
            return UNSURE
        values = self._values
        assert values is not None
        unset = self._unset
        for value in values(found):
            if value is not unset:
                if type(value) is int and not _I64_MIN <= value < _U64_END:
                    return float(value)  # what orjson reads it as (never infinite here)
                return value
        return ABSENT


_SHAPES: Final = bytes.maketrans(b"123456789+E", b"0000000000e")
"""Each digit and ``+`` as ``0``, ``E`` as ``e``: a number's shape in a line's bytes."""


def may_hold_infinity(line: str) -> bool:
    """Whether JSON text may hold a number that is infinite as a double (which orjson
    refuses): one whose exponent has three digits or more (``1e400``, ``1E+0309``), or whose
    integer part has 200 digits or more (``1`` and 308 zeros, or 300 nines and ``e9``).

    Looked for in the text's shape (``_SHAPES``: one ``bytes.translate`` and one ``find``,
    a fraction of what a scan of its characters costs compiled), not parsed: a string that
    holds such text (a digit, an exponent, and what may end a number) says True too, and so
    may 100 digits in a row, or an exponent of two digits after a ``+``."""
    shape = line.encode().translate(_SHAPES)
    at = shape.find(b"0e000")  # a digit before it: "1e400", not "time400"
    while at >= 0:
        end = at + 5
        while end < len(shape) and shape[end] == 48:
            end += 1
        if end == len(shape) or _ENDS_NUMBER[shape[end]]:  # not a hex id's "3e4567ab"
            return True
        at = shape.find(b"0e000", end)
    # 200 digits in a row hold the 100 from a multiple of 100.
    for start in range(0, len(shape) - 99, 100):
        if shape[start] == 48 and shape[start : start + 100] == _HUNDRED_DIGITS:
            return True
    return False


_HUNDRED_DIGITS: Final = b"0" * 100
_ENDS_NUMBER: Final = bytes(code in b",}] \t\n\r" for code in range(256))
"""What may follow a number in JSON, by byte: 1, else 0."""
