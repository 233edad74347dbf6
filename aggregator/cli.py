"""The command line: argv → Config → Pipeline; exit codes 0 (ended), 1 (runtime), 2 (usage).

The program's own log goes to stderr; stdout is data. Each command imports only what it needs:
``--version`` nothing, ``tail`` no pydantic (its config is built from the options), only
``connect`` and a WebSocket sink import websockets (``python -X importtime`` shows it).
"""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator import __version__, masking
from aggregator.record.levels import LEVELS
from aggregator.web import CONNECTION_LOG

if TYPE_CHECKING:
    from aggregator.config import Config

log = logging.getLogger("aggregator")

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
COLOR_HELP = (
    "colour sources and levels in text: auto on a terminal unless NO_COLOR is set "
    "(default: %(default)s)"
)
CONFIG_HELP = "the TOML config file (required; no default)"
WHERE_HELP = (
    "only records this expression passes (default: every record), such as "
    "'level>=warn and status>=500 and not path~\"^/health\"' (docs/where.md)"
)
DEBUG_HELP = "asyncio debug mode, named tasks; SIGUSR1 dumps every task to stderr (default: off)"


def build_kind() -> str:
    """``compiled`` when the per-line modules run as mypyc's extension modules, else ``pure``
    (SPEC §1): where the import system finds one of them, without importing it."""
    from importlib.util import find_spec

    spec = find_spec("aggregator.parse.lines")
    return "compiled" if spec is not None and (spec.origin or "").endswith(".so") else "pure"


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it: argparse imports shutil
    (and with it lzma, bz2 and zlib) for it, on every start, when help is not even asked."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Help(argparse.HelpFormatter):
    """argparse's help, its width found without shutil (``_columns``)."""

    def __init__(self, prog: str, width: int | None = None) -> None:
        super().__init__(prog, width=_columns() - 2 if width is None else width)


