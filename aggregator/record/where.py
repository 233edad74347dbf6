"""``where``: the one filter language (SPEC §3), its tokenizer, parser and evaluator.

    level>=warn and status>=500 and not path~"^/health"

Every place that filters (``tail --where``, ``connect --where``, a sink's ``filter.where``,
``/ws?where=``, a live ``{"filter": {"where": …}}``, the page, the alert sink) parses with
``parse_where`` and runs the ``Where`` it gives. It is pure: no I/O, no clock.

Costs are bounded whatever a client sends: an expression is at most ``MAX_CHARS`` long, nests
at most ``MAX_DEPTH`` deep, and holds at most ``MAX_CONDITIONS`` conditions; a record is tested
once per condition, and ``~`` runs in RE2, whose matching time is linear in the text. So one
record costs at most time linear in the expression and the record.

A wrong expression raises ``WhereError``, whose message names the 1-based position and what was
expected: ``at 14: expected a value after ">=", got end of input``.
"""

import functools
import math
from collections.abc import Callable, Sequence
from typing import Final

from aggregator.record.conditions import (
    And,
    Condition,
    Getter,
    InTest,
    Leaf,
    LevelRank,
    Not,
    NumberTest,
    Or,
    Present,
    SearchTest,
    TextTest,
    text_of,
)
from aggregator.record.levels import LEVEL_RANK, LEVELS
from aggregator.record.patterns import Matcher, compile_pattern
from aggregator.record.record import Record

MAX_CHARS: Final = 4000
"""Longest expression accepted."""
MAX_DEPTH: Final = 32
"""Deepest nesting of parentheses and ``not``."""
MAX_CONDITIONS: Final = 100
"""Most comparisons in one expression."""
MAX_IN_VALUES: Final = 100
"""Most values in one ``in (…)``."""
MAX_NAME_PARTS: Final = 16
"""Most dotted parts in a field name."""

KEYWORDS: Final = ("and", "or", "not", "in", "contains", "exists")
COMPARISONS: Final = ("=", "==", "!=", "<", "<=", ">", ">=", "~", "!~")


class WhereError(ValueError):
    """An expression that cannot be used: the message says where and what was expected."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"at {position}: {message}")
        self.position = position


# --- tokens -------------------------------------------------------------------------------

NAME, STRING, NUMBER, OP, LPAREN, RPAREN, COMMA, END = range(8)
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_@/")
_NAME_CHARS = _NAME_START | frozenset("0123456789.-/:")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


class Token:
    __slots__ = ("kind", "position", "text", "value")

    def __init__(self, kind: int, text: str, position: int, value: object = None) -> None:
        self.kind = kind
        self.text = text
        self.position = position  # 1-based
        self.value = value

    def shown(self) -> str:
        if self.kind == END:
            return "end of input"
        return f'"{self.text}"' if self.kind != STRING else self.text


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, then one END token; WhereError at a character that starts none."""
    tokens: list[Token] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        start = index
        if char.isspace():
            index += 1
            continue
        if char == "(":
            tokens.append(Token(LPAREN, char, start + 1))
            index += 1
        elif char == ")":
            tokens.append(Token(RPAREN, char, start + 1))
            index += 1
        elif char == ",":
            tokens.append(Token(COMMA, char, start + 1))
            index += 1
        elif char in "=!<>~":
            two = text[index : index + 2]
            if two in ("==", "!=", "<=", ">=", "!~"):
                index += 2
            elif char == "!":
                raise WhereError(start + 1, 'expected "!=" or "!~", got "!"')
            else:
                index += 1
            tokens.append(Token(OP, text[start:index], start + 1))
        elif char == '"':
            index, value = _string(text, index)
            tokens.append(Token(STRING, text[start:index], start + 1, value))
        elif char.isdigit() or (char in "-." and index + 1 < length and text[index + 1].isdigit()):
            index += 1
            while index < length and (text[index] in _NAME_CHARS or text[index].isalnum()):
                index += 1
            word = text[start:index]
            number = _parse_number(word)
            if number is None:  # a bare word such as 10.0.0.1 or 5xx
                tokens.append(Token(NAME, word, start + 1))
            else:
                tokens.append(Token(NUMBER, word, start + 1, number))
        elif char in _NAME_START or char.isalpha():
            index += 1
            while index < length and (text[index] in _NAME_CHARS or text[index].isalnum()):
                index += 1
            tokens.append(Token(NAME, text[start:index], start + 1))
        else:
            shown = char if char.isprintable() else repr(char)[1:-1]
            raise WhereError(start + 1, f'expected a name, a value or an operator, got "{shown}"')
    tokens.append(Token(END, "", length + 1))
    return tokens


