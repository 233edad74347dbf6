"""The otlp sink (SPEC §3 "otlp", §6) against a real HTTP receiver that parses every body with
the official opentelemetry-proto classes: what it maps, and how it delivers through a receiver
that is away, busy, slow, or refuses, and through a SIGKILL."""

import asyncio
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEADLINE, Cli, start_cli, wait_until
from tests.helpers.otlp_receiver import Receiver, Reply
from tests.helpers.web import http_get

CONTAINERS = "var/log/containers"
POD_LOG = "shop-7d9f_prod_web-" + "a" * 64 + ".log"


def write_cri(path: Path, start: int, count: int) -> list[str]:
    """``count`` CRI lines with JSON messages (every third at level error); the messages."""
    messages = []
    with path.open("a") as file:
        for n in range(start, start + count):
            level = "error" if n % 3 == 0 else "info"
            message = f'{{"level": "{level}", "msg": "line {n}", "n": {n}}}'
            messages.append(message)
            file.write(
                f"2026-12-05T10:00:{n // 1000:02d}.{n % 1000:03d}000000Z stdout F {message}\n"
            )
    return messages


def config(tmp_path: Path, port: int, **sink: str) -> Path:
    """``run``'s config: the CRI files under var/log/containers to an otlp sink, and a
    websocket sink for /metrics."""
    keys = {
        "endpoint": f'"http://127.0.0.1:{port}"',
        "compression": '"gzip"',
        "batch": '{ max_records = 50, max_delay = "50ms" }',
        **sink,
    }
    lines = "\n".join(f"{key} = {value}" for key, value in keys.items())
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[aggregator]
state_dir = "{tmp_path / "state"}"
checkpoint_interval = "100ms"

[sources.pods]
type = "file"
paths = ["{tmp_path / CONTAINERS}/*.log"]
start_at = "beginning"
fields = {{ team = "${{TEAM:-none}}" }}

[sinks.otel]
type = "otlp"
headers = {{ Authorization = "Bearer ${{OTLP_TOKEN:-}}" }}
service_name = "shop"
node = "node-1"
{lines}

[sinks.live]
type = "websocket"
listen = "127.0.0.1:0"
"""
    )
    return path


def logs(tmp_path: Path) -> Path:
    directory = tmp_path / CONTAINERS
    directory.mkdir(parents=True, exist_ok=True)
    return directory / POD_LOG


async def start(tmp_path: Path, port: int, cli_processes: list[Cli], **sink: str) -> Cli:
    cli = await start_cli(
        "run", "-c", str(config(tmp_path, port, **sink)), cwd=tmp_path,
        env={"OTLP_TOKEN": "s3cret", "TEAM": "payments"},
    )  # fmt: skip
    cli_processes.append(cli)
    return cli


async def metric(cli: Cli, name: str) -> float:
    host, port = await cli.serving()
    text = (await asyncio.to_thread(http_get, f"http://{host}:{port}/metrics"))[2]
    match = re.search(rf'^{name}\{{sink="otel"\}} (\S+)$', text, re.M)
    assert match is not None, f"{name} not in /metrics:\n{text}"
    return float(match.group(1))


async def metric_reaches(cli: Cli, name: str, value: float) -> None:
    """Until /metrics shows ``name`` at ``value`` (a request is counted once its answer is
    read, a moment after the receiver has it)."""
    current = None
    try:
        async with asyncio.timeout(DEADLINE):
            while (current := await metric(cli, name)) != value:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{name} stayed at {current}, not {value}") from None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    one = Receiver()
    yield one
    one.stop()


async def test_records_map_to_otlp_logs(
    tmp_path: Path, receiver: Receiver, cli_processes: list[Cli]
) -> None:
    """Each record is a logRecord (time, severity, body, attributes) under a resource naming
    the node, the service and the pod from the file's path; gzip, headers and /v1/logs."""
    messages = write_cri(logs(tmp_path), 0, 120)
    receiver.start()
    cli = await start(tmp_path, receiver.port, cli_processes)
    await wait_until(lambda: len(receiver.bodies()) >= 120, "120 records received")
    assert receiver.bodies() == messages
    assert not receiver.bad
    first = receiver.received[0]
    assert first.path == "/v1/logs"
    assert first.headers["Content-Encoding"] == "gzip"
    assert first.headers["Authorization"] == "Bearer s3cret"
    resource_logs = first.request.resource_logs[0]
    resource = {a.key: a.value.string_value for a in resource_logs.resource.attributes}
    assert resource == {
        "host.name": "node-1",
        "service.name": "shop",
        "k8s.namespace.name": "prod",
        "k8s.pod.name": "shop-7d9f",
        "k8s.container.name": "web",
        "container.id": "a" * 64,
    }
    record = resource_logs.scope_logs[0].log_records[0]
    assert record.time_unix_nano == 1_796_464_800_000_000_000  # the runtime's time, in ns
    assert record.observed_time_unix_nano >= record.time_unix_nano
    assert (record.severity_number, record.severity_text) == (17, "ERROR")
    attributes = {a.key: a.value for a in record.attributes}
    assert attributes["n"].int_value == 0
    assert attributes["msg"].string_value == "line 0"
    assert attributes["stream"].string_value == "stdout"
    assert attributes["team"].string_value == "payments"
    assert attributes["log.file.path"].string_value.endswith(POD_LOG)
    await metric_reaches(cli, "aggregator_otlp_records_sent_total", 120)
    assert "s3cret" not in "\n".join(cli.err)


