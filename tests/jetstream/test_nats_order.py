"""Order at a central across nodes (SPEC §5 through a remote source): nodes that start
together, the stream's backlog at start, nodes named, a clean stop, and bad streams."""

import asyncio
import time
from pathlib import Path

import pytest

from tests.conftest import DEADLINE, Cli
from tests.helpers.nats_server import NatsServer, nats_server
from tests.jetstream.test_nats import (
    central_config,
    lines_of,
    records_in,
    sidecar_config,
    start,
    wait_for_lines,
)

__all__ = ["nats_server"]  # the fixture, used by name


def with_settings(config: Path, **settings: str) -> Path:
    """``config`` with these ``[aggregator]`` settings added."""
    extra = "".join(f'{key} = "{value}"\n' for key, value in settings.items())
    config.write_text(config.read_text().replace("[aggregator]\n", f"[aggregator]\n{extra}", 1))
    return config


@pytest.mark.slow
async def test_nodes_that_start_together_are_merged_in_order(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """Two sidecars started ~10 ms apart, each with one line, the later one's older: the
    central (order_window 3s) holds the first node's record for a node it has not heard
    from yet, and writes the older one first; in each of three rounds."""
    out = tmp_path / "central.json"
    central = central_config(tmp_path, nats_server.url, out, order_window="3s")
    await start(cli_processes, central, tmp_path)
    expected: list[str] = []
    for round_ in range(3):
        sidecars = []
        for node, second in ((f"new{round_}", 2), (f"old{round_}", 1)):
            logs = tmp_path / f"{node}.log"
            logs.write_text(f"2026-01-01T00:0{round_}:0{second}.000000Z {node}\n")
            config = sidecar_config(tmp_path, nats_server.url, node, logs, follow=False)
            sidecars.append(await start(cli_processes, config, tmp_path))
            await asyncio.sleep(0.01)  # start the next ~10 ms later: a stagger, not a wait
        for sidecar in sidecars:
            assert await sidecar.exit_code() == 0
        expected += [f"old{round_}", f"new{round_}"]
        await wait_for_lines(out, len(expected))
        assert lines_of(out) == expected
        assert not any(record.get("late") for record in records_in(out))


async def test_the_backlog_at_start_is_merged_exactly_at_once(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """What the stream holds when the central starts is catch-up: merged exactly and written
    at once, not after order_window (30 s) or idle_timeout (60 s)."""
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    with one.open("w") as a, two.open("w") as b:
        for number in range(300):
            file = b if number % 3 == 0 else a
            file.write(f"2026-01-01T00:00:{number // 10:02d}.{number % 10}00000Z n {number}\n")
    for node, logs in (("one", one), ("two", two)):
        config = sidecar_config(tmp_path, nats_server.url, node, logs, follow=False)
        assert await (await start(cli_processes, config, tmp_path)).exit_code() == 0
    out = tmp_path / "central.json"
    central = central_config(tmp_path, nats_server.url, out, order_window="30s")
    started = time.monotonic()
    cli = await start(cli_processes, with_settings(central, idle_timeout="60s"), tmp_path)
    await wait_for_lines(out, 300)
    assert time.monotonic() - started < DEADLINE  # far under the window and idle_timeout
    assert lines_of(out) == [f"n {n}" for n in range(300)]
    await cli.wait_for(lambda: any("catching up on 2 subjects" in e for e in cli.err), "backlog")