def _parse_number(word: str) -> float | None:
    """``word`` as a finite number (``500``, ``-1``, ``0.25``, ``1e3``); None if it is none."""
    if "_" in word:
        return None
    try:
        number = float(word)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _string(text: str, index: int) -> tuple[int, str]:
    """The double-quoted string at ``index``: (index after it, its value)."""
    parts: list[str] = []
    index += 1
    start = index
    while index < len(text):
        char = text[index]
        if char == '"':
            return index + 1, "".join(parts)
        if char == "\\":
            escaped = text[index + 1 : index + 2]
            if escaped not in _ESCAPES:
                raise WhereError(index + 1, 'expected an escape \\" \\\\ \\n \\t or \\r after "\\"')
            parts.append(_ESCAPES[escaped])
            index += 2
            continue
        parts.append(char)
        index += 1
    raise WhereError(start, "expected a closing '\"' for the string that starts here")


# --- the parser ---------------------------------------------------------------------------

Compile = Callable[[str], Matcher]
"""Compiles a ``~`` pattern; raises ValueError with the reason if it cannot."""


class Where:
    """A parsed expression: ``test`` one record, ``apply`` to a batch."""

    def __init__(self, text: str, root: Condition, reads_parsed: bool) -> None:
        self.text = text
        self.root = root
        self.reads_parsed = reads_parsed
        """Whether it reads levels or fields: the codecs must then find everything."""

    def test(self, record: Record) -> bool:
        return self.root.test(record)

    def apply(self, batch: Sequence[Record]) -> list[Record]:
        return self.root.filter(batch if isinstance(batch, list) else list(batch))

    def __repr__(self) -> str:
        return f"Where({self.text!r})"


