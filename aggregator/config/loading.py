"""Loading a config: TOML, ``${VAR}`` expansion, validation, and errors that name the key.

Every error names the file, the key path, what was expected and what was found, and all errors
are reported at once. ``${VAR}`` and ``${VAR:-default}`` in strings are expanded from the
environment before validation.
"""

import dataclasses
import os
import re
import types
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin, get_type_hints

from aggregator.config.addresses import is_loopback
from aggregator.config.plain import plain_config
from aggregator.config.schema import Config, LineSourceConfig, WebSocketSinkConfig
from aggregator.config.types import show
from aggregator.errors import AggregatorError
from aggregator.masking import MASK, SECRET_KEYS, mask_text

if TYPE_CHECKING:
    from pydantic import TypeAdapter


class ConfigError(AggregatorError):
    """The config cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: Mapping[str, str], path: str, errors: list[str]) -> Any:
    """``value`` with ``${VAR}`` and ``${VAR:-default}`` expanded in every string inside it."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and (env[name] or default is None):
                return env[name]
            if default is not None:
                return default
            errors.append(
                f"{path}: environment variable {name} is not set (use ${{{name}:-default}})"
            )
            return ""

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, dict):
        return {key: expand_env(item, env, _join(path, key), errors) for key, item in value.items()}
    if isinstance(value, list):
        return [
            expand_env(item, env, f"{path}[{index}]", errors) for index, item in enumerate(value)
        ]
    return value


@cache
def _validator() -> "TypeAdapter[Config]":
    """What validates a file's tables into ``Config``: pydantic, loaded only for a file."""
    from pydantic import TypeAdapter

    return TypeAdapter(Config)


def parse_config(
    data: Mapping[str, Any], name: str, env: Mapping[str, str] | None = None
) -> Config:
    """Validate parsed TOML; ``name`` (the file) starts every error line."""
    errors: list[str] = []
    expanded = expand_env(dict(data), os.environ if env is None else env, "", errors)
    config = plain_config(expanded)  # most files: without loading pydantic (config/plain.py)
    if config is None:
        from pydantic import ValidationError

        try:
            config = _validator().validate_python(expanded)
        except ValidationError as error:
            errors.extend(_describe(detail) for detail in error.errors())
            config = None
    if config is not None:
        errors.extend(_check_relations(config))
    if errors:
        raise ConfigError([f"{name}: {line}" for line in errors])
    assert config is not None
    return config


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the TOML file at ``path``; ConfigError lists every problem."""
    import tomllib  # here: `tail` and `--version` read no TOML (5-15 ms of start-up)

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from error
    except UnicodeDecodeError as error:
        raise ConfigError([f"{path}: not UTF-8 text: {error}"]) from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{path}: not valid TOML: {error}"]) from error
    return parse_config(data, str(path), env)


def _check_relations(config: Config) -> list[str]:
    """What one key's validation cannot see: names, and keys that depend on each other."""
    errors = []
    for name, source in config.sources.items():
        if isinstance(source, LineSourceConfig):
            if source.codec == "regex" and source.pattern is None:
                errors.append(f'sources.{name}.pattern: required when codec = "regex"')
            if source.inner_codec == "regex" and source.pattern is None:
                errors.append(f'sources.{name}.pattern: required when inner_codec = "regex"')
            form = source.timestamp.format
            if form != "auto" and ("%" not in form or _bad_directive(form)):
                why = _bad_directive(form)
                errors.append(
                    f'sources.{name}.timestamp.format: expected "auto" or a strptime pattern '
                    f'such as "%d/%m/%Y %H:%M:%S", got "{form}"{f" ({why})" if why else ""}'
                )
    for section in ("sources", "sinks"):
        for key in getattr(config, section):
            if not key or not key.isprintable():
                errors.append(f"{section}.{key!r}: expected a printable name")
    for name, sink in config.sinks.items():
        if isinstance(sink, WebSocketSinkConfig) and not (
            sink.auth_token.get_secret_value() or sink.allow_anonymous or is_loopback(sink.listen)
        ):
            errors.append(
                f"sinks.{name}.listen: {sink.listen} is reachable from other machines: set "
                "auth_token, or allow_anonymous = true to serve the stream to anyone"
            )
    return errors


