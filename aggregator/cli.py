"""The command line: argv → Config → Pipeline; exit codes 0 (ended), 1 (runtime), 2 (usage).

The program's own log goes to stderr; stdout is data. Each command imports only what it needs:
``--version`` nothing, ``tail`` no pydantic (its config is built from the options), only
``connect`` imports websockets at start, a WebSocket sink when its first client comes
(``python -X importtime`` shows it).
"""

import gc
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    import logging
    from collections.abc import Sequence
    from pathlib import Path

    from aggregator.config import Config

LOGGER = "aggregator"


def program_log() -> "logging.Logger":
    """The program's own log (stderr); ``logging`` is imported with it, after ``main`` turned
    automatic collection off."""
    import logging

    return logging.getLogger(LOGGER)


EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def configure_logging(debug: bool) -> None:
    import logging

    from aggregator import masking
    from aggregator.web import CONNECTION_LOG

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
    path: "Path | None" = None,
    watch: bool = False,
) -> int:
    """Run ``config`` until its inputs end or a signal comes; the exit code. With ``path``
    (``run``), SIGHUP reloads it by diff (and, with ``watch``, so does a change of it)."""
    import asyncio
    import os
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
        program_log().error(
            "second %s: stopping at once, without draining", signal.Signals(signum).name
        )
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


async def follow_stream(args: "argparse.Namespace") -> int:
    """``aggregator connect``: until a signal, or stdout's reader has gone."""
    import asyncio
    import os
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
        program_log().error("%s", error)
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
        program_log().error("%s", error)
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
    log = program_log()
    for leaf in leaves:
        log.error("%s", leaf)
    return EXIT_RUNTIME


def main(argv: "Sequence[str] | None" = None) -> int:
    # No automatic collection while the options, the config, the pipeline and its parts load:
    # each would walk every object imported so far, for no garbage; so this module imports
    # them only now. Once running, the pipeline collects on its own schedule
    # (``runtime.collect_garbage_periodically``).
    gc.disable()
    try:
        return run_main(argv)
    finally:
        gc.enable()
        # What is alive now lives until the process exits: frozen, the interpreter's
        # collections at exit skip it instead of walking every object the program loaded.
        gc.freeze()


def run_main(argv: "Sequence[str] | None") -> int:
    """The command ``argv`` names, run; its exit code (argparse exits 2 on a usage error)."""
    from aggregator.arguments import parse_arguments

    args = parse_arguments(argv)
    configure_logging(getattr(args, "debug", False))
    if args.command == "connect":
        import asyncio

        gc.enable()  # a client for as long as it is left running: collected as usual
        return asyncio.run(follow_stream(args), debug=args.debug)
    return run_command(args)


def run_command(args: "argparse.Namespace") -> int:
    """``run``, ``check`` or ``tail``: the config, then the pipeline; the exit code."""
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

        log = program_log()
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
