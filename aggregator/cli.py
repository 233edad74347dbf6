"""The command line: argv → Config → Pipeline; exit codes 0 (ended), 1 (runtime), 2 (usage).

The program's own log goes to stderr; stdout is data.
"""

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from aggregator import __version__
from aggregator.config import Config, ConfigError, load_config, parse_config
from aggregator.errors import AggregatorError
from aggregator.flow.levels import LEVELS
from aggregator.pipeline import Pipeline
from aggregator.runtime import collect_garbage_periodically, dump_tasks, raise_open_file_limit
from aggregator.web import CONNECTION_LOG
from aggregator.web.client import ConnectError, StreamClient, StreamRequest

log = logging.getLogger("aggregator")

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
COMMAND_LINE = "command line"
DEBUG_HELP = "asyncio debug mode, named tasks; SIGUSR1 dumps every task to stderr"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Many logs in, one live stream ordered by event time out.",
    )
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the pipeline a config file describes")
    run.add_argument("-c", "--config", required=True, type=Path, metavar="FILE")
    run.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    check = commands.add_parser("check", help="validate a config file and print the pipeline")
    check.add_argument("-c", "--config", required=True, type=Path, metavar="FILE")

    tail = commands.add_parser("tail", help="follow files, stdin and sockets without a config")
    tail.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="a path or glob, - for stdin, tcp://HOST:PORT, udp://HOST:PORT, unix:///PATH",
    )
    tail.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME=TARGET",
        help="a target with a name of your choice",
    )
    tail.add_argument("--from-start", action="store_true", help="read existing content first")
    tail.add_argument(
        "--no-follow", action="store_true", help="read what exists, merge by time, exit"
    )
    tail.add_argument("--format", choices=["text", "json", "raw"], default="text")
    tail.add_argument(
        "--codec", choices=["raw", "json", "logfmt", "syslog", "auto"], default="auto"
    )
    tail.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="also append the stream to FILE"
    )
    tail.add_argument(
        "--ws",
        metavar="HOST:PORT",
        help="also serve the stream over WebSocket, with the browser page "
        "(token from $AGGREGATOR_TOKEN)",
    )
    tail.add_argument("--order-window", default="250ms", metavar="DURATION")
    tail.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    connect = commands.add_parser(
        "connect", help="follow a running aggregator's WebSocket stream on stdout"
    )
    connect.add_argument("url", metavar="URL", help="ws://HOST:PORT/ws or http://HOST:PORT")
    connect.add_argument("--format", choices=["text", "json", "raw"], default="text")
    connect.add_argument(
        "--source", action="append", default=[], metavar="GLOB", help="only these sources"
    )
    connect.add_argument("--level", choices=list(LEVELS), help="a minimum level")
    connect.add_argument("--grep", metavar="RE", help="only lines this RE2 pattern matches")
    connect.add_argument(
        "--replay", type=int, default=0, metavar="N", help="first the last N records"
    )
    connect.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def tail_config(args: argparse.Namespace) -> Config:
    """The Config that ``aggregator tail …`` stands for."""
    named: list[tuple[str | None, str]] = [(None, target) for target in args.targets]
    for item in args.source:
        name, sep, target = item.partition("=")
        if not sep or not name or not target:
            raise ConfigError([f"{COMMAND_LINE}: --source: expected NAME=TARGET, got {item!r}"])
        named.append((name, target))
    if not named:
        raise ConfigError([f"{COMMAND_LINE}: no TARGET given (a path, -, tcp://… or udp://…)"])
    sources: dict[str, dict[str, Any]] = {}
    for name, target in named:
        source = source_for_target(target, args)
        name = name or default_name(target)
        unique, number = name, 1
        while unique in sources:
            number += 1
            unique = f"{name}#{number}"
        sources[unique] = source
    sinks: dict[str, dict[str, Any]] = {"stdout": {"type": "stdout", "format": args.format}}
    if args.output is not None:
        sinks["output"] = {"type": "file", "path": str(args.output), "format": args.format}
    if args.ws is not None:
        token = os.environ.get("AGGREGATOR_TOKEN", "")
        sinks["ws"] = {"type": "websocket", "listen": args.ws, "auth_token": token}
    data = {
        "aggregator": {"order_window": args.order_window},
        "sources": sources,
        "sinks": sinks,
    }
    return parse_config(data, COMMAND_LINE, env={})