class _Formatter(_Help, argparse.RawDescriptionHelpFormatter):
    """Help that keeps the description's line breaks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Many logs in, one live stream ordered by event time out.",
        formatter_class=_Help,
    )
    parser.add_argument(
        "--version", action="version", version=f"aggregator {__version__} ({build_kind()})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run the pipeline a config file describes", formatter_class=_Help
    )
    run.add_argument("-c", "--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)
    run.add_argument(
        "--watch-config",
        action="store_true",
        help="reload the config when the file changes, as SIGHUP does (default: only SIGHUP)",
    )
    run.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    check = commands.add_parser(
        "check",
        help="validate a config file, check the files it names, print the pipeline",
        formatter_class=_Help,
    )
    check.add_argument("-c", "--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)

    tail = commands.add_parser(
        "tail",
        help="follow files, stdin and sockets without a config",
        formatter_class=_Formatter,
        description="Follow files, stdin and sockets, merged by event time, without a config.\n"
        "examples:\n"
        "  aggregator tail a.log b.log                 last 10 lines of each, then follow\n"
        "  aggregator tail 'logs/**/*.log' -n 0        only new lines\n"
        "  aggregator tail --no-follow --from-start *.log   merge whole files and exit\n"
        "  aggregator tail - --format json | jq .line  a filter in a pipe",
    )
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
        help="a target with a name of your choice (default: a file is named after its file "
        "name, a glob or socket after itself)",
    )
    tail.add_argument(
        "-n",
        "--lines",
        type=int,
        metavar="N",
        help="begin with the last N lines of each file, merged by time, then follow; 0: only "
        "new lines (default: 10; with --no-follow, whole files)",
    )
    tail.add_argument(
        "-f",
        "-F",
        "--follow",
        action="store_true",
        help="accepted as tail users type it: following is the default (default: on)",
    )
    tail.add_argument(
        "--from-start", action="store_true", help="read existing content first (default: off)"
    )
    tail.add_argument(
        "--no-follow",
        action="store_true",
        help="read what exists, merge by time, exit (default: off, follow like tail -F)",
    )
    add_output_options(tail)
    tail.add_argument(
        "--codec",
        choices=["raw", "json", "logfmt", "syslog", "cri", "docker", "auto"],
        default="auto",
        help="how lines are read: time, level, fields (default: %(default)s)",
    )
    tail.add_argument(
        "--level",
        choices=list(LEVELS),
        help="only records of this level or above; a record of no known level does not pass "
        "(default: every record)",
    )
    tail.add_argument(
        "--grep",
        metavar="RE",
        help="only lines this regular expression is found in (default: every line)",
    )
    tail.add_argument("--where", metavar="EXPR", help=WHERE_HELP)
    tail.add_argument(
        "--source-filter",
        action="append",
        default=[],
        metavar="GLOB",
        help="only sources whose name matches GLOB; repeat or use commas for several "
        "(default: every source)",
    )
    tail.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="also append the stream to FILE, filtered like stdout (default: none)",
    )
    tail.add_argument(
        "--ws",
        metavar="HOST:PORT",
        help="also serve the stream over WebSocket, with the browser page; the token clients "
        "must send comes from $AGGREGATOR_TOKEN (default: not served)",
    )
    tail.add_argument(
        "--ws-allow-anonymous",
        action="store_true",
        help="let --ws listen beyond loopback without a token (default: refused)",
    )
    tail.add_argument(
        "--order-window",
        default="250ms",
        metavar="DURATION",
        help="how long live records wait for slower sources; 0s: arrival order "
        "(default: %(default)s)",
    )
    tail.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    connect = commands.add_parser(
        "connect",
        help="follow a running aggregator's WebSocket stream on stdout",
        formatter_class=_Help,
    )
    connect.add_argument(
        "url",
        metavar="URL",
        help="ws://HOST:PORT/ws or http://HOST:PORT (the token: $AGGREGATOR_TOKEN)",
    )
    add_output_options(connect)
    connect.add_argument(
        "--source-filter",
        action="append",
        default=[],
        metavar="GLOB",
        help="only sources whose name matches GLOB; repeat or use commas for several "
        "(default: every source)",
    )
    # --source names a source (NAME=TARGET) in tail: here it is refused with a pointer.
    connect.add_argument("--source", action="append", default=[], help=argparse.SUPPRESS)
    connect.add_argument(
        "--level", choices=list(LEVELS), help="a minimum level (default: every record)"
    )
    connect.add_argument(
        "--grep", metavar="RE", help="only lines this RE2 pattern matches (default: every line)"
    )
    connect.add_argument("--where", metavar="EXPR", help=WHERE_HELP)
    connect.add_argument(
        "--replay",
        type=int,
        default=0,
        metavar="N",
        help="first the last N records (default: %(default)s)",
    )
    connect.add_argument(
        "--stats",
        action="store_true",
        help="instead of the stream, the server's live counts per level, source and field "
        "over the last 1 and 5 minutes (/stats), refreshed every 2 s (default: off)",
    )
    connect.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    for command in (run, check, tail, connect):
        command.set_defaults(command_parser=command)
    return parser


def add_output_options(command: argparse.ArgumentParser) -> None:
    """``--format`` and ``--color``: how ``tail`` and ``connect`` write stdout."""
    command.add_argument(
        "--format",
        choices=["text", "json", "raw"],
        default="text",
        help="output format (default: %(default)s)",
    )
    command.add_argument(
        "--color", choices=["auto", "always", "never"], default="auto", help=COLOR_HELP
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
    # Whatever a line holds (a header websockets logs with --debug, a URL), no secret in it.
    masking.install(logging.getLogger().handlers)


async def serve(
    config: "Config",
    debug: bool,
    checkpoints: bool = True,
    path: Path | None = None,
    watch: bool = False,
) -> int:
    """Run ``config`` until its inputs end or a signal comes; the exit code. With ``path``
    (``run``), SIGHUP reloads it by diff (and, with ``watch``, so does a change of it)."""
    import asyncio
    import signal

    from aggregator.pipeline import Pipeline
    from aggregator.runtime import collect_garbage_periodically, dump_tasks, raise_open_file_limit

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
    reloader = None
    if path is not None:
        from aggregator.reload import Reloader

        reloader = Reloader(pipeline, path)

    def on_hangup() -> None:
        pipeline.reopen_files()  # as before: an external logrotate's postrotate kill -HUP
        if reloader is not None:
            reloader.request()

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    if debug:
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        await pipeline.start()  # a signal meanwhile stops the run as soon as it begins
    except Exception as error:
        return report_failure(error)
    helpers = [asyncio.create_task(collect_garbage_periodically(), name="gc")]
    if reloader is not None:
        helpers.append(asyncio.create_task(reloader.run(watch), name="reload"))
    try:
        await pipeline.run()
    except Exception as error:
        return report_failure(error)
    finally:
        for helper in helpers:
            helper.cancel("the pipeline has ended")
        await asyncio.gather(*helpers, return_exceptions=True)
    # --no-follow and a path that was not there (said at the start): the rest was read.
    return EXIT_RUNTIME if pipeline.missing else EXIT_OK


async def follow_stream(args: argparse.Namespace) -> int:
    """``aggregator connect``: until a signal, or stdout's reader has gone."""
    import asyncio
    import signal

    from aggregator.web.client import ConnectError, StreamClient, StreamRequest

    if args.source:
        print(
            "aggregator connect: --source names a source (NAME=TARGET) in tail; "
            "to filter by source here, use --source-filter GLOB",
            file=sys.stderr,
        )
        return EXIT_USAGE
    request = StreamRequest(
        args.url,
        [item for value in args.source_filter for item in value.split(",") if item],
        args.level,
        args.grep,
        max(0, args.replay),
        os.environ.get("AGGREGATOR_TOKEN", ""),
        args.where or None,
    )
    if args.where:
        from aggregator.record.where import WhereError, where_of

        try:
            where_of(args.where)
        except WhereError as error:
            print(f"aggregator connect: --where: {error}", file=sys.stderr)
            return EXIT_USAGE
    try:
        client = StreamClient(request, args.format, args.color)
    except ConnectError as error:
        log.error("%s", error)
        return EXIT_USAGE
    if args.stats:
        from aggregator.web.stats_view import follow_stats

        shown = follow_stats(args.url, request.token)
        following = asyncio.create_task(shown, name="connect:stats")
    else:
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
    from aggregator.errors import AggregatorError

    leaves = leaf_errors(error)
    if not all(isinstance(leaf, AggregatorError | OSError) for leaf in leaves):
        raise error
    for leaf in leaves:
        log.error("%s", leaf)
    return EXIT_RUNTIME


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options; an unknown one is refused with the usage of its subcommand
    (``usage: aggregator tail …``), not the top-level one (exit 2)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command_parser: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    configure_logging(getattr(args, "debug", False))
    if args.command == "connect":
        import asyncio

        return asyncio.run(follow_stream(args), debug=args.debug)
    from aggregator.config.loading import ConfigError

    try:
        if args.command == "tail":
            from aggregator.config.adhoc import tail_config

            config = tail_config(args)
        else:
            from aggregator.config.loading import load_config

            config = load_config(args.config)
    except ConfigError as error:
        prefix = "aggregator tail: " if args.command == "tail" else ""
        for line in error.errors:
            print(f"{prefix}{line}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        from aggregator import check

        problems = check.problems(config)
        print(check.describe(config))
        for line in problems:
            print(f"{args.config}: {line}", file=sys.stderr)
        return EXIT_USAGE if problems else EXIT_OK
    if args.command == "run":
        from aggregator import check

        for line in check.following(config):
            log.info("%s", line)
    # `run` keeps file positions in state_dir and reloads its file; `tail`, like tail -F,
    # starts afresh each time.
    import asyncio

    if args.command == "run":
        running = serve(config, args.debug, True, args.config, args.watch_config)
    else:
        running = serve(config, args.debug, checkpoints=False)
    return asyncio.run(running, debug=args.debug)
