"""The WebSocket port end to end: a real server process, real clients (SPEC §7; issue #6)."""

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import DEADLINE, Cli, follow_synced, start_cli
from tests.helpers.web import Server, Subscription, http_get, json_lines, send_lines, start_server

TOTAL = 60_000
BIG_LINES = [line + " " + "x" * 500 for line in json_lines(TOTAL)]
"""About 35 MB: more than a stuck client's socket buffers and outbox hold."""


@pytest.fixture
async def server(tmp_path: Path, cli_processes: list[Cli]) -> Server:
    return await start_server(tmp_path, cli_processes, "replay = 50")


async def test_hello_then_records_batched_in_frames(server: Server) -> None:
    subscription = await server.subscribe()
    assert subscription.others == [{"hello": {"run": subscription.others[0]["hello"]["run"],
                                              "seq": 0}}]  # fmt: skip
    await server.send(json_lines(500))
    records = await subscription.records_until(500)
    assert [record["seq"] for record in records] == list(range(1, 501))
    assert records[0]["source"] == "net" and records[0]["level"] == "info"
    assert records[0]["ts"] == "2026-11-25T10:00:00.000000Z"
    assert orjson.loads(records[7]["line"])["msg"] == "msg 7"
    assert subscription.frames < 100  # many records to a frame, not one each


async def test_filters_in_the_url_apply_on_the_server(server: Server) -> None:
    errors = await server.subscribe("level=error")
    grep = await server.subscribe("grep=" + quote('msg (1|3)"'))
    other_source = await server.subscribe("source=elsewhere")
    everything = await server.subscribe()
    await server.send(json_lines(4) + json_lines(2, start=4, level="error"))
    await everything.records_until(6)
    # The last record each filtered subscriber can get is the last one sent: no more come.
    await errors.records_until(2)
    assert [orjson.loads(line)["msg"] for line in errors.lines()] == ["msg 4", "msg 5"]
    await grep.records_until(2)
    assert [orjson.loads(line)["msg"] for line in grep.lines()] == ["msg 1", "msg 3"]
    await server.send(json_lines(1, start=6, level="error"))
    await errors.records_until(3)
    assert other_source.records == []


async def test_replay_sends_the_last_records_that_pass(server: Server) -> None:
    await server.send(json_lines(10) + json_lines(5, start=10, level="warn"))
    await server.cli.wait_for(lambda: len(server.cli.out) == 15, "15 records on stdout")
    late_comer = await server.subscribe("replay=3&level=warn")
    records = await late_comer.records_until(3)
    assert [record["seq"] for record in records] == [13, 14, 15]
    text = await server.subscribe("replay=2&format=text")
    await text.receive_until(lambda: len(text.texts) >= 2, "the replay")
    assert text.texts[1] == f"2026-11-25T10:00:00.000Z net | {json_lines(1, 14, 'warn')[0]}"
    assert text.others == [{"hello": {"run": text.others[0]["hello"]["run"], "seq": 15}}]


async def test_bad_filters_are_refused_with_the_reason(server: Server) -> None:
    for query, reason in [
        ("level=loud", "level: expected one of"),
        ("grep=(unclosed", "grep: not a usable regular expression"),
        ("replay=-1", "replay: expected a whole number"),
        ("colour=red", "unknown parameter 'colour'"),
    ]:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url("/ws", query))
        assert refused.value.response.status_code == 400
        assert reason in bytes(refused.value.response.body).decode()


async def test_live_filter_change_and_a_bad_one_keeps_the_old(server: Server) -> None:
    subscription = await server.subscribe()
    await subscription.connection.send('{"filter": {"level": "error"}}')
    await subscription.receive_until(lambda: subscription.notices("filter"), "the filter notice")
    await subscription.connection.send('{"filter": {"grep": "(a"}}')
    await subscription.connection.send("not json")
    await subscription.receive_until(
        lambda: sum("error" in message for message in subscription.others) == 2, "two errors"
    )
    await server.send(json_lines(3) + json_lines(1, start=3, level="error"))
    records = await subscription.records_until(1)
    assert orjson.loads(records[0]["line"])["msg"] == "msg 3"
    # Backtracking patterns are no threat: RE2 matches in linear time.
    await subscription.connection.send('{"filter": {"grep": "(a+)+$"}}')
    await server.send(["a" * 5000 + "!"])
    await subscription.receive_until(lambda: len(subscription.notices("filter")) == 2, "filter")
    await server.send(["a" * 5000])
    await subscription.records_until(2)


