"""A JSON line's top-level time found without building the object (issue #27).

``--format raw`` needs only each line's time; for a JSON line that used to be ``orjson.loads``
of the whole object (nested ones included, every key and value a new object) to read one
member. ``top_level_string`` walks the line once instead (compiled: a loop over code points),
checking it is JSON as it goes, and answers only when it is sure of what ``orjson.loads``
would give: anything it does not know for certain (an escaped key, a surrogate, a long number,
deep nesting, invalid JSON) is ``UNSURE`` and the caller asks orjson, whose answer stays the
reference (``tests/parse/test_jsonscan.py`` holds the two together).
"""

import orjson

NO_KEY = -1
"""The line is a JSON object with none of the keys."""
UNSURE = -2
"""Ask orjson: the line may be invalid, or the winning key's value is not a plain string."""

_MAX_DEPTH = 60  # containers open at once, as bits of one int
_MAX_NUMBER = 30  # characters: longer ones may overflow a double (orjson: an error)


def top_level_string(line: str, keys: tuple[str, ...]) -> int:
    """Where the value of the first of ``keys`` that ``line``'s top-level object has starts
    (the index after its opening quote; it ends at the next ``"``), when that value is a
    string without escapes; ``NO_KEY`` or ``UNSURE`` otherwise. A key given twice: the last
    one counts, as in the dict orjson builds."""
    n = len(line)
    i = _skip_space(line, 0, n)
    if i >= n or ord(line[i]) != 123:  # {
        return UNSURE
    i = _skip_space(line, i + 1, n)
    best_rank = len(keys)
    best = NO_KEY
    if i < n and ord(line[i]) == 125:  # }
        i += 1
    else:
        while True:
            if i >= n or ord(line[i]) != 34:  # a key
                return UNSURE
            end = _string_end(line, i + 1, n)
            if end == 0:
                return UNSURE
            if end > 0:
                rank = _rank_of(line, i + 1, end - 1, keys)
            else:  # escaped: it might still spell one of keys (rare: orjson reads it)
                end = -end
                rank = _rank_of(orjson.loads(line[i:end]), 0, -1, keys)
            i = _skip_space(line, end, n)
            if i >= n or ord(line[i]) != 58:  # :
                return UNSURE
            i = _skip_space(line, i + 1, n)
            start = i
            i = _value_end(line, i, n)
            if i < 0:
                return UNSURE
            if rank <= best_rank and rank < len(keys):
                best_rank = rank
                plain = ord(line[start]) == 34 and line.find("\\", start, i) < 0
                best = start + 1 if plain else UNSURE
            i = _skip_space(line, i, n)
            if i >= n:
                return UNSURE
            c = ord(line[i])
            if c == 125:  # }
                i += 1
                break
            if c != 44:  # ,
                return UNSURE
            i = _skip_space(line, i + 1, n)
    if _skip_space(line, i, n) != n:
        return UNSURE
    return best


def _rank_of(line: str, start: int, end: int, keys: tuple[str, ...]) -> int:
    """The index in ``keys`` of the key spelled by ``line[start:end]`` (``end`` -1: to the
    end), else ``len(keys)``."""
    size = (len(line) if end < 0 else end) - start
    rank = 0
    for key in keys:
        if len(key) == size and line.startswith(key, start):
            return rank
        rank += 1
    return rank


def _skip_space(line: str, i: int, n: int) -> int:
    while i < n:
        c = ord(line[i])
        if c != 32 and c != 10 and c != 13 and c != 9:
            return i
        i += 1
    return i


def _string_end(line: str, i: int, n: int) -> int:
    """The index after the closing quote of the string whose contents start at ``i``;
    negated if it holds an escape; 0 if it is not one orjson would surely take."""
    escaped = False
    while i < n:
        c = ord(line[i])
        if c == 34:  # "
            return -(i + 1) if escaped else i + 1
        if c == 92:  # \
            escaped = True
            if i + 1 >= n:
                return 0
            e = ord(line[i + 1])
            if e == 117:  # \uXXXX
                if i + 6 > n:
                    return 0
                code = 0
                for k in range(i + 2, i + 6):
                    h = ord(line[k])
                    if 48 <= h <= 57:
                        code = code * 16 + h - 48
                    elif 97 <= h <= 102:
                        code = code * 16 + h - 87
                    elif 65 <= h <= 70:
                        code = code * 16 + h - 55
                    else:
                        return 0
                if 0xD800 <= code <= 0xDFFF:  # a surrogate pair or a lone one: orjson
                    return 0
                i += 6
                continue
            if e not in _SIMPLE_ESCAPES:
                return 0
            i += 2
            continue
        if c < 32 or 0xD800 <= c <= 0xDFFF:  # control characters; surrogates are not UTF-8
            return 0
        i += 1
    return 0


