"""A config file's tables validated without pydantic, when nothing in them needs pydantic.

Importing pydantic and building the validator of every table cost ``run -c`` most of its
start (bench/README.md). Most files hold only values of the very types their keys take:
``plain_config`` builds those from the same type hints and the same marks (``Check``,
``Constraint``, ``Tagged``), and gives up (None) on anything else — a key it does not know, a
value of another type, a check that fails — leaving the file to pydantic, whose result and
errors stay the reference (tests/config/test_plain.py holds this path to them).
"""

import dataclasses
import types
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from aggregator.config.schema import Config
from aggregator.config.types import Check, Constraint, Secret, Tagged


class _Unsure(Exception):
    """Not for this path: pydantic decides (and says what is wrong, if anything is)."""


def plain_config(data: Mapping[str, Any]) -> Config | None:
    """``data`` (parsed TOML, variables expanded) as a ``Config``, as pydantic would make it;
    None where pydantic must look (an error, or a value it would convert)."""
    try:
        config = _table(Config, data)
    except Exception:  # _Unsure, or what a check raised: pydantic says it properly
        return None
    assert isinstance(config, Config)
    return config


@cache
def _hints(table: Any) -> dict[str, Any]:
    """A table's keys and their types, its marks included."""
    hints = get_type_hints(table, include_extras=True)
    return {key.name: hints[key.name] for key in dataclasses.fields(table)}


def _table(table: type, value: object) -> object:
    if type(value) is not dict:
        raise _Unsure
    hints = _hints(table)
    values = {}
    for key, item in value.items():
        hint = hints.get(key)
        if hint is None:  # unknown: pydantic names it, and the nearest key
            raise _Unsure
        values[key] = _value(hint, item, strict=False)
    return table(**values)  # a missing required key raises TypeError: pydantic names it


_EXACT: dict[type, Callable[[Any], object]] = {str: str, int: int, bool: bool, Path: Path}


def _value(hint: Any, value: Any, strict: bool) -> object:
    """``value`` as a key of type ``hint`` takes it. ``strict``: a member of a union, where
    pydantic takes a value of the member's own type first (a float key takes no int)."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *marks = get_args(hint)
        if isinstance(marks[-1], Tagged):
            return _tagged(base, value)
        return _marked(base, marks, value, strict)
    if origin is Literal:
        for option in get_args(hint):
            if type(option) is type(value) and option == value:
                return option
        raise _Unsure
    if origin in (Union, types.UnionType):
        for member in get_args(hint):  # the first member of the value's own type
            if member is type(None):
                if value is None:
                    return None
                continue
            try:
                return _value(member, value, strict=True)
            except _Unsure:
                continue
        raise _Unsure
    if origin is list:
        if type(value) is not list:
            raise _Unsure
        (item,) = get_args(hint)
        return [_value(item, element, strict=False) for element in value]
    if origin is dict:
        if type(value) is not dict:
            raise _Unsure
        key_type, item = get_args(hint)
        if key_type is not str:
            raise _Unsure
        return {key: _value(item, element, strict=False) for key, element in value.items()}
    if hint is Any:
        return value
    if hint is float:
        if type(value) is float or (type(value) is int and not strict):
            return float(value)
        raise _Unsure
    if hint is Secret:
        if type(value) is not str:
            raise _Unsure
        return Secret(value)
    if hint is Path:
        if type(value) is not str:
            raise _Unsure
        return Path(value)
    if hint in (str, int, bool):
        if type(value) is not hint:
            raise _Unsure
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _table(hint, value)
    raise _Unsure  # a type this path does not know


def _marked(base: Any, marks: list[Any], value: Any, strict: bool) -> object:
    """As pydantic applies ``Annotated[base, *marks]``: each mark wraps those before it, so
    the last mark's ``Check`` runs first and the first mark's ``Constraint`` first."""
    if not marks:
        return _value(base, value, strict)
    *inner, mark = marks
    if isinstance(mark, Check):
        return _marked(base, inner, mark.function(value), strict)
    if isinstance(mark, Constraint):
        checked = _marked(base, inner, value, strict)
        if not mark.test(checked):
            raise _Unsure
        return checked
    raise _Unsure


def _tagged(union: Any, value: Any) -> object:
    """A source or sink: the table its ``type`` names."""
    if type(value) is not dict:
        raise _Unsure
    tag = value.get("type")
    for table in get_args(union):
        if tag in get_args(_hints(table).get("type")):
            return _table(table, value)
    raise _Unsure
