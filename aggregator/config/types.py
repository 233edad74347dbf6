"""The scalar types of the config: durations, sizes, addresses, patterns, modes, secrets.

Each is an ``Annotated`` type whose validator says what was expected and what was found, in
the words ``aggregator.config.loading`` prints after the key path. The annotations are this
module's own (``Check``, ``Constraint``, ``Tagged``): pydantic reads them through
``__get_pydantic_core_schema__`` when a config file is validated, and is imported only then.
Nothing here imports it, so ``aggregator tail`` and ``--version``, which build their config
without a file, start without it (about 80 ms).
"""

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aggregator.config.addresses import BadHost, split_host_port
from aggregator.config.units import parse_duration, parse_size
from aggregator.record.formats import FormatName
from aggregator.record.levels import Level

__all__ = [
    "CodecName",
    "Duration",
    "FieldValue",
    "FileMode",
    "FormatName",
    "HostPort",
    "HttpUrl",
    "InnerCodecName",
    "Level",
    "NatsName",
    "NatsUrls",
    "NonEmpty",
    "NonNegativeInt",
    "Positive",
    "PositiveInt",
    "Regex",
    "Secret",
    "Size",
    "StreamUrl",
    "Tagged",
    "WhereText",
    "Workers",
    "show",
]

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema


def _error(kind: str, message: str, context: dict[str, Any]) -> Exception:
    """A validation error of ``kind`` that loading shows as ``message`` after the key path."""
    from pydantic_core import PydanticCustomError  # loaded already: pydantic is validating

    return PydanticCustomError(kind, message, context)


class Check:
    """An ``Annotated`` mark: run ``function`` on the raw value before pydantic's own check."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function

    def __get_pydantic_core_schema__(
        self, source: Any, handler: "GetCoreSchemaHandler"
    ) -> "CoreSchema":
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(self.function, handler(source))


class Constraint:
    """An ``Annotated`` mark: after pydantic's own check, ``test`` the value; if it fails,
    the error says ``expected`` (and what was found)."""

    def __init__(self, test: Callable[[Any], bool], expected: str) -> None:
        self.test = test
        self.expected = expected

    def _check(self, value: Any) -> Any:
        if not self.test(value):
            raise _error(
                "constraint", f"expected {self.expected}, got {{got}}", {"got": show(value)}
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: "GetCoreSchemaHandler"
    ) -> "CoreSchema":
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self._check, handler(source))


class Tagged:
    """An ``Annotated`` mark on a union of tables: the ``type`` key says which one it is."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: "GetCoreSchemaHandler"
    ) -> "CoreSchema":
        from pydantic import Field

        return handler.generate_schema(Annotated[source, Field(discriminator="type")])


class Secret:
    """A string never shown: ``check`` prints it as ``**********``, and logs never see it."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: "GetCoreSchemaHandler"
    ) -> "CoreSchema":
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(cls, core_schema.str_schema())


def show(value: Any) -> str:
    """A value as an error message shows it: strings quoted, tables and arrays named."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _duration(value: Any) -> float:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise _error(
        "duration",
        'expected a duration such as "250ms", "1s" or "5m", got {got}',
        {"got": show(value)},
    )


def _size(value: Any) -> int:
    if isinstance(value, int | str):
        try:
            return parse_size(value)
        except ValueError:
            pass
    raise _error(
        "size",
        'expected a size such as "64KiB", "100MiB" or a number of bytes, got {got}',
        {"got": show(value)},
    )


def _host_port(value: Any) -> str:
    """``HOST:PORT`` with a port in 0..65535 and a valid host; IPv6 hosts in brackets."""
    if isinstance(value, str):
        try:
            split_host_port(value)
        except BadHost:
            raise _error(
                "host_port", 'expected "HOST:PORT" with a valid host, got {got}',
                {"got": show(value)},
            ) from None  # fmt: skip
        except ValueError:
            pass
        else:
            return value
    raise _error("host_port", 'expected "HOST:PORT", got {got}', {"got": show(value)})


def _regex(value: Any) -> str:
    if not isinstance(value, str):
        raise _error("regex", "expected a regular expression, got {got}", {"got": show(value)})
    try:
        re.compile(value)
    except re.error as error:
        raise _error(
            "regex",
            "expected a regular expression, got {got}: {why}",
            {"got": show(value), "why": str(error)},
        ) from error
    return value


