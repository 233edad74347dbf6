"""The scalar types of the config: durations, sizes, addresses, patterns, modes.

Each is a pydantic ``Annotated`` type whose validator says what was expected and what was
found, in the words ``aggregator.config.loading`` prints after the key path.
"""

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from aggregator.config.addresses import BadHost, split_host_port
from aggregator.config.units import parse_duration, parse_size
from aggregator.flow.levels import Level
from aggregator.sinks.formats import FormatName

__all__ = [
    "CodecName",
    "Duration",
    "FileMode",
    "FormatName",
    "HostPort",
    "Level",
    "NatsName",
    "NatsUrls",
    "Regex",
    "Size",
    "StreamUrl",
    "Workers",
    "show",
]


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
    raise PydanticCustomError(
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
    raise PydanticCustomError(
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
            raise PydanticCustomError(
                "host_port", 'expected "HOST:PORT" with a valid host, got {got}',
                {"got": show(value)},
            ) from None  # fmt: skip
        except ValueError:
            pass
        else:
            return value
    raise PydanticCustomError("host_port", 'expected "HOST:PORT", got {got}', {"got": show(value)})


def _regex(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "regex", "expected a regular expression, got {got}", {"got": show(value)}
        )
    try:
        re.compile(value)
    except re.error as error:
        raise PydanticCustomError(
            "regex",
            "expected a regular expression, got {got}: {why}",
            {"got": show(value), "why": str(error)},
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
            "file_mode", 'expected a file mode such as "0660", got {got}', {"got": show(value)}
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
        {"got": show(value)},
    )  # fmt: skip


_NATS_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def _nats_name(value: Any) -> str:
    """A subject prefix, stream or consumer name: tokens of letters, digits, ``_`` and ``-``."""
    if isinstance(value, str) and _NATS_NAME.fullmatch(value):
        return value
    raise PydanticCustomError(
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
    raise PydanticCustomError(
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
    raise PydanticCustomError(
        "stream_url", 'expected "ws://HOST:PORT/ws" (filters in its query), got {got}',
        {"got": show(value)},
    )  # fmt: skip


Duration = Annotated[float, BeforeValidator(_duration)]
StreamUrl = Annotated[str, BeforeValidator(_stream_url)]
NatsName = Annotated[str, BeforeValidator(_nats_name)]
NatsUrls = Annotated[list[str], BeforeValidator(_nats_urls)]
Size = Annotated[int, BeforeValidator(_size)]
HostPort = Annotated[str, BeforeValidator(_host_port)]
Regex = Annotated[str, BeforeValidator(_regex)]
Workers = Annotated[int | Literal["auto"], BeforeValidator(_workers)]
FileMode = Annotated[int, BeforeValidator(_file_mode)]
CodecName = Literal["raw", "json", "logfmt", "syslog", "regex", "auto"]