_SIMPLE_ESCAPES = frozenset(ord(c) for c in '"\\/bfnrt')


def _value_end(line: str, i: int, n: int) -> int:
    """The index after the JSON value that starts at ``i`` (containers included); -1 if
    it is not one orjson would surely take."""
    stack = 0  # one bit a container open: 1 an object, 0 an array
    depth = 0
    while True:
        # A value starts at i.
        if i >= n:
            return -1
        c = ord(line[i])
        if c == 34:
            end = _string_end(line, i + 1, n)
            if end == 0:
                return -1
            i = end if end > 0 else -end
        elif c == 123 or c == 91:  # { [
            depth += 1
            if depth > _MAX_DEPTH:
                return -1
            is_object = c == 123
            stack = stack * 2 + (1 if is_object else 0)
            i = _skip_space(line, i + 1, n)
            if i < n and ord(line[i]) == (125 if is_object else 93):  # empty
                i += 1
                depth -= 1
                stack //= 2
            elif is_object:
                i = _member_value_start(line, i, n)
                if i < 0:
                    return -1
                continue
            else:
                continue
        elif c == 116:
            if not line.startswith("true", i):
                return -1
            i += 4
        elif c == 102:
            if not line.startswith("false", i):
                return -1
            i += 5
        elif c == 110:
            if not line.startswith("null", i):
                return -1
            i += 4
        else:
            i = _number_end(line, i, n)
            if i < 0:
                return -1
        # A value ended at i: close what it ends, or go on to the next.
        while True:
            if depth == 0:
                return i
            i = _skip_space(line, i, n)
            if i >= n:
                return -1
            c = ord(line[i])
            in_object = stack % 2 == 1
            if c == 44:  # ,
                i = _skip_space(line, i + 1, n)
                if in_object:
                    i = _member_value_start(line, i, n)
                    if i < 0:
                        return -1
                break
            if c == (125 if in_object else 93):
                i += 1
                depth -= 1
                stack //= 2
                continue
            return -1


def _member_value_start(line: str, i: int, n: int) -> int:
    """After ``"key" :`` at ``i`` in an object: where the value starts; -1 if not that."""
    if i >= n or ord(line[i]) != 34:
        return -1
    end = _string_end(line, i + 1, n)
    if end == 0:
        return -1
    i = _skip_space(line, end if end > 0 else -end, n)
    if i >= n or ord(line[i]) != 58:
        return -1
    return _skip_space(line, i + 1, n)


def _number_end(line: str, i: int, n: int) -> int:
    """The index after the JSON number at ``i``; -1 if there is none or it is long."""
    start = i
    if i < n and ord(line[i]) == 45:  # -
        i += 1
    if i >= n:
        return -1
    c = ord(line[i])
    if c == 48:  # a leading 0 stands alone
        i += 1
    elif 49 <= c <= 57:
        i = _digits_end(line, i + 1, n)
    else:
        return -1
    if i < n and ord(line[i]) == 46:  # .
        j = _digits_end(line, i + 1, n)
        if j == i + 1:
            return -1
        i = j
    if i < n and (ord(line[i]) == 101 or ord(line[i]) == 69):  # e E
        i += 1
        if i < n and (ord(line[i]) == 43 or ord(line[i]) == 45):
            i += 1
        j = _digits_end(line, i, n)
        if j == i or j - i > 2:  # no digits, or an exponent that might overflow
            return -1
        i = j
    if i - start > _MAX_NUMBER:
        return -1
    return i


def _digits_end(line: str, i: int, n: int) -> int:
    while i < n and 48 <= ord(line[i]) <= 57:
        i += 1
    return i