async def test_a_receiver_away_gets_everything_once_it_comes(
    tmp_path: Path, receiver: Receiver, cli_processes: list[Cli]
) -> None:
    """While the receiver is away the sink retries and holds the pipeline; once it comes,
    every record arrives, once, in order."""
    messages = write_cri(logs(tmp_path), 0, 300)
    cli = await start(tmp_path, receiver.port, cli_processes)
    await cli.wait_for(lambda: any("cannot reach the receiver" in line for line in cli.err),
                       "a retry")  # fmt: skip
    await metric_reaches(cli, "aggregator_remote_connected", 0)
    receiver.start()
    await wait_until(lambda: len(receiver.bodies()) >= 300, "300 records received")
    assert receiver.bodies() == messages
    assert await metric(cli, "aggregator_otlp_retries_total") >= 1


async def test_503_with_retry_after_is_honoured(
    tmp_path: Path, receiver: Receiver, cli_processes: list[Cli]
) -> None:
    """A 503 with Retry-After: the same request comes again no sooner than asked, and the
    records are delivered once."""
    receiver.replies.append(Reply(503, b'{"message": "busy"}', {"Retry-After": "1"}))
    receiver.start()
    messages = write_cri(logs(tmp_path), 0, 40)
    await start(tmp_path, receiver.port, cli_processes)
    await wait_until(lambda: len(receiver.bodies()) >= 40, "40 records received")
    assert receiver.bodies() == messages
    assert receiver.received[0].status == 503
    assert receiver.arrivals[1] - receiver.arrivals[0] >= 0.95
    assert receiver.bodies(delivered_only=False) == messages + messages  # the retry only


async def test_400_is_not_retried_and_named(
    tmp_path: Path, receiver: Receiver, cli_processes: list[Cli]
) -> None:
    """A 400 drops its request (counted as rejected, the receiver's reason on stderr); the
    next requests go on; partialSuccess's rejected records are counted too."""
    receiver.replies.append(Reply(400, b'{"message": "field too long"}'))
    receiver.replies.append(
        Reply(200, b'{"partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "old"}}')
    )
    receiver.start()
    write_cri(logs(tmp_path), 0, 150)  # three requests of 50
    cli = await start(tmp_path, receiver.port, cli_processes)
    await wait_until(lambda: len(receiver.bodies()) >= 100, "the two later requests")
    await cli.wait_for(lambda: any("field too long" in line for line in cli.err), "the reason")
    await cli.wait_for(lambda: any("rejected 3 of 50" in line for line in cli.err), "partial")
    assert len(receiver.received) == 3  # not sent again
    await metric_reaches(cli, "aggregator_otlp_records_rejected_total", 53)
    await metric_reaches(cli, "aggregator_otlp_records_sent_total", 97)


