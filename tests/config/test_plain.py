"""The config validated without pydantic (config/plain.py): where it gives a config, pydantic's
very one; where pydantic would convert a value or say an error, it leaves the file to it."""

import tomllib
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config.loading import _validator, expand_env
from aggregator.config.plain import plain_config
from aggregator.config.schema import SinkConfig, SourceConfig, _Strict
from aggregator.config.types import Secret

ROOT = Path(__file__).parents[2]
MINIMAL: dict[str, Any] = {
    "sources": {"app": {"type": "file", "paths": ["/tmp/*.log"]}},
    "sinks": {"out": {"type": "stdout"}},
}


def typed(value: Any) -> Any:
    """``value`` with the type of every part in it: 5 and 5.0 differ, as do str and Path."""
    if isinstance(value, _Strict):
        names = type(value).__dataclass_fields__
        return (type(value).__name__, tuple((name, typed(getattr(value, name))) for name in names))
    if isinstance(value, dict):
        return ("dict", tuple((key, typed(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("list", tuple(typed(item) for item in value))
    if isinstance(value, Secret):
        return ("Secret", value.get_secret_value())
    return (type(value).__name__, value)


def pydantic_config(data: dict[str, Any]) -> Any:
    """pydantic's config for ``data``, or None where it finds an error."""
    from pydantic import ValidationError

    try:
        return _validator().validate_python(data)
    except ValidationError:
        return None


def assert_same_as_pydantic(data: dict[str, Any]) -> Any:
    plain = plain_config(data)
    reference = pydantic_config(data)
    if reference is None:
        assert plain is None, data
    elif plain is not None:
        assert typed(plain) == typed(reference), data
    return plain


def documented_configs() -> list[tuple[str, dict[str, Any]]]:
    """config.example.toml and every config of examples/."""
    paths = [ROOT / "config.example.toml", *sorted((ROOT / "examples").rglob("*.toml"))]
    return [(str(path.relative_to(ROOT)), tomllib.loads(path.read_text())) for path in paths]


@pytest.mark.parametrize(("name", "data"), documented_configs())
def test_a_documented_config_is_pydantic_s_own(name: str, data: dict[str, Any]) -> None:
    """Every config of examples/ and the example: what this path gives is what pydantic gives."""
    assert_same_as_pydantic(expand_env(data, {}, "", []))


def test_the_example_config_needs_no_pydantic() -> None:
    """config.example.toml, as `run -c` reads it, takes this path (the start-up it saves)."""
    data = tomllib.loads((ROOT / "config.example.toml").read_text())
    assert assert_same_as_pydantic(expand_env(data, {}, "", [])) is not None


def with_source(**keys: Any) -> dict[str, Any]:
    return {**MINIMAL, "sources": {"app": {"type": "file", "paths": ["/tmp/*.log"], **keys}}}


@pytest.mark.parametrize(
    ("data", "taken"),
    [
        (MINIMAL, True),
        ({**MINIMAL, "aggregator": {"order_window": "2s", "parse_workers": 0}}, True),
        ({**MINIMAL, "aggregator": {"order_window": 2}}, False),  # a duration is a string
        ({**MINIMAL, "aggregator": {"parse_workers": "auto"}}, True),
        (with_source(max_line_bytes="64KiB", fields={"a": 1, "b": True, "c": 2.5, "d": "x"}), True),
        (with_source(max_line_bytes=True), False),  # a bool for a size: pydantic says
        (with_source(max_line_bytes=0), False),  # a constraint fails: pydantic says
        (with_source(start_at="middle"), False),
        (with_source(bogus=1), False),  # an unknown key
        (with_source(paths=["a", 3]), False),
        (with_source(paths=[]), False),
        ({**MINIMAL, "sources": {"q": {"type": "queue"}}}, False),
        ({**MINIMAL, "sinks": {"f": {"type": "file"}}}, False),  # a required key missing
        ({"sources": MINIMAL["sources"]}, False),
        ({**MINIMAL, "sinks": {"o": {"type": "stdout", "filter": {"level": "warn"}}}}, True),
        ({**MINIMAL, "sinks": {"o": {"type": "stdout", "filter": {"grep": "("}}}}, False),
    ],
)  # fmt: skip
def test_a_value_pydantic_would_convert_or_refuse_is_left_to_it(
    data: dict[str, Any], taken: bool
) -> None:
    """Exact types are taken here; an error, or a value pydantic converts, goes to pydantic."""
    assert (assert_same_as_pydantic(data) is not None) is taken


SCALARS = st.one_of(
    st.integers(-3, 70000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.sampled_from(["1s", "250ms", "64KiB", "auto", "end", "json", "info", "", "x", "0644"]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
)
FILE_KEYS = ["codec", "start_at", "max_line_bytes", "fields", "exclude", "follow", "timestamp",
             "multiline", "paths", "tail_lines", "pattern", "bogus"]  # fmt: skip
SINK_KEYS = ["format", "path", "listen", "replay", "filter", "bogus"]
TOP_KEYS = ["order_window", "late", "idle_timeout", "parse_workers", "state_dir", "bogus"]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(FILE_KEYS), VALUES, max_size=3),
    st.dictionaries(st.sampled_from(TOP_KEYS), VALUES, max_size=2),
    st.sampled_from(["stdout", "file", "websocket", "tcp"]),
    st.dictionaries(st.sampled_from(SINK_KEYS), VALUES, max_size=2),
)
def test_whatever_a_file_holds_this_path_agrees_with_pydantic(
    source: dict[str, Any], top: dict[str, Any], sink_type: str, sink: dict[str, Any]
) -> None:
    """Random keys and values: this path gives pydantic's config, or leaves the file to it."""
    data = {
        "aggregator": top,
        "sources": {"app": {"type": "file", "paths": ["*.log"], **source}},
        "sinks": {"out": {"type": sink_type, **sink}},
    }
    assert_same_as_pydantic(data)


def tables(union: Any) -> dict[str, list[str]]:
    """Each table of a tagged union (sources, sinks) by its ``type``, with its keys."""
    found = {}
    for table in get_args(get_args(union)[0]):
        hints = get_type_hints(table)
        found[get_args(hints["type"])[0]] = [key for key in hints if key != "type"]
    return found


SOURCES, SINKS = tables(SourceConfig), tables(SinkConfig)
REQUIRED = {"paths": ["*.log"], "listen": "127.0.0.1:9000", "path": "out.log"}
"""Values that make a table's required keys valid, so that the others get looked at."""


@st.composite
def a_part(draw: st.DrawFn, kinds: dict[str, list[str]]) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(kinds)))
    keys = kinds[kind]
    part = {key: value for key, value in REQUIRED.items() if key in keys and draw(st.booleans())}
    part.update(draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=3)))
    return {"type": kind, **part}


@settings(max_examples=300, deadline=None)
@given(a_part(SOURCES), a_part(SINKS))
def test_every_source_and_sink_table_agrees_with_pydantic(
    source: dict[str, Any], sink: dict[str, Any]
) -> None:
    """Every table of every source and sink type, random values for any of its keys: this
    path gives pydantic's config, or leaves the file to it."""
    assert_same_as_pydantic({"sources": {"a": source}, "sinks": {"b": sink}})