async def test_since_resumes_without_repeats_and_reports_a_gap(server: Server) -> None:
    first = await server.subscribe()
    run = first.others[0]["hello"]["run"]
    await server.send(json_lines(20))
    await first.records_until(20)
    await first.connection.close()
    await server.send(json_lines(20, start=20))
    await server.cli.wait_for(lambda: len(server.cli.out) == 40, "40 records on stdout")
    resumed = await server.subscribe(f"since=12&run={run}")
    records = await resumed.records_until(28)
    assert [record["seq"] for record in records] == list(range(13, 41))
    assert resumed.notices("gap") == []
    # The ring holds 50: asking from 0 after 60 records misses 10.
    await server.send(json_lines(20, start=40))
    await server.cli.wait_for(lambda: len(server.cli.out) == 60, "60 records on stdout")
    behind = await server.subscribe(f"since=0&run={run}")
    records = await behind.records_until(50)
    assert behind.notices("gap") == [{"notice": "gap", "count": 10}]
    assert records[0]["seq"] == 11


async def test_pause_then_resume_sends_what_was_missed(server: Server) -> None:
    subscription = await server.subscribe()
    watcher = await server.subscribe()
    await subscription.connection.send('{"pause": true}')
    await subscription.receive_until(lambda: subscription.notices("pause"), "the pause notice")
    await server.send(json_lines(5))
    await watcher.records_until(5)
    await server.send(json_lines(1, start=5))
    await watcher.records_until(6)
    assert subscription.records == []  # nothing came while paused
    await subscription.connection.send('{"pause": false}')
    records = await subscription.records_until(6)
    assert [record["seq"] for record in records] == list(range(1, 7))


async def flood_past_a_stuck_subscriber(
    tmp_path: Path, cli_processes: list[Cli], policy: str
) -> tuple[Server, Subscription]:
    """BIG_LINES through a server with a client that has stopped reading and one that reads;
    returns once the reading one has every record (it never waits for the stuck one)."""
    server = await start_server(
        tmp_path, cli_processes, f'subscriber_buffer = "1MiB"\nslow_subscriber = "{policy}"'
    )
    # With a one-frame queue this client soon stops reading from its socket.
    stuck = await server.subscribe(max_queue=1, max_size=None)
    fast = await server.subscribe(max_size=None)
    fast_reading = asyncio.create_task(fast.records_until(TOTAL))
    await server.send(BIG_LINES)
    await fast_reading
    return server, stuck