class _Parser:
    def __init__(self, text: str, compile_regex: Compile) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0
        self.conditions = 0
        self.reads_parsed = False
        self.compile_regex = compile_regex

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != END:
            self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.token
        if token.kind == NAME and token.text.lower() == word:
            self.index += 1
            return True
        return False

    def fail(self, expected: str, token: Token | None = None) -> WhereError:
        token = token or self.token
        return WhereError(token.position, f"expected {expected}, got {token.shown()}")

    def expression(self) -> Condition:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise WhereError(self.token.position, f"nested deeper than {MAX_DEPTH}")
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        self.depth -= 1
        return parts[0] if len(parts) == 1 else Or(parts)

    def conjunction(self) -> Condition:
        parts = [self.negation()]
        while self.keyword("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else And(parts)

    def negation(self) -> Condition:
        if self.keyword("not"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise WhereError(self.token.position, f"nested deeper than {MAX_DEPTH}")
            inner = self.negation()
            self.depth -= 1
            return Not(inner)
        return self.primary()

    def primary(self) -> Condition:
        token = self.token
        if token.kind == LPAREN:
            self.advance()
            inner = self.expression()
            if self.token.kind != RPAREN:
                raise self.fail('")" or "and" or "or"')
            self.advance()
            return inner
        if token.kind == NAME and token.text.lower() == "exists":
            self.advance()
            if self.token.kind != LPAREN:
                raise self.fail('"(" after exists')
            self.advance()
            getter = self.name()
            if self.token.kind != RPAREN:
                raise self.fail('")" after the name')
            self.advance()
            self.count()
            return Leaf(getter, Present())
        return self.comparison()

    def name(self) -> Getter:
        token = self.token
        if token.kind != NAME or token.text.lower() in KEYWORDS:
            raise self.fail("a name (level, source, origin, node, line or a field)")
        self.advance()
        text = token.text
        parts = text.split(".")
        if len(parts) > MAX_NAME_PARTS or "" in parts:
            raise WhereError(token.position, f'expected a field name, got "{text}"')
        getter = Getter(text)
        if getter.reads_parsed():
            self.reads_parsed = True
        return getter

    def count(self) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise WhereError(self.token.position, f"more than {MAX_CONDITIONS} conditions")

    def comparison(self) -> Condition:
        getter = self.name()
        self.count()
        token = self.token
        if self.keyword("contains"):
            value = self.value("contains")
            return Leaf(getter, SearchTest(None, text_of(value.value) or ""))
        if self.keyword("in"):
            return self.membership(getter)
        if self.keyword("not"):  # "x not in (…)", "x not contains …"
            if self.keyword("in"):
                return Not(self.membership(getter))
            if self.keyword("contains"):
                value = self.value("contains")
                return Not(Leaf(getter, SearchTest(None, text_of(value.value) or "")))
            raise self.fail('"in" or "contains" after "not"')
        if token.kind != OP:
            raise self.fail("an operator (= != < <= > >= ~ contains in) after the name", token)
        self.advance()
        op = "=" if token.text == "==" else token.text
        value = self.value(token.text)
        if op in ("~", "!~"):
            text = text_of(value.value) or ""
            try:
                search = self.compile_regex(text)
            except ValueError as error:
                raise WhereError(value.position, str(error)) from None
            condition: Condition = Leaf(getter, SearchTest(search, text))
            return Not(condition) if op == "!~" else condition
        if getter.attribute == "level":
            rank = LEVEL_RANK.get(str(value.value).lower())
            if rank is None:
                raise self.fail(f"a level ({', '.join(LEVELS)})", value)
            return Leaf(getter, LevelRank(op, rank))
        if value.kind == NUMBER and isinstance(value.value, int | float):
            return Leaf(getter, NumberTest(op, float(value.value)))
        return Leaf(getter, TextTest(op, str(value.value)))

    def membership(self, getter: Getter) -> Condition:
        if self.token.kind != LPAREN:
            raise self.fail('"(" after in')
        self.advance()
        texts: set[str] = set()
        numbers: set[float] = set()
        while True:
            value = self.value("in (")
            if len(texts) + len(numbers) >= MAX_IN_VALUES:
                raise WhereError(value.position, f"more than {MAX_IN_VALUES} values in in (…)")
            if getter.attribute == "level":
                level = str(value.value).lower()
                if level not in LEVEL_RANK:
                    raise self.fail(f"a level ({', '.join(LEVELS)})", value)
                texts.add(level)
            elif value.kind == NUMBER and isinstance(value.value, int | float):
                numbers.add(float(value.value))
                texts.add(value.text)
            else:
                texts.add(str(value.value))
            if self.token.kind == COMMA:
                self.advance()
                continue
            if self.token.kind != RPAREN:
                raise self.fail('"," or ")"')
            self.advance()
            return Leaf(getter, InTest(frozenset(texts), frozenset(numbers)))

    def value(self, after: str) -> Token:
        """A value: a "string", a number, or a bare word (``warn``)."""
        token = self.token
        if token.kind in (STRING, NUMBER):
            return self.advance()
        if token.kind == NAME and token.text.lower() not in ("and", "or"):
            self.advance()
            return Token(STRING, token.text, token.position, token.text)
        raise self.fail(f'a value after "{after}"')


def parse_where(text: str, compile_regex: Compile) -> Where:
    """The expression ``text`` parsed; WhereError names the position and what was expected.

    ``compile_regex`` compiles the patterns of ``~`` (RE2: linear time) and raises ValueError
    with the reason for one it cannot take."""
    if len(text) > MAX_CHARS:
        raise WhereError(MAX_CHARS + 1, f"expected at most {MAX_CHARS} characters")
    parser = _Parser(text, compile_regex)
    if parser.token.kind == END:
        raise parser.fail("a condition")
    root = parser.expression()
    if parser.token.kind != END:
        raise parser.fail('"and", "or" or the end')
    return Where(text, root, parser.reads_parsed)


def where_of(text: str, *, bounded: bool = False) -> Where:
    """``text`` parsed with its ``~`` patterns in RE2: what every caller uses. ``bounded``: the
    expression comes from a client, and so do its patterns (``patterns.compile_pattern``)."""
    return parse_where(text, functools.partial(compile_pattern, bounded=bounded))
