"""Stalls are named (SPEC §8, issue #23): the pure rule with an injected clock, and the plainest
case end to end: stdout is a pipe nobody reads while the file keeps growing."""

import asyncio
from pathlib import Path

import orjson

from aggregator.telemetry.stalls import HELD_BACK, STUCK, Change, Progress, StallWatch
from tests.conftest import DEADLINE, Cli
from tests.helpers.faults import start_cli_as
from tests.helpers.web import http_get


def test_a_growing_file_whose_reader_does_not_move_stalls_then_moves_again() -> None:
    """Unread input and no progress for stall_after: stalled (once); progress: moving again."""
    watch = StallWatch(stall_after=5.0)
    waiting = Progress("a.log", moved=100, pending=True, held_back=True)
    assert watch.observe(0.0, [waiting]) == []
    assert watch.observe(4.9, [waiting]) == []
    assert watch.observe(5.0, [waiting]) == [Change("a.log", HELD_BACK)]
    assert watch.observe(9.0, [waiting]) == []  # said once
    assert watch.stalled == {"a.log": HELD_BACK}
    moved = Progress("a.log", moved=200, pending=True, held_back=False)
    assert watch.observe(9.5, [moved]) == [Change("a.log", None)]
    assert watch.stalled == {}


def test_no_unread_input_is_no_stall_and_the_reason_is_told() -> None:
    """A quiet file read to its end never stalls; a reader not held back is stuck."""
    watch = StallWatch(stall_after=1.0)
    quiet = Progress("quiet.log", moved=10, pending=False, held_back=False)
    stuck = Progress("stuck.log", moved=10, pending=True, held_back=False)
    watch.observe(0.0, [quiet, stuck])
    assert watch.observe(2.0, [quiet, stuck]) == [Change("stuck.log", STUCK)]
    assert watch.observe(3.0, [quiet]) == [Change("stuck.log", None)]  # gone: forgotten


async def test_stdout_nobody_reads_is_named_as_a_stall(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """The file grows, stdout is full: stderr names the file and the sinks as the reason,
    /metrics has aggregator_source_stalled 1, /healthz lists it and still answers 200."""
    log = tmp_path / "app.log"
    log.write_text("")
    config = tmp_path / "c.toml"
    config.write_text(
        '[aggregator]\norder_window = "0s"\nstall_after = "1s"\n'
        '[sources.app]\ntype = "file"\npaths = ["app.log"]\nstart_at = "beginning"\n'
        'codec = "raw"\n[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
        '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    )
    cli = await start_cli_as([], "run", "-c", str(config), cwd=tmp_path, held=True)
    cli_processes.append(cli)
    host, port = await cli.serving()
    line = "x" * 200 + "\n"

    async def grow_until_named() -> None:
        async with asyncio.timeout(DEADLINE):
            while not any("has grown for 1s" in err for err in cli.err):
                with log.open("a") as file:
                    file.write(line * 500)
                await asyncio.sleep(0.1)

    await grow_until_named()
    named = next(err for err in cli.err if "has grown for 1s" in err)
    assert "app.log" in named and HELD_BACK in named, named
    status, _, body = await asyncio.to_thread(http_get, f"http://{host}:{port}/healthz")
    assert status == 200
    assert orjson.loads(body)["stalled"] == ["source app"]
    _, _, metrics = await asyncio.to_thread(http_get, f"http://{host}:{port}/metrics")
    assert 'aggregator_source_stalled{source="app"} 1' in metrics, metrics[-2000:]
    cli.read_stdout()  # someone reads now: it moves again
    await cli.wait_for(lambda: any("reading again" in err for err in cli.err), "moving again")
    _, _, metrics = await asyncio.to_thread(http_get, f"http://{host}:{port}/metrics")
    assert 'aggregator_source_stalled{source="app"} 0' in metrics
    assert await cli.stop() == 0


async def test_a_listener_whose_records_wait_is_named(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A tcp connection keeps sending while stdout is not read: its lane stops moving with
    input waiting, and it is named with the sinks as the reason; read again, it moves."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[aggregator]\norder_window = "0s"\nstall_after = "1s"\n'
        '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "raw"\n'
        '[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
    )
    cli = await start_cli_as([], "run", "-c", str(config), cwd=tmp_path, held=True)
    cli_processes.append(cli)
    host, port = await cli.listening("tcp")
    _, writer = await asyncio.open_connection(host, port)
    chunk = (("y" * 200 + "\n") * 500).encode()

    async def send_until_named() -> None:
        async with asyncio.timeout(DEADLINE):
            while not any("has waited 1s to hand its records on" in e for e in cli.err):
                writer.write(chunk)
                try:
                    async with asyncio.timeout(0.1):
                        await writer.drain()
                except TimeoutError:
                    pass  # the socket is full: the source stopped reading

    try:
        await send_until_named()
        named = next(e for e in cli.err if "has waited 1s" in e)
        assert "sources.net" in named and HELD_BACK in named, named
        cli.read_stdout()
        await cli.wait_for(lambda: any("reading again" in e for e in cli.err), "moving again")
    finally:
        writer.close()
    assert await cli.stop() == 0