def _bad_directive(form: str) -> str | None:
    """What Python's ``strptime`` says of a pattern it cannot use (``%Q``), else None: every
    time would fail to parse, and no record would have its own time."""
    from datetime import datetime  # here: a config without a pattern never needs it

    try:
        datetime.strptime("", form)
    except ValueError as error:
        reason = str(error)
        return None if reason.startswith("time data") else reason
    return None


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


_TAGGED = ("sources", "sinks")


def _key_path(loc: tuple[int | str, ...], error_type: str) -> str:
    parts = list(loc)
    # A discriminated union puts the tag ("file", "stdout", …) into the path after the name.
    if len(parts) >= 3 and parts[0] in _TAGGED and not error_type.startswith("union_tag"):
        del parts[2]
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path or "(top level)"


def _describe(detail: Mapping[str, Any]) -> str:
    """One pydantic error as ``key.path: expected …, got …``, its secrets masked."""
    return mask_text(_description(detail))


def _description(detail: Mapping[str, Any]) -> str:
    kind = detail["type"]
    path = _key_path(tuple(detail["loc"]), kind)
    got = show(detail.get("input"))
    if SECRET_KEYS.intersection(str(part) for part in detail["loc"]):
        got = MASK  # a secret given with the wrong type is still a secret
    context = detail.get("ctx") or {}
    # Tables are dataclasses: pydantic calls an unknown key an unexpected keyword argument.
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        import difflib  # here: only a config with an error needs it

        loc = tuple(detail["loc"])
        nearest = difflib.get_close_matches(str(loc[-1]), _known_keys(loc[:-1]), n=1)
        return f"{path}: unknown key" + (f" (did you mean {nearest[0]}?)" if nearest else "")
    if kind in ("missing", "missing_keyword_only_argument", "missing_argument"):
        return f"{path}: required key is missing"
    if kind == "literal_error":
        return f"{path}: expected one of {context.get('expected', '?')}, got {got}"
    if kind == "union_tag_invalid":
        expected = context.get("expected_tags", "?")
        return f"{path}.type: expected one of {expected}, got {show(context.get('tag'))}"
    if kind == "union_tag_not_found":
        return f"{path}.type: required key is missing"
    if kind in ("duration", "size", "host_port", "regex", "file_mode", "workers", "constraint",
                "nats_name", "nats_url", "stream_url", "http_url"):  # fmt: skip
        return f"{path}: {detail['msg']}"
    message = str(detail["msg"])
    message = message[0].lower() + message[1:] if message else message
    return f"{path}: {message}, got {got}"


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys of the table at ``loc`` (a pydantic error's path, the tag of a source or sink
    included), to suggest the nearest to an unknown one; [] where it cannot be told."""
    table: Any = Config
    parts = list(loc)
    while True:
        origin = get_origin(table)
        if origin in (Union, types.UnionType):
            members = [member for member in get_args(table) if member is not type(None)]
            if len(members) == 1:  # an optional table
                table = members[0]
                continue
            if not parts:
                return []
            tag = parts.pop(0)  # a source's or sink's type: which table of the union
            table = next((m for m in members if tag in _type_tags(m)), None)
        elif origin is dict:
            if not parts:
                return []
            parts.pop(0)  # the part's name
            table = get_args(table)[1]
        elif dataclasses.is_dataclass(table):
            if not parts:
                return list(table.__dataclass_fields__)
            table = get_type_hints(table).get(str(parts.pop(0)))
        else:
            return []
        if table is None:
            return []


def _type_tags(table: Any) -> tuple[object, ...]:
    hint = get_type_hints(table).get("type") if dataclasses.is_dataclass(table) else None
    return get_args(hint) if get_origin(hint) is Literal else ()
