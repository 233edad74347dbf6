"""TOML config → typed, validated objects (SPEC §3).

Every error names the file, the key path, what was expected and what was found, and all errors
are reported at once. Unknown keys are errors. ``${VAR}`` and ``${VAR:-default}`` in strings are
expanded from the environment before validation.
"""

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    SecretStr,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from aggregator.config.units import parse_duration, parse_size
from aggregator.errors import AggregatorError
from aggregator.flow.record import LEVELS


class ConfigError(AggregatorError):
    """The config cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def _duration(value: Any) -> float:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise PydanticCustomError(
        "duration",
        'expected a duration such as "250ms", "1s" or "5m", got {got}',
        {"got": _show(value)},
    )


def _size(value: Any) -> int:
    if isinstance(value, int | str):
        try:
            return parse_size(value)
        except ValueError:
            pass
    raise PydanticCustomError(
        "size",
        'expected a size such as "64KiB", "100MiB" or a number of bytes, got {got}',
        {"got": _show(value)},
    )


def _host_port(value: Any) -> str:
    """``HOST:PORT`` with a port in 0..65535; IPv6 hosts in brackets."""
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host and port.isdigit() and int(port) <= 65535:
            return value
    raise PydanticCustomError("host_port", 'expected "HOST:PORT", got {got}', {"got": _show(value)})


def _regex(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "regex", "expected a regular expression, got {got}", {"got": _show(value)}
        )
    try:
        re.compile(value)
    except re.error as error:
        raise PydanticCustomError(
            "regex",
            "expected a regular expression, got {got}: {why}",
            {"got": _show(value), "why": str(error)},
        ) from error
    return value


def _file_mode(value: Any) -> int:
    """A Unix file mode: an octal string ("0660") or a TOML octal integer (0o660); never
    writable by everyone, since anyone could then inject log lines."""
    mode = None
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        mode = int(value, 8)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        mode = value
    if mode is None:
        raise PydanticCustomError(
            "file_mode", 'expected a file mode such as "0660", got {got}', {"got": _show(value)}
        )
    if mode & 0o002:
        raise PydanticCustomError(
            "file_mode",
            "expected a mode that others cannot write, got {got}",
            {"got": f'"{mode:04o}"'},
        )
    return mode


def _workers(value: Any) -> int | str:
    if value == "auto" or (type(value) is int and 0 <= value <= 64):
        return value  # type: ignore[no-any-return]
    raise PydanticCustomError(
        "workers", 'expected "auto" or a number of processes, 0 to 64, got {got}',
        {"got": _show(value)},
    )  # fmt: skip


Duration = Annotated[float, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(_size)]
HostPort = Annotated[str, BeforeValidator(_host_port)]
Regex = Annotated[str, BeforeValidator(_regex)]
Workers = Annotated[int | Literal["auto"], BeforeValidator(_workers)]
FileMode = Annotated[int, BeforeValidator(_file_mode)]
Level = Literal["trace", "debug", "info", "warn", "error", "fatal"]
CodecName = Literal["raw", "json", "logfmt", "syslog", "regex", "auto"]
FormatName = Literal["text", "json", "raw"]

assert set(Level.__args__) == set(LEVELS)  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AggregatorSection(_Strict):
    state_dir: Path = Path(".aggregator")
    order_window: Duration = 0.25
    late: Literal["emit", "drop"] = "emit"
    idle_timeout: Duration = 1.0
    checkpoint_interval: Duration = 1.0
    parse_workers: Workers = "auto"
    """Processes that parse large reads (catch-up); 0: parse everything on the event loop."""


class TimestampSpec(_Strict):
    field: str | None = None
    format: str = "auto"


class MultilineSpec(_Strict):
    start: Regex
    timeout: Duration = 1.0
    max_lines: PositiveInt = 1000


class LineSourceConfig(_Strict):
    """What every source that reads lines shares: how bytes become records."""

    codec: CodecName = "auto"
    pattern: Regex | None = None
    timestamp: TimestampSpec = TimestampSpec()
    multiline: MultilineSpec | None = None
    max_line_bytes: Annotated[Size, Field(gt=0)] = 1 << 20


class FileSourceConfig(LineSourceConfig):
    type: Literal["file"]
    paths: Annotated[list[str], Field(min_length=1)]
    exclude: list[str] = []
    start_at: Literal["end", "beginning"] = "end"
    follow: bool = True
    rotate_wait: Duration = 5.0  # keep reading a rotated-away (or deleted) file this long
    close_idle: Duration = (
        60.0  # close a watched file quiet this long (reopened on change); 0: never
    )


class StdinSourceConfig(LineSourceConfig):
    type: Literal["stdin"]


class TlsSpec(_Strict):
    cert: Path
    key: Path


class StreamListenerConfig(LineSourceConfig):
    """What stream listeners (TCP, Unix stream) share."""

    framing: Literal["newline", "octet-counted"] = "newline"
    max_connections: PositiveInt = 1000
    idle_timeout: Duration = 0.0  # close a connection silent this long; 0: never


class TcpSourceConfig(StreamListenerConfig):
    type: Literal["tcp"]
    listen: HostPort
    tls: TlsSpec | None = None


class UdpSourceConfig(LineSourceConfig):
    type: Literal["udp"]
    listen: HostPort
    max_datagram_bytes: Annotated[Size, Field(gt=0)] = 65535


class UnixSourceConfig(StreamListenerConfig):
    type: Literal["unix"]
    path: Path
    socket: Literal["stream", "datagram"] = "stream"
    mode: FileMode = 0o660
    max_datagram_bytes: Annotated[Size, Field(gt=0)] = 65535


SourceConfig = Annotated[
    FileSourceConfig | StdinSourceConfig | TcpSourceConfig | UdpSourceConfig | UnixSourceConfig,
    Field(discriminator="type"),
]


class FilterSpec(_Strict):
    sources: list[str] = []
    level: Level | None = None
    grep: Regex | None = None


class _Sink(_Strict):
    filter: FilterSpec | None = None


class StdoutSinkConfig(_Sink):
    type: Literal["stdout"]
    format: FormatName = "text"


class RotateSpec(_Strict):
    max_bytes: Annotated[Size, Field(gt=0)]
    keep: PositiveInt = 5


class FileSinkConfig(_Sink):
    type: Literal["file"]
    path: Path
    format: FormatName = "json"
    rotate: RotateSpec | None = None
    fsync: Literal["always", "interval", "never"] = "interval"


class WebSocketSinkConfig(_Sink):
    """The live stream for WebSocket subscribers and the browser page, on one port (SPEC §7)."""

    type: Literal["websocket"]
    listen: HostPort
    replay: NonNegativeInt = 1000  # last N records kept for new and resuming subscribers
    auth_token: SecretStr = SecretStr("")  # shown as ****** by `check`; never logged
    allowed_origins: list[str] = []  # besides the page's own origin
    allow_anonymous: bool = False  # a non-loopback listen without a token is refused without it
    max_subscribers: PositiveInt = 1000
    slow_subscriber: Literal["drop", "disconnect"] = "drop"
    subscriber_buffer: Annotated[Size, Field(gt=0)] = 4 << 20  # bytes queued for one subscriber
    compression: bool = False  # permessage-deflate: costs the server CPU per subscriber
    ping_interval: Duration = 20.0  # a subscriber that does not answer a ping in time is closed


SinkConfig = Annotated[
    StdoutSinkConfig | FileSinkConfig | WebSocketSinkConfig, Field(discriminator="type")
]


class Config(_Strict):
    """A whole pipeline. Sources and sinks keep their order in the file: ties in the merge go
    to the source that comes first."""

    aggregator: AggregatorSection = AggregatorSection()
    sources: Annotated[dict[str, SourceConfig], Field(min_length=1)]
    sinks: Annotated[dict[str, SinkConfig], Field(min_length=1)]


# --- loading -------------------------------------------------------------------------------

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


def parse_config(
    data: Mapping[str, Any], name: str, env: Mapping[str, str] | None = None
) -> Config:
    """Validate parsed TOML; ``name`` (the file) starts every error line."""
    errors: list[str] = []
    expanded = expand_env(dict(data), os.environ if env is None else env, "", errors)
    try:
        config = Config.model_validate(expanded)
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
            form = source.timestamp.format
            if form != "auto" and "%" not in form:
                errors.append(
                    f'sources.{name}.timestamp.format: expected "auto" or a strptime pattern '
                    f'such as "%d/%m/%Y %H:%M:%S", got "{form}"'
                )
    for section in ("sources", "sinks"):
        for key in getattr(config, section):
            if not key or not key.isprintable():
                errors.append(f"{section}.{key!r}: expected a printable name")
    listens = [
        (f"{kind}.{name}.listen", part.listen)
        for kind, parts in (("sources", config.sources), ("sinks", config.sinks))
        for name, part in parts.items()
        if isinstance(part, TcpSourceConfig | UdpSourceConfig | WebSocketSinkConfig)
    ]
    for key, listen in listens:
        host = listen.rpartition(":")[0].strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost" and not re.fullmatch(r"[A-Za-z0-9.-]+", host):
                errors.append(f'{key}: expected "HOST:PORT" with a valid host, got {listen!r}')
    for name, sink in config.sinks.items():
        if isinstance(sink, WebSocketSinkConfig) and not (
            sink.auth_token.get_secret_value() or sink.allow_anonymous or is_loopback(sink.listen)
        ):
            errors.append(
                f"sinks.{name}.listen: {sink.listen} is reachable from other machines: set "
                "auth_token, or allow_anonymous = true to serve the stream to anyone"
            )
    return errors


def is_loopback(listen: str) -> bool:
    """Whether a ``HOST:PORT`` listens on this machine only."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


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
    """One pydantic error as ``key.path: expected …, got …``."""
    kind = detail["type"]
    path = _key_path(tuple(detail["loc"]), kind)
    got = _show(detail.get("input"))
    context = detail.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "literal_error":
        return f"{path}: expected one of {context.get('expected', '?')}, got {got}"
    if kind == "union_tag_invalid":
        expected = context.get("expected_tags", "?")
        return f"{path}.type: expected one of {expected}, got {_show(context.get('tag'))}"
    if kind == "union_tag_not_found":
        return f"{path}.type: required key is missing"
    if kind in ("duration", "size", "host_port", "regex", "file_mode", "workers"):
        return f"{path}: {detail['msg']}"
    message = str(detail["msg"])
    message = message[0].lower() + message[1:] if message else message
    return f"{path}: {message}, got {got}"
