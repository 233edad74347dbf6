"""The command line's options: the parser of every command, its help, and the build's kind.

Kept apart from ``cli`` (what the commands do) so that the options read as one list; the
help's width is found without shutil (``_columns``).
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from aggregator import __version__
from aggregator.record.levels import LEVELS

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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``command``, the options of that one only: the
    others keep their name and help line, which is all the top-level help shows, and a start
    does not pay for building options it cannot be given."""
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Many logs in, one live stream ordered by event time out.",
        formatter_class=_Help,
    )
    parser.add_argument(
        "--version", action="version", version=f"aggregator {__version__} ({build_kind()})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "run", help="run the pipeline a config file describes", formatter_class=_Help
    )
    commands.add_parser(
        "check",
        help="validate a config file, check the files it names, print the pipeline",
        formatter_class=_Help,
    )
    commands.add_parser(
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
    commands.add_parser(
        "connect",
        help="follow a running aggregator's WebSocket stream on stdout",
        formatter_class=_Help,
    )
    for name, sub in commands.choices.items():
        if command in (None, name):
            COMMAND_OPTIONS[name](sub)
        sub.set_defaults(command_parser=sub)
    return parser


def add_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("-c", "--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)
    run.add_argument(
        "--watch-config",
        action="store_true",
        help="reload the config when the file changes, as SIGHUP does (default: only SIGHUP)",
    )
    run.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def add_check_options(check: argparse.ArgumentParser) -> None:
    check.add_argument("-c", "--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)


def add_tail_options(tail: argparse.ArgumentParser) -> None:
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
    add_source_filter(tail)
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


def add_connect_options(connect: argparse.ArgumentParser) -> None:
    connect.add_argument(
        "url",
        metavar="URL",
        help="ws://HOST:PORT/ws or http://HOST:PORT (the token: $AGGREGATOR_TOKEN)",
    )
    add_output_options(connect)
    add_source_filter(connect)
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


COMMAND_OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "run": add_run_options,
    "check": add_check_options,
    "tail": add_tail_options,
    "connect": add_connect_options,
}
"""Each command, and what adds its options."""


def add_source_filter(command: argparse.ArgumentParser) -> None:
    """``--source-filter``: the same filter in ``tail`` and ``connect``."""
    command.add_argument(
        "--source-filter",
        action="append",
        default=[],
        metavar="GLOB",
        help="only sources whose name matches GLOB; repeat or use commas for several "
        "(default: every source)",
    )


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


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options; an unknown one is refused with the usage of its subcommand
    (``usage: aggregator tail …``), not the top-level one (exit 2)."""
    words = sys.argv[1:] if argv is None else argv
    # The top level takes no option with a value: its first other word names the command.
    command = next((word for word in words if not word.startswith("-")), None)
    parser = build_parser(command if command in COMMAND_OPTIONS else None)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command_parser: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args
