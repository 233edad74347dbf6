"""Order at a central across nodes (SPEC §5 through a remote source): nodes that start
together, the stream's backlog at start, nodes named, a clean stop, and bad streams."""

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from tests.conftest import DEADLINE, Cli, wait_until
from tests.helpers.nats_server import NatsServer, consumer_made, nats_server
from tests.helpers.outputs import records_in
from tests.jetstream.test_nats import (
    central_config,
    lines_of,
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
    # Nodes that start while the central runs: what they publish before it consumes is its
    # backlog at start, merged as files at start are (the test below).
    import nats

    client = await nats.connect(nats_server.url)
    try:
        await consumer_made(client.jetstream(), "central")
    finally:
        await client.close()
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


@pytest.mark.slow
async def test_a_node_that_publishes_as_the_central_binds_is_live_not_backlog(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """A node's message stored the moment the central asks for its consumer is live, not
    backlog (the backlog is what the stream held before): a second node's older record that
    comes after it, within order_window, is written first. The central once listed its
    backlog after binding, and wrote the first node's record at once, as catch-up."""
    import nats

    from aggregator.jetstream.messages import encode_message, subject_for
    from aggregator.record.record import Record

    out = tmp_path / "central.json"
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    published: list[str] = []

    async def publish(node: str, second: int) -> None:
        ts = 1_767_225_600_000_000 + second * 1_000_000  # 2026-01-01T00:00:0S
        record = Record(ts, "app", "/var/log/app.log", f"{node} {second}")
        payload = encode_message(node, "app", [record], ts)
        await js.publish(subject_for("logs", node, "app"), payload)
        published.append(node)

    async def on_create(message: object) -> None:
        if not published:  # the central's request: the server has not made the consumer yet
            await publish("new", 2)

    creates = [
        await client.subscribe(f"$JS.API.CONSUMER.{api}.LOGS.>", cb=on_create)
        for api in ("CREATE", "DURABLE.CREATE")
    ]
    try:
        central = central_config(tmp_path, nats_server.url, out, order_window="3s")
        cli = await start(cli_processes, central, tmp_path)
        await consumer_made(js, "central")
        await wait_until(lambda: published == ["new"], "the message published at the request")
        await publish("old", 1)
        await wait_for_lines(out, 2)
        assert lines_of(out) == ["1", "2"]  # "old 1" then "new 2"
        assert not any(record.get("late") for record in records_in(out))
        assert not any("catching up" in line for line in cli.err), cli.err
    finally:
        for subscription in creates:
            await subscription.unsubscribe()
        await client.close()


def test_text_shows_a_remote_record_s_node() -> None:
    """In `text`, a record that came through a remote source is labelled NODE/SOURCE; the same
    file on two nodes keeps two labels; a local record is labelled by its source alone."""
    from aggregator.record.formats import text_encoder
    from aggregator.record.record import Record

    local = Record(1_000_000, "app", "/var/log/a.log", "here")
    remote = [Record(2_000_000, "app", "/var/log/a.log", f"from {node}") for node in "xy"]
    remote[0].node, remote[1].node = "web-7d4b9", "db-1"
    text = text_encoder(["app"])([local, *remote, local]).decode().splitlines()
    assert [line.split(" | ")[0].split(" ", 1)[1] for line in text] == [
        "app", "web-7d4b9/app", "db-1/app", "app"
    ]  # fmt: skip


async def test_nodes_are_named_quiet_once_and_a_clean_stop_said(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """The central's /metrics gives each node's last-seen age and lag; a node silent for
    quiet_after is named on stderr once (and again only after it spoke); a node whose
    sidecar stops cleanly says so (an end marker), and is not named quiet."""
    from tests.helpers.web import http_get

    quiet, clean = tmp_path / "quiet.log", tmp_path / "clean.log"
    quiet.write_text("2026-01-01T00:00:00.000000Z quiet 0\n")
    clean.write_text("2026-01-01T00:00:00.500000Z clean 0\n")
    out = tmp_path / "central.json"
    config = central_config(tmp_path, nats_server.url, out, order_window="100ms")
    config.write_text(
        config.read_text().replace('durable = "central"', 'durable = "central"\nquiet_after = "1s"')
        + '\n[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    )
    central = await start(cli_processes, config, tmp_path)
    _, port = await central.serving()
    sidecars = {}
    for node, logs in (("quiet", quiet), ("clean", clean)):
        config = sidecar_config(tmp_path, nats_server.url, node, logs)
        sidecars[node] = await start(cli_processes, config, tmp_path)
    await wait_for_lines(out, 2)
    assert await sidecars["clean"].stop() == 0
    await central.wait_for(
        lambda: any("node clean stopped app cleanly" in line for line in central.err), "the end"
    )

    def named(node: str) -> list[str]:
        return [line for line in central.err if f"node {node} has sent nothing" in line]

    await central.wait_for(lambda: named("quiet"), "the quiet node named")

    async def metrics() -> str:
        return (await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/metrics"))[2]

    async def last_seen() -> dict[str, float]:
        text = await metrics()
        return {
            line.split('node="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("aggregator_nats_node_last_seen_seconds{")
        }

    async with asyncio.timeout(DEADLINE):  # quiet for three times quiet_after: still once
        while (await last_seen()).get("quiet", 0.0) < 3.0:
            await asyncio.sleep(0.1)  # polling /metrics with a deadline
    assert len(named("quiet")) == 1 and not named("clean")
    text = await metrics()
    lags = [line for line in text.splitlines() if line.startswith("aggregator_nats_node_lag")]
    assert len(lags) == 2, text  # a lag for each node
    with quiet.open("a") as file:
        file.write("2026-01-01T00:00:01.000000Z quiet 1\n")
    await central.wait_for(
        lambda: any("node quiet speaks again" in line for line in central.err), "it speaks"
    )
    await central.wait_for(lambda: len(named("quiet")) == 2, "named again after it spoke")


@pytest.mark.parametrize(
    ("pattern", "takes"),
    [("logs.>", True), (">", True), ("logs.*.*", False), ("*.>", True), ("other.>", False),
     ("logs", False), ("logs.a.>", False)],
)  # fmt: skip
def test_which_stream_subjects_take_ours(pattern: str, takes: bool) -> None:
    """A stream made by someone else is used only if its subjects take every SUBJECT.>."""
    from aggregator.jetstream.link import covers

    assert covers(pattern, "logs.>") is takes


async def test_a_stream_with_other_subjects_and_a_bad_node_name_are_said(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """A stream of that name made by someone else for other subjects: the sidecar and the
    central say so, naming both, and retry; a node name that is not a subject token is said
    and replaced in the subject, the records keep it."""
    import nats
    from nats.js.api import StreamConfig

    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name="LOGS", subjects=["orders.>"]))
    logs = tmp_path / "a.log"
    logs.write_text("2026-01-01T00:00:00.000000Z hello\n")
    out = tmp_path / "central.json"
    central = await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    node = "web 1.example"
    sidecar = await start(
        cli_processes, sidecar_config(tmp_path, nats_server.url, node, logs), tmp_path
    )
    for part in (central, sidecar):
        await part.wait_for(
            lambda part=part: any("['orders.>'], which do not take logs.>" in e for e in part.err),
            "the stream's subjects named",
        )
    await sidecar.wait_for(
        lambda: any("'web_1_example'" in line and "not a valid" in line for line in sidecar.err),
        "the node name said",
    )
    await js.delete_stream("LOGS")  # the operator fixes it: both carry on
    await client.close()
    await wait_for_lines(out, 1)
    assert [r["node"] for r in records_in(out)] == [node]


async def test_a_durable_of_another_central_is_said_not_taken(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """Two centrals on one stream with one durable name: the second finds the first one's
    consumer (another filter), says so and retries instead of taking that share; once the
    operator removes it, it makes its own and carries on."""
    import nats
    from nats.js.api import ConsumerConfig, StreamConfig

    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name="LOGS", subjects=["logs.>"]))
    await js.add_consumer("LOGS", ConsumerConfig(durable_name="central",
                                                 filter_subject="logs.east.>"))  # fmt: skip
    out = tmp_path / "central.json"
    central = await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    said = "consumer central exists and takes ['logs.east.>'], not logs.>"
    await central.wait_for(
        lambda: any(said in line for line in central.err), "the other central's consumer named"
    )
    await js.delete_consumer("LOGS", "central")  # the operator fixes it: it carries on
    async with asyncio.timeout(DEADLINE):
        while True:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                info = await js.consumer_info("LOGS", "central")
                if info.config.filter_subject == "logs.>":
                    break
            await asyncio.sleep(0.05)  # asking the server again, under the deadline
    await client.close()
