"""``aggregator tail``: the options and targets of an ad-hoc pipeline → a ``Config``.

The config is built directly from the dataclasses (no TOML, no pydantic: start-up stays
short), and every value is checked here, so that an error names the option the user typed
(``--order-window: expected a duration …``) and says what to do on the command line.
"""

import argparse
import os
import re
from pathlib import Path

from aggregator.config.addresses import BadHost, is_loopback, split_host_port
from aggregator.config.loading import ConfigError
from aggregator.config.schema import (
    AggregatorSection,
    Config,
    FileSinkConfig,
    FileSourceConfig,
    FilterSpec,
    SinkConfig,
    SourceConfig,
    StdinSourceConfig,
    StdoutSinkConfig,
    TcpSourceConfig,
    UdpSourceConfig,
    UnixSourceConfig,
    WebSocketSinkConfig,
)
from aggregator.config.types import Secret
from aggregator.config.units import parse_duration

DEFAULT_LINES = 10
"""Lines each file starts with when following, like ``tail``."""
TOKEN_VARIABLE = "AGGREGATOR_TOKEN"


def tail_config(args: argparse.Namespace) -> Config:
    """The Config that ``aggregator tail …`` stands for; ConfigError lists every problem,
    each starting with the option or target it is about."""
    errors: list[str] = []
    named: list[tuple[str | None, str]] = [(None, target) for target in args.targets]
    for item in args.source:
        name, sep, target = item.partition("=")
        if not sep or not name or not target:
            errors.append(f"--source: expected NAME=TARGET, got {item!r}")
            continue
        named.append((name, target))
    if not named and not errors:
        errors.append(
            "no TARGET given: name a file or glob, - for stdin, tcp://HOST:PORT, "
            "udp://HOST:PORT or unix:///PATH"
        )
    if getattr(args, "follow", False) and args.no_follow:
        errors.append("-f/-F: follows, --no-follow does not: give one of them")
    lines = args.lines
    if lines is not None and lines < 0:
        errors.append(f"-n/--lines: expected a number of lines, 0 or more, got {lines}")
    try:
        order_window = parse_duration(args.order_window)
    except ValueError:
        errors.append(
            f'--order-window: expected a duration such as "250ms", "1s" or "5m", '
            f'got "{args.order_window}"'
        )
        order_window = 0.25
    sources: dict[str, SourceConfig] = {}
    for name, target in named:
        source = source_for_target(target, args, errors)
        if source is None:
            continue
        name = name or default_name(target)
        unique, number = name, 1
        while unique in sources:
            number += 1
            unique = f"{name}#{number}"
        sources[unique] = source
    record_filter = filter_of(args, errors)
    sinks: dict[str, SinkConfig] = {
        "stdout": StdoutSinkConfig(
            type="stdout", format=args.format, color=args.color, filter=record_filter
        )
    }
    if args.output is not None:
        sinks["output"] = FileSinkConfig(
            type="file", path=args.output, format=args.format, filter=record_filter
        )
    if args.ws is not None:
        websocket = websocket_sink(args, errors)
        if websocket is not None:
            sinks["ws"] = websocket
    if errors:
        raise ConfigError(errors)
    return Config(
        aggregator=AggregatorSection(order_window=order_window), sources=sources, sinks=sinks
    )


def filter_of(args: argparse.Namespace, errors: list[str]) -> FilterSpec | None:
    """The ``--level``, ``--grep``, ``--where`` and ``--source-filter`` options as a sink
    filter."""
    if args.grep is not None:
        try:
            re.compile(args.grep)
        except re.error as error:
            errors.append(f"--grep: expected a regular expression, got {args.grep!r}: {error}")
    where = args.where or None
    if where is not None:
        from aggregator.record.where import WhereError, where_of

        try:
            where_of(where)
        except WhereError as error:
            errors.append(f"--where: {error}")
    if args.level is None and args.grep is None and where is None and not args.source_filter:
        return None
    patterns = [item for value in args.source_filter for item in value.split(",") if item]
    return FilterSpec(sources=patterns, level=args.level, grep=args.grep, where=where)


def websocket_sink(args: argparse.Namespace, errors: list[str]) -> WebSocketSinkConfig | None:
    """``--ws HOST:PORT``: refused beyond loopback without a token or --ws-allow-anonymous."""
    listen = args.ws
    try:
        split_host_port(listen)
    except BadHost as error:
        errors.append(f"--ws: expected HOST:PORT with a valid host, got {listen!r} ({error})")
        return None
    except ValueError:
        errors.append(f"--ws: expected HOST:PORT (such as 127.0.0.1:8765), got {listen!r}")
        return None
    token = os.environ.get(TOKEN_VARIABLE, "")
    if not (token or args.ws_allow_anonymous or is_loopback(listen)):
        errors.append(
            f"--ws {listen}: other machines could read the stream: set {TOKEN_VARIABLE} "
            f"to a secret that clients must send ({TOKEN_VARIABLE}=… aggregator tail …), "
            "or add --ws-allow-anonymous to serve it to anyone"
        )
        return None
    return WebSocketSinkConfig(
        type="websocket",
        listen=listen,
        auth_token=Secret(token),
        allow_anonymous=args.ws_allow_anonymous,
    )


def source_for_target(
    target: str, args: argparse.Namespace, errors: list[str]
) -> SourceConfig | None:
    """The source a target names; None (and an error) if it names none."""
    codec = args.codec
    if target == "-":
        return StdinSourceConfig(type="stdin", codec=codec)
    scheme, sep, rest = target.partition("://")
    if sep:
        if scheme in ("tcp", "udp"):
            try:
                split_host_port(rest)
            except ValueError:
                errors.append(f"{target}: expected {scheme}://HOST:PORT (such as "
                              f"{scheme}://127.0.0.1:5170)")  # fmt: skip
                return None
            if scheme == "tcp":
                return TcpSourceConfig(type="tcp", listen=rest, codec=codec)
            return UdpSourceConfig(type="udp", listen=rest, codec=codec)
        if scheme == "unix" and rest.startswith("/"):
            return UnixSourceConfig(type="unix", path=Path(rest), codec=codec)
        errors.append(f"{target}: expected tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH")
        return None
    whole = args.from_start or (args.no_follow and args.lines is None)
    lines = DEFAULT_LINES if args.lines is None else args.lines
    return FileSourceConfig(
        type="file",
        paths=[target],
        start_at="beginning" if whole else "end",
        last_lines=None if whole else lines,
        follow=not args.no_follow,
        codec=codec,
    )


def default_name(target: str) -> str:
    """A short source name for a target: a file's name, or the target itself."""
    if target == "-":
        return "stdin"
    if "://" in target or any(char in target for char in "*?["):
        return target
    return Path(target).name or target