async def test_a_slow_receiver_gets_one_request_at_a_time(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A receiver that takes 200 ms per request: never two requests at once, all delivered."""
    receiver = Receiver(delay=0.2)
    receiver.start()
    try:
        messages = write_cri(logs(tmp_path), 0, 400)
        cli = await start(tmp_path, receiver.port, cli_processes)
        await wait_until(lambda: len(receiver.bodies()) >= 400, "400 records received")
        assert receiver.bodies() == messages
        assert receiver.most_in_flight == 1
        await metric_reaches(cli, "aggregator_otlp_requests_total", len(receiver.received))
    finally:
        receiver.stop()


@pytest.mark.slow
async def test_sigkill_mid_batch_loses_nothing(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """SIGKILL while lines are written and requests are under way: after a restart every
    record has arrived, and only the few not yet checkpointed arrive twice."""
    receiver = Receiver(delay=0.02)
    receiver.start()
    path = logs(tmp_path)
    messages = write_cri(path, 0, 500)

    async def write() -> None:
        for start_at in range(500, 2500, 50):  # live: 50 lines every 100 ms
            messages.extend(write_cri(path, start_at, 50))
            await asyncio.sleep(0.1)

    try:
        cli = await start(tmp_path, receiver.port, cli_processes)
        await wait_until(lambda: len(receiver.bodies()) >= 500, "the file's first lines")
        writer = asyncio.create_task(write(), name="test:write")
        await wait_until(lambda: len(receiver.bodies()) >= 1000, "1000 records received")
        cli.proc.send_signal(signal.SIGKILL)
        await cli.exit_code()
        before = len(receiver.bodies())
        cli = await start(tmp_path, receiver.port, cli_processes)
        await writer
        await wait_until(lambda: set(receiver.bodies()) >= set(messages), "every record")
        counts = Counter(receiver.bodies())
        repeats = sum(count - 1 for count in counts.values())
        # Checkpoints (every 100 ms) pass only what the receiver took: what comes again is
        # what was delivered since the last one, and the requests that were under way.
        assert repeats <= 400, (repeats, before)
        assert not receiver.bad
        assert await cli.stop() == 0
    finally:
        receiver.stop()


async def test_tls_to_a_receiver_verified_by_its_ca(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """With tls = { ca }, records go over HTTPS to a receiver whose certificate that CA signs;
    without it, the receiver cannot be verified, and the sink says so and retries."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    receiver = Receiver(tls=(cert, key))
    receiver.start()
    try:
        messages = write_cri(logs(tmp_path), 0, 30)
        endpoint = f'"https://127.0.0.1:{receiver.port}"'
        cli = await start(tmp_path, 0, cli_processes, endpoint=endpoint)
        await cli.wait_for(lambda: any("cannot reach" in line for line in cli.err), "a retry")
        await cli.stop()
        tls = f'{{ ca = "{cert}" }}'
        await start(tmp_path, 0, cli_processes, endpoint=endpoint, tls=tls)
        await wait_until(lambda: len(receiver.bodies()) >= 30, "30 records over TLS")
        assert receiver.bodies() == messages
    finally:
        receiver.stop()


async def test_check_shows_headers_as_stars(tmp_path: Path) -> None:
    """``check`` prints an otlp sink's header values as stars."""
    path = config(tmp_path, 4318)
    cli = await start_cli("check", "-c", str(path), cwd=tmp_path, env={"OTLP_TOKEN": "s3cret"})
    assert await cli.exit_code() == 0, cli.err
    text = "\n".join(cli.out + cli.err)
    assert "s3cret" not in text
    assert "otlp" in text
