"""Regular expressions in RE2, the one place they are compiled for `grep` from clients and for
`where`'s ``~``: matching time is linear in the text whatever the pattern.

Linear is not cheap enough for a pattern from outside: its cost per character grows with its
compiled program (a counted repeat such as ``(.+){150}s`` has thousands of instructions). So a
*bounded* pattern (from a WebSocket client) whose program is larger than ``MAX_PROGRAM_SIZE`` is
refused, and it is searched in the first ``MAX_SEARCHED`` characters of a text only.
"""

from collections.abc import Callable
from typing import Final

Matcher = Callable[[str], object]
"""A compiled pattern: truthy when it is found in the text."""

RE2_MAX_MEMORY: Final = 8 << 20
"""Bytes RE2 may use for one compiled pattern."""
MAX_PROGRAM_SIZE: Final = 1000
"""Most instructions in a bounded pattern's RE2 program (``timeout``: 11, ``a|b|…`` of 20
words: about 200)."""
MAX_SEARCHED: Final = 64 * 1024
"""Characters of a text a bounded pattern is searched in: what one record may cost is bounded
whatever the line's length (a match further on is not seen)."""


class PatternError(ValueError):
    """A pattern RE2 cannot take, or a bounded one that would cost too much; the text says
    why."""


def compile_pattern(pattern: str, *, bounded: bool = False) -> Matcher:
    """``pattern`` compiled by RE2; PatternError with the reason for one it cannot take.

    The binding's ``search`` builds a match object through generators in Python (tens of
    microseconds a call); when the compiled RE2 underneath is there, it is asked directly."""
    import re2

    options = re2.Options()
    options.log_errors = False
    options.max_mem = RE2_MAX_MEMORY
    options.never_capture = True
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"not a usable regular expression: {reason}") from None
    if bounded:
        size = max(compiled.programsize, compiled.reverseprogramsize)
        if size > MAX_PROGRAM_SIZE:
            raise PatternError(
                f"too costly a pattern: its program has {size} instructions, "
                f"at most {MAX_PROGRAM_SIZE} are taken"
            )
    limit = MAX_SEARCHED if bounded else None
    match = getattr(getattr(compiled, "_regexp", None), "Match", None)
    anchor = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
    if match is None or anchor is None:
        search: Matcher = compiled.search
        if limit is None:
            return search
        return lambda text: search(text[:limit])
    unanchored = anchor.UNANCHORED

    def found(text: str) -> bool:
        data = (text if limit is None else text[:limit]).encode("utf-8", "replace")
        return bool(match(unanchored, data, 0, len(data))[0][0] != -1)

    return found