def source_for_target(target: str, args: argparse.Namespace) -> dict[str, Any]:
    common = {"codec": args.codec}
    if target == "-":
        return {"type": "stdin", **common}
    scheme, sep, rest = target.partition("://")
    if sep:
        if scheme in ("tcp", "udp"):
            return {"type": scheme, "listen": rest, **common}
        if scheme == "unix" and rest.startswith("/"):
            return {"type": "unix", "path": rest, **common}
        raise ConfigError(
            [f"{COMMAND_LINE}: {target}: expected tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH"]
        )
    return {
        "type": "file",
        "paths": [target],
        "start_at": "beginning" if args.from_start or args.no_follow else "end",
        "follow": not args.no_follow,
        **common,
    }


def default_name(target: str) -> str:
    """A short source name for a target: a file's name, or the target itself."""
    if target == "-":
        return "stdin"
    if "://" in target or any(char in target for char in "*?["):
        return target
    return Path(target).name or target


def describe(config: Config) -> str:
    """The resolved pipeline, one part a line, for ``aggregator check``."""
    lines = [f"aggregator: {_fields(config.aggregator.model_dump(mode='json'))}"]
    for kind, parts in (("source", config.sources), ("sink", config.sinks)):
        for name, part in parts.items():
            values = part.model_dump(mode="json")
            values = {"type": values.pop("type"), **values}
            if values["type"] == "nats":  # what the defaults resolve to on this machine
                if kind == "source" and values.get("durable") is None:
                    values["durable"] = name
                if kind == "sink" and not values.get("node"):
                    values["node"] = socket.gethostname()
            lines.append(f"{kind} {name}: {_fields(values)}")
    return "\n".join(lines)


def _fields(values: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={orjson.dumps(value).decode()}"
        for key, value in values.items()
        if value is not None
    )


def configure_logging(debug: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.INFO,
        format="aggregator: %(levelname)s: %(message)s",
    )
    # websockets reports every connection and HTTP request: only with --debug, and never at
    # its DEBUG level, which would log request lines (and so a ?token=).
    logging.getLogger(CONNECTION_LOG).setLevel(logging.INFO if debug else logging.WARNING)


async def serve(config: Config, debug: bool, checkpoints: bool = True) -> int:
    """Run ``config`` until its inputs end or a signal comes; the exit code."""
    loop = asyncio.get_running_loop()
    raise_open_file_limit()
    pipeline = Pipeline(config, checkpoints=checkpoints)
    signals_seen = 0

    def on_stop_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            pipeline.request_stop()
            return
        log.error("second %s: stopping at once, without draining", signal.Signals(signum).name)
        os._exit(EXIT_RUNTIME)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, pipeline.reopen_files)
    if debug:
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        await pipeline.start()  # a signal meanwhile stops the run as soon as it begins
    except Exception as error:
        return report_failure(error)
    collector = asyncio.create_task(collect_garbage_periodically(), name="gc")
    try:
        await pipeline.run()
    except Exception as error:
        return report_failure(error)
    finally:
        collector.cancel("the pipeline has ended")
        await asyncio.gather(collector, return_exceptions=True)
    return EXIT_OK


async def follow_stream(args: argparse.Namespace) -> int:
    """``aggregator connect``: until a signal, or stdout's reader has gone."""
    request = StreamRequest(
        args.url,
        [item for value in args.source for item in value.split(",") if item],
        args.level,
        args.grep,
        max(0, args.replay),
        os.environ.get("AGGREGATOR_TOKEN", ""),
    )
    try:
        client = StreamClient(request, args.format)
    except ConnectError as error:
        log.error("%s", error)
        return EXIT_USAGE
    following = asyncio.create_task(client.run(), name="connect")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, following.cancel)
    try:
        await following
    except asyncio.CancelledError:
        pass
    except ConnectError as error:
        log.error("%s", error)
        return EXIT_USAGE if error.usage else EXIT_RUNTIME
    return EXIT_OK


def leaf_errors(error: BaseException) -> list[BaseException]:
    """The errors inside (nested) exception groups, as a TaskGroup raises them."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaf_errors(inner)]
    return [error]


def report_failure(error: Exception) -> int:
    """Log a failure the user can act on and return exit code 1; re-raise anything else (a bug)."""
    leaves = leaf_errors(error)
    if not all(isinstance(leaf, AggregatorError | OSError) for leaf in leaves):
        raise error
    for leaf in leaves:
        log.error("%s", leaf)
    return EXIT_RUNTIME


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(getattr(args, "debug", False))
    if args.command == "connect":
        return asyncio.run(follow_stream(args), debug=args.debug)
    try:
        config = tail_config(args) if args.command == "tail" else load_config(args.config)
    except ConfigError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        print(describe(config))
        return EXIT_OK
    # `run` keeps file positions in state_dir; `tail`, like tail -F, starts afresh each time.
    checkpoints = args.command == "run"
    return asyncio.run(serve(config, args.debug, checkpoints), debug=args.debug)
