"""A stop while nats-server is away or not reached yet (SPEC §8: SIGTERM exits 0 within a few
seconds): what was not taken cannot be lost, so nothing waits for the server; only records a
sidecar took and could not publish hold it to the drain's deadline (exit 1, saying so)."""

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DEADLINE, Cli
from tests.helpers.nats_server import NatsServer, free_port, nats_server
from tests.helpers.web import http_get
from tests.jetstream.test_nats import (
    central_config,
    lines_of,
    sidecar_config,
    start,
    wait_for_lines,
    write_lines,
)

__all__ = ["nats_server"]  # the fixture, used by name

NOBODY = "nats://127.0.0.1:{port}"


def with_web(config: Path) -> Path:
    """The config with a websocket sink (its ``serving`` line, its /metrics) on a port of its
    own, read from that line: a port chosen before it binds may be taken meanwhile."""
    config.write_text(
        config.read_text() + '\n[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    )
    return config


def said(cli: Cli, text: str) -> bool:
    return any(text in line for line in cli.err)


async def stopped_at_once(cli: Cli) -> None:
    """SIGTERM: exit 0, no drain deadline (it would take 5 s and exit 1)."""
    assert await cli.stop() == 0, cli.err
    assert not said(cli, "did not stop"), cli.err
    assert not said(cli, "Traceback"), cli.err


@pytest.mark.parametrize("when", ["as it starts", "while it retries"])
async def test_a_central_stopped_while_it_connects_exits_at_once(
    tmp_path: Path, cli_processes: list[Cli], when: str
) -> None:
    """A central whose nats-server is not there: a SIGTERM as it starts (its parts opening)
    or while it retries the connection ends it at once with exit 0."""
    url = NOBODY.format(port=free_port())
    config = with_web(central_config(tmp_path, url, tmp_path / "out.json"))
    central = await start(cli_processes, config, tmp_path)
    if when == "as it starts":
        await central.serving()  # logged while the parts open, before any source runs
    else:
        await central.wait_for(lambda: said(central, "cannot connect"), "a retry reported")
    await stopped_at_once(central)


async def test_a_central_stopped_while_the_stream_cannot_be_set_up_exits_at_once(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Connected to a server without JetStream, waiting to try the stream again: a SIGTERM
    ends the wait at once."""
    server = NatsServer(tmp_path / "nats")
    await server.start(jetstream=False)
    try:
        central = await start(
            cli_processes, central_config(tmp_path, server.url, tmp_path / "out.json"), tmp_path
        )
        await central.wait_for(lambda: said(central, "cannot set up the stream"), "the error")
        await stopped_at_once(central)
    finally:
        await server.stop(signal.SIGKILL)


async def test_a_sidecar_stopped_while_it_connects_exits_at_once(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A sidecar that has taken nothing and has no server: a SIGTERM ends it at once."""
    logs = tmp_path / "a.log"
    logs.write_text("")
    url = NOBODY.format(port=free_port())
    sidecar = await start(cli_processes, sidecar_config(tmp_path, url, "n1", logs), tmp_path)
    await sidecar.wait_for(lambda: said(sidecar, "cannot connect"), "a retry reported")
    await stopped_at_once(sidecar)


def metric(text: str, name: str) -> float:
    prefix = f'{name}{{sink="bus"}} '
    return next(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def wait_for_metric(port: int, name: str, holds: Callable[[float], bool]) -> None:
    """Scrape the sidecar's /metrics until ``name`` satisfies ``holds``."""
    url = f"http://127.0.0.1:{port}/metrics"
    async with asyncio.timeout(DEADLINE):
        while not holds(metric((await asyncio.to_thread(http_get, url))[2], name)):
            await asyncio.sleep(0.05)


async def test_a_sidecar_with_nothing_unsent_stops_at_once_while_the_server_is_away(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """Every record it took is stored, then nats-server goes away: a SIGTERM exits 0 at once
    (the markers that end its subjects are not waited for: the central ends those lanes
    after idle_timeout), and a restart sends nothing again."""
    logs = tmp_path / "a.log"
    write_lines(logs, 0, 20)
    config = with_web(sidecar_config(tmp_path, nats_server.url, "n1", logs))
    sidecar = await start(cli_processes, config, tmp_path)
    _, port = await sidecar.serving()
    await wait_for_metric(port, "aggregator_nats_records_acknowledged_total", lambda n: n >= 20)
    await nats_server.stop(signal.SIGKILL)
    await sidecar.wait_for(lambda: said(sidecar, "lost the connection"), "the outage noticed")
    await stopped_at_once(sidecar)
    await nats_server.start()
    out = tmp_path / "central.json"
    await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    await start(cli_processes, config, tmp_path)
    write_lines(logs, 20, 5)
    await wait_for_lines(out, 25)
    assert lines_of(out) == [f"line {n}" for n in range(25)]


@pytest.mark.slow
async def test_a_sidecar_with_unsent_records_waits_the_deadline_and_says_what_is_left(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """Records taken and not stored when nats-server went away: a SIGTERM drains up to the
    deadline, says how many records were not published and exits 1; the next start sends
    them, nothing twice."""
    logs = tmp_path / "a.log"
    out = tmp_path / "central.json"
    config = with_web(sidecar_config(tmp_path, nats_server.url, "n1", logs))
    await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    sidecar = await start(cli_processes, config, tmp_path)
    _, port = await sidecar.serving()
    write_lines(logs, 0, 100)
    await wait_for_lines(out, 100)
    await nats_server.stop(signal.SIGKILL)
    await sidecar.wait_for(lambda: said(sidecar, "lost the connection"), "the outage noticed")
    write_lines(logs, 100, 100)
    await wait_for_metric(port, "aggregator_nats_pending_records", lambda n: n >= 100)
    assert await sidecar.stop() == 1
    assert said(sidecar, "did not stop")
    assert said(sidecar, "sinks.bus: 100 records were not published (nats-server away)")
    await nats_server.start()
    await start(cli_processes, config, tmp_path)
    await wait_for_lines(out, 200)
    write_lines(logs, 200, 10)
    await wait_for_lines(out, 210)
    assert lines_of(out) == [f"line {n}" for n in range(210)]