async def test_a_subscriber_that_never_reads_is_dropped_from_not_waited_for(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    server, stuck = await flood_past_a_stuck_subscriber(tmp_path, cli_processes, "drop")
    await server.cli.wait_for(lambda: len(server.cli.out) == TOTAL, "every record on stdout")
    # Once it reads, what it got and what it was told it missed add up to everything.
    await stuck.receive_until(
        lambda: len(stuck.records) + sum(n["count"] for n in stuck.notices("dropped")) >= TOTAL,
        "records and dropped notices for everything",
    )
    dropped = sum(notice["count"] for notice in stuck.notices("dropped"))
    assert dropped > 0
    assert len(stuck.records) + dropped == TOTAL
    seqs = [record["seq"] for record in stuck.records]
    assert seqs == sorted(set(seqs))
    _, _, metrics = await asyncio.to_thread(http_get, server.url("/metrics"))
    assert f'aggregator_dropped_total{{sink="live",reason="slow_subscriber"}} {dropped}' in metrics


async def test_a_slow_subscriber_is_disconnected_when_so_configured(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    _, stuck = await flood_past_a_stuck_subscriber(tmp_path, cli_processes, "disconnect")
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(DEADLINE):
            while True:
                stuck.take(await stuck.connection.recv())
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert len(stuck.records) < TOTAL


async def test_token_is_required_and_never_logged(tmp_path: Path, cli_processes: list[Cli]) -> None:
    token = "s3cret-token-value"
    server = await start_server(
        tmp_path, cli_processes, 'auth_token = "${WS_TOKEN}"', env={"WS_TOKEN": token}, debug=True
    )
    for path in ("/ws", "/", "/metrics"):
        url = server.url(path).replace("ws:", "http:")
        status, headers, _ = await asyncio.to_thread(http_get, url)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(InvalidStatus):
        await connect(server.url("/ws"), additional_headers={"Authorization": "Bearer wrong"})
    by_header = await server.subscribe("", additional_headers={"Authorization": f"Bearer {token}"})
    by_query = await server.subscribe(f"token={token}")
    await server.send(json_lines(1))
    await by_header.records_until(1)
    await by_query.records_until(1)
    status, _, page = await asyncio.to_thread(http_get, server.url("/", f"token={token}"))
    assert status == 200 and "<title>" in page
    status, _, health = await asyncio.to_thread(http_get, server.url("/healthz"))
    assert status == 200 and token not in health
    await server.close_clients()
    assert await server.cli.stop() == 0
    assert all(token not in line for line in server.cli.err)


async def test_origins_limits_and_paths(tmp_path: Path, cli_processes: list[Cli]) -> None:
    server = await start_server(
        tmp_path,
        cli_processes,
        'allowed_origins = ["https://logs.example"]\nmax_subscribers = 2',
    )
    host, port = server.http
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.url("/ws"), origin="http://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    same = await connect(server.url("/ws"), origin=f"http://{host}:{port}")  # type: ignore[arg-type]
    listed = await connect(server.url("/ws"), origin="https://logs.example")  # type: ignore[arg-type]
    await Subscription(listed).receive_until(lambda: True, "nothing")
    with pytest.raises(InvalidStatus) as full:
        await connect(server.url("/ws"))
    assert full.value.response.status_code == 503
    await same.close()
    await listed.close()
    # Request paths never reach the filesystem.
    for path in ("/../../etc/passwd", "/static/../../../etc/passwd", "/%2e%2e/etc/passwd", "/x"):
        status, _, _ = await asyncio.to_thread(http_get, server.url(path))
        assert status == 404, path
    status, headers, script = await asyncio.to_thread(http_get, server.url("/app.js"))
    assert status == 200 and "textContent" in script
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_a_client_that_answers_no_ping_is_reaped(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    server = await start_server(tmp_path, cli_processes, 'ping_interval = "200ms"')
    silent = await server.subscribe()
    silent.connection.transport.pause_reading()  # reads nothing more, so answers no ping
    await server.subscribe()

    async def subscribers() -> str:
        _, _, text = await asyncio.to_thread(http_get, server.url("/metrics"))
        return next(line for line in text.splitlines() if line.startswith("aggregator_subs"))

    assert await subscribers() == 'aggregator_subscribers{sink="live"} 2'
    async with asyncio.timeout(DEADLINE):
        while await subscribers() != 'aggregator_subscribers{sink="live"} 1':
            await asyncio.sleep(0.05)
    silent.connection.transport.abort()  # it never reads its end of the close


async def test_large_incoming_frames_close_with_1009(server: Server) -> None:
    subscription = await server.subscribe()
    await subscription.connection.send("x" * (64 * 1024 + 1))
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(DEADLINE):
            await subscription.connection.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await server.subscribe()  # the server goes on


async def test_the_sinks_own_filter_comes_first(tmp_path: Path, cli_processes: list[Cli]) -> None:
    server = await start_server(tmp_path, cli_processes, 'filter = { level = "warn" }')
    subscription = await server.subscribe()
    await server.send(json_lines(3) + json_lines(1, start=3, level="error"))
    records = await subscription.records_until(1)
    assert orjson.loads(records[0]["line"])["msg"] == "msg 3"
    await server.cli.wait_for(lambda: len(server.cli.out) == 4, "all 4 on stdout")
    await server.close_clients()


async def test_metrics_and_health(server: Server) -> None:
    subscription = await server.subscribe()
    await server.subscribe("level=warn")
    await server.subscribe("level=warn")
    await server.send(json_lines(7))
    await subscription.records_until(7)
    status, headers, text = await asyncio.to_thread(http_get, server.url("/metrics"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for sample in (
        'aggregator_records_in_total{source="net"} 7',
        'aggregator_records_out_total{sink="out"} 7',
        'aggregator_records_out_total{sink="live"} 7',
        'aggregator_late_total{source="net"} 0',
        'aggregator_subscribers{sink="live"} 3',
        'aggregator_subscriber_groups{sink="live"} 2',
        'aggregator_connections{source="net"} 0',
        'aggregator_queue_depth{queue="sink:live"} 0',
        "aggregator_parse_workers 0",  # a socket's small reads are parsed on the loop
    ):
        assert sample in text.splitlines(), sample
    assert re.search(r"^aggregator_merge_delay_seconds \d", text, re.MULTILINE)
    status, _, body = await asyncio.to_thread(http_get, server.url("/healthz"))
    health = orjson.loads(body)
    assert status == 200 and health["status"] == "ok" and health["sources"] == 1


def test_a_public_listen_needs_a_token_or_allow_anonymous(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[sources.in]\ntype = "stdin"\n[sinks.live]\ntype = "websocket"\nlisten = "0.0.0.0:0"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "run", "-c", str(config)],
        capture_output=True, text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2
    assert "sinks.live.listen: 0.0.0.0:0 is reachable from other machines" in result.stderr
    config.write_text(config.read_text() + "allow_anonymous = true\n")
    checked = subprocess.run(
        [sys.executable, "-m", "aggregator", "check", "-c", str(config)],
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


async def test_tail_ws_serves_while_printing(tmp_path: Path, cli_processes: list[Cli]) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    cli = await start_cli("tail", str(log), "--ws", "127.0.0.1:0", cwd=tmp_path)
    cli_processes.append(cli)
    host, port = await cli.serving()
    connection = await connect(f"ws://{host}:{port}/ws?format=text")
    subscription = Subscription(connection)
    await subscription.receive_until(lambda: subscription.others, "the hello")
    await follow_synced(cli, log, "synced")  # the tailer starts at the end, like tail -F
    with log.open("a") as file:
        file.write("hello over the wire\n")
    await cli.wait_for_out("hello over the wire")
    await subscription.receive_until(
        lambda: any(line.endswith(" app.log | hello over the wire") for line in subscription.texts),
        "the line over the WebSocket",
    )
    await connection.close()
    assert await cli.stop() == 0


async def test_health_turns_503_when_a_source_fails(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """stdin opened for writing only cannot be read: that source fails, the rest goes on."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\n[sources.input]\ntype = "stdin"\n'
        '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    )
    write_only = os.open(tmp_path / "w", os.O_WRONLY | os.O_CREAT)
    try:
        cli = await start_cli("run", "-c", str(config), cwd=tmp_path, stdin=write_only)
    finally:
        os.close(write_only)
    cli_processes.append(cli)
    host, port = await cli.serving()
    await cli.wait_for(lambda: any("source input stopped" in line for line in cli.err), "fail")
    status, _, body = await asyncio.to_thread(http_get, f"http://{host}:{port}/healthz")
    assert status == 503
    assert orjson.loads(body)["failed"] == ["source input"]
    assert str(tmp_path) not in body


def test_check_never_shows_the_token(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[sources.in]\ntype = "stdin"\n'
        '[sinks.live]\ntype = "websocket"\nlisten = "0.0.0.0:8765"\nauth_token = "hunter2"\n'
    )
    checked = subprocess.run(
        [sys.executable, "-m", "aggregator", "check", "-c", str(config)],
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert 'auth_token="**********"' in checked.stdout
    assert "hunter2" not in checked.stdout + checked.stderr


async def test_rates_count_every_record_per_source_once_a_second(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Rates frames count what each source sent, whatever the subscriber's filter; a replay
    is not counted, and quiet sources are listed with 0."""
    other = '[sources.other]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "json"\n'
    server = await start_server(tmp_path, cli_processes, "replay = 500", extra_sources=other)
    filtered = await server.subscribe("source=other&level=error")
    await filtered.receive_until(lambda: filtered.rates, "a first rates frame")
    await server.send(json_lines(300))
    await send_lines(await server.source_address("other"), json_lines(7, level="error"))
    await filtered.records_until(7)

    def counted(source: str) -> int:
        return sum(frame["rates"].get(source, 0) for frame in filtered.rates)

    await filtered.receive_until(
        lambda: counted("net") == 300 and counted("other") == 7, "rates of 300 and 7"
    )
    first = filtered.rates[0]
    assert first["interval"] == 1 and list(first["rates"]) == ["net", "other"]
    assert filtered.rates[-1]["last_seq"] == 307
    # A newcomer's replay of 307 records is not traffic: its rates stay at 0.
    late = await server.subscribe("replay=500")
    await late.receive_until(lambda: len(late.rates) >= 2, "two rates frames")
    assert len(late.records) == 307
    assert all(count == 0 for frame in late.rates for count in frame["rates"].values())
    await server.close_clients()