def _where(value: Any) -> str:
    """A ``where`` expression (``aggregator.record.where``): parsed here so that a config with a
    wrong one is refused with its position."""
    from aggregator.record.where import WhereError, where_of

    if not isinstance(value, str):
        raise _error("where", "expected a where expression, got {got}", {"got": show(value)})
    try:
        where_of(value)
    except WhereError as error:
        raise _error("where", "{why}", {"why": str(error)}) from error
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
        raise _error(
            "file_mode", 'expected a file mode such as "0660", got {got}', {"got": show(value)}
        )
    if mode & 0o002:
        raise _error(
            "file_mode",
            "expected a mode that others cannot write, got {got}",
            {"got": f'"{mode:04o}"'},
        )
    return mode


def _workers(value: Any) -> int | str:
    if value == "auto" or (type(value) is int and 0 <= value <= 64):
        return value  # type: ignore[no-any-return]
    raise _error(
        "workers", 'expected "auto" or a number of processes, 0 to 64, got {got}',
        {"got": show(value)},
    )  # fmt: skip


_NATS_NAME = r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*"  # compiled on first use, not at import


def _nats_name(value: Any) -> str:
    """A subject prefix, stream or consumer name: tokens of letters, digits, ``_`` and ``-``."""
    if isinstance(value, str) and re.fullmatch(_NATS_NAME, value):
        return value
    raise _error(
        "nats_name",
        "expected a name of letters, digits, _ and - (no spaces, no * or >), got {got}",
        {"got": show(value)},
    )


def _nats_urls(value: Any) -> list[str]:
    """One server URL or a list of them: ``nats://HOST:PORT`` (or ``tls://``)."""
    urls = [value] if isinstance(value, str) else value
    if isinstance(urls, list) and urls and all(isinstance(url, str) for url in urls):
        for url in urls:
            scheme, sep, rest = url.partition("://")
            if not (sep and scheme in ("nats", "tls") and rest):
                break
        else:
            return list(urls)
    raise _error(
        "nats_url",
        'expected "nats://HOST:PORT" (or tls://) or a list of them, got {got}',
        {"got": show(value)},
    )


def _stream_url(value: Any) -> str:
    """Another aggregator's stream: ``ws://HOST:PORT/ws`` (or wss://, http://, https://), with
    filters in its query."""
    if isinstance(value, str):
        scheme, sep, rest = value.partition("://")
        if sep and scheme in ("ws", "wss", "http", "https") and rest and rest[0] not in "/?":
            return value
    raise _error(
        "stream_url", 'expected "ws://HOST:PORT/ws" (filters in its query), got {got}',
        {"got": show(value)},
    )  # fmt: skip


def _http_url(value: Any) -> str:
    """``http://HOST[:PORT][/PATH]`` or https://, without a query."""
    if isinstance(value, str):
        scheme, sep, rest = value.partition("://")
        if sep and scheme in ("http", "https") and rest and rest[0] not in "/?" and "?" not in rest:
            return value
    raise _error(
        "http_url", 'expected "http://HOST:PORT" (or https://), got {got}', {"got": show(value)}
    )


Duration = Annotated[float, Check(_duration)]
HttpUrl = Annotated[str, Check(_http_url)]
NatsName = Annotated[str, Check(_nats_name)]
NatsUrls = Annotated[list[str], Check(_nats_urls)]
StreamUrl = Annotated[str, Check(_stream_url)]
Size = Annotated[int, Check(_size)]
HostPort = Annotated[str, Check(_host_port)]
Regex = Annotated[str, Check(_regex)]
WhereText = Annotated[str, Check(_where)]
Workers = Annotated[int | Literal["auto"], Check(_workers)]
FileMode = Annotated[int, Check(_file_mode)]
Positive = Constraint(lambda value: value > 0, "a number above 0")
NonEmpty = Constraint(lambda value: len(value) > 0, "at least one entry")
PositiveInt = Annotated[int, Positive]
NonNegativeInt = Annotated[int, Constraint(lambda value: value >= 0, "0 or more")]
"""For a size that must be above 0: ``Annotated[Size, Positive]``."""
CodecName = Literal["raw", "json", "logfmt", "syslog", "regex", "cri", "docker", "auto"]
InnerCodecName = Literal["raw", "json", "logfmt", "syslog", "regex", "auto"]
"""What reads a container's messages (``inner_codec``): any codec but the envelopes."""
FieldValue = str | int | float | bool
