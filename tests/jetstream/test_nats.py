"""The nats sink and source with a real nats-server (SPEC §6 NATS): sidecars publish, a central
aggregator consumes; every record once, ordered by event time, across crashes and outages."""

import itertools
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from aggregator.jetstream.messages import BadMessage, decode_message, encode_message, subject_for
from aggregator.record.record import Record
from tests.conftest import DEADLINE, Cli, start_cli, wait_until, wait_while_growing
from tests.helpers.nats_server import NatsServer, nats_server
from tests.helpers.outputs import finished_count, records_in

__all__ = ["nats_server"]  # the fixture, used by name


def toml_urls(url: str | list[str]) -> str:
    """One server's URL, or a cluster's as a TOML array."""
    if isinstance(url, str):
        return f'"{url}"'
    return "[" + ", ".join(f'"{one}"' for one in url) + "]"


def toml_keys(keys: dict[str, str]) -> str:
    return "".join(f"{key} = {value}\n" for key, value in keys.items())


def sidecar_config(
    root: Path, url: str | list[str], node: str, logs: Path, follow: bool = True, **sink: str
) -> Path:
    """A sidecar reading LOGS into a nats sink; `sink` adds keys (TOML values) to the sink."""
    path = root / f"sidecar-{node}.toml"
    path.write_text(
        f"""
[aggregator]
state_dir = "{root / ("state-" + node)}"
checkpoint_interval = "100ms"
parse_workers = 0

[sources.app]
type = "file"
paths = ["{logs}"]
start_at = "beginning"
follow = {"true" if follow else "false"}

[sinks.bus]
type = "nats"
url = {toml_urls(url)}
node = "{node}"
{toml_keys(sink)}"""
    )
    return path


def central_config(
    root: Path, url: str | list[str], out: Path, order_window: str = "250ms", **source: str
) -> Path:
    """A central reading the bus into a JSON file; `source` adds keys to the nats source."""
    path = root / "central.toml"
    path.write_text(
        f"""
[aggregator]
state_dir = "{root / "state-central"}"
checkpoint_interval = "100ms"
order_window = "{order_window}"

[sources.bus]
type = "nats"
url = {toml_urls(url)}
durable = "central"
{toml_keys(source)}
[sinks.out]
type = "file"
path = "{out}"
format = "json"
fsync = "never"
"""
    )
    return path


def lines_of(path: Path) -> list[str]:
    """The lines in a JSON output, without their leading timestamps."""
    return [str(record["line"]).partition(" ")[2] for record in records_in(path)]


def write_lines(path: Path, start: int, count: int, prefix: str = "line") -> None:
    with path.open("a") as file:
        for number in range(start, start + count):
            second, micro = divmod(number, 1000)
            file.write(f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}.{micro:03d}000Z "
                       f"{prefix} {number}\n")  # fmt: skip


async def start(cli_processes: list[Cli], config: Path, cwd: Path) -> Cli:
    cli = await start_cli("run", "-c", str(config), cwd=cwd)
    cli_processes.append(cli)
    return cli


async def wait_for_lines(path: Path, count: int) -> None:
    """Until ``path`` has ``count`` lines: as long as lines keep coming (thousands of records
    through a sidecar, the server and a central take longer on a busy box), counted without
    parsing them every 50 ms (which took a core of its own at 20,000)."""
    await wait_while_growing(
        lambda: finished_count(path) >= count,
        lambda: finished_count(path),
        f"{count} lines in {path.name}",
    )


def test_message_round_trip() -> None:
    """A message keeps every record's fields and place in its file, and gains the node."""
    first = Record(1_000_000, "app", "/var/log/a.log", "hello", "warn", {"user": "ann"})
    first.lane, first.lane_seq = "1:2@0~x", 7
    second = Record(2_000_000, "app", "stdin", 'quote " and \\ back')
    decoded = decode_message(encode_message("node-1", "app", [first, second], 2_000_000))
    assert (decoded.node, decoded.source, decoded.watermark) == ("node-1", "app", 2_000_000)
    one, two = decoded.records
    assert (one.ts, one.source, one.origin, one.line) == (1_000_000, "app", "/var/log/a.log",
                                                          "hello")  # fmt: skip
    assert (one.level, one.fields, one.node, one.lane, one.lane_seq) == (
        "warn", {"user": "ann"}, "node-1", "1:2@0~x", 7
    )  # fmt: skip
    assert (two.line, two.lane, two.lane_seq) == ('quote " and \\ back', None, 0)
    assert two.node == "node-1"


META = b'{"v":1,"node":"n","source":"s","wm":0,"origins":["o"],"lanes":[]}\n'


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json\n", b'{"v": 1}\n', META + b'{"no": "rows"}', META + b"[[1, 2]]",
     META + b'[["x", 0, "line", "", -1, 0, false, null]]',
     META + b'[[1, 5, "line", "", -1, 0, false, null]]'],
)  # fmt: skip
def test_poison_payloads_are_refused(payload: bytes) -> None:
    """What a nats sink did not write is a BadMessage, never another error."""
    with pytest.raises(BadMessage):
        decode_message(payload)


def test_subjects_are_made_safe() -> None:
    """Dots, wildcards and spaces in names cannot make extra subject tokens."""
    assert subject_for("logs", "web-1.eu", "a.log *>") == "logs.web-1_eu.a_log___"


async def test_sidecar_to_central(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """Lines of a sidecar's file reach the central's file once, in order, with node kept."""
    logs = tmp_path / "a.log"
    write_lines(logs, 0, 500)
    out = tmp_path / "central.json"
    await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    sidecar = await start(
        cli_processes, sidecar_config(tmp_path, nats_server.url, "n1", logs), tmp_path
    )
    await wait_for_lines(out, 500)
    write_lines(logs, 500, 500)
    await wait_for_lines(out, 1000)
    records = records_in(out)
    assert lines_of(out) == [f"line {n}" for n in range(1000)]
    assert {(r["node"], r["source"], r["origin"]) for r in records} == {("n1", "app", str(logs))}
    assert [r["seq"] for r in records] == list(range(1, 1001))
    assert await sidecar.stop() == 0


@pytest.mark.slow
async def test_sidecar_sigkill_and_restart_delivers_every_record_once(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """A sidecar SIGKILLed mid-stream and restarted: every record exactly once at the central."""
    logs = tmp_path / "a.log"
    out = tmp_path / "central.json"
    await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    config = sidecar_config(tmp_path, nats_server.url, "n1", logs, max_records="50")
    write_lines(logs, 0, 20_000)
    sidecar = await start(cli_processes, config, tmp_path)
    await wait_for_lines(out, 2000)  # some lines at the central
    assert await sidecar.stop(signal.SIGKILL) == -signal.SIGKILL
    write_lines(logs, 20_000, 5000)
    sidecar = await start(cli_processes, config, tmp_path)
    await wait_for_lines(out, 25_000)
    assert await sidecar.stop() == 0
    assert lines_of(out) == [f"line {n}" for n in range(25_000)]


@pytest.mark.slow
async def test_server_outage_while_lines_are_written(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """nats-server stopped while lines are written, then started on its store: every record
    reaches the central once, and the sidecar's health shows the bus away meanwhile."""
    logs = tmp_path / "a.log"
    out = tmp_path / "central.json"
    await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    sidecar = await start(
        cli_processes, sidecar_config(tmp_path, nats_server.url, "n1", logs), tmp_path
    )
    write_lines(logs, 0, 1000)
    await wait_for_lines(out, 1000)
    await nats_server.stop(signal.SIGKILL)
    for start_at in range(1000, 3000, 200):
        write_lines(logs, start_at, 200)
    await sidecar.wait_for(
        lambda: any("lost the connection" in line for line in sidecar.err), "the outage noticed"
    )
    await nats_server.start()
    await wait_for_lines(out, 3000)
    write_lines(logs, 3000, 100)
    await wait_for_lines(out, 3100)
    assert lines_of(out) == [f"line {n}" for n in range(3100)]
    assert await sidecar.stop() == 0


async def test_sidecar_started_before_the_server(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A sidecar whose nats-server is not up yet waits for it and then delivers everything."""
    server = NatsServer(tmp_path / "nats")
    logs = tmp_path / "a.log"
    write_lines(logs, 0, 300)
    out = tmp_path / "central.json"
    sidecar = await start(cli_processes, sidecar_config(tmp_path, server.url, "n1", logs), tmp_path)
    try:
        await sidecar.wait_for(
            lambda: any("cannot connect to nats-server" in line for line in sidecar.err),
            "a retry reported",
        )
        await server.start()
        await start(cli_processes, central_config(tmp_path, server.url, out), tmp_path)
        await wait_for_lines(out, 300)
        assert lines_of(out) == [f"line {n}" for n in range(300)]
        assert await sidecar.stop() == 0
    finally:
        await server.stop(signal.SIGKILL)


async def test_two_sidecars_merge_by_time_with_node_kept(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """Two sidecars with the same source name, interleaved in time: merged by ts at the
    central (catching up on what they published while it was away), node kept."""
    out = tmp_path / "central.json"
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    with one.open("w") as a, two.open("w") as b:
        for number in range(400):
            file = a if number % 2 == 0 else b
            file.write(f"2026-01-01T00:00:{number // 10:02d}.{number % 10}00000Z n {number}\n")
    for node, logs in (("one", one), ("two", two)):
        config = sidecar_config(tmp_path, nats_server.url, node, logs, follow=False)
        sidecar = await start(cli_processes, config, tmp_path)
        assert await sidecar.exit_code() == 0  # read through, published, acknowledged
    await start(cli_processes, central_config(tmp_path, nats_server.url, out, "2s"), tmp_path)
    await wait_for_lines(out, 400)
    records = records_in(out)
    assert lines_of(out) == [f"n {n}" for n in range(400)]
    assert [r["node"] for r in records] == ["one" if n % 2 == 0 else "two" for n in range(400)]
    assert {r["source"] for r in records} == {"app"}


async def test_a_poison_message_is_terminated_and_counted(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """A message the sink did not write is terminated and counted; the records around it go on."""
    import nats

    logs = tmp_path / "a.log"
    write_lines(logs, 0, 10)
    out = tmp_path / "central.json"
    central = await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    sidecar = await start(
        cli_processes, sidecar_config(tmp_path, nats_server.url, "n1", logs), tmp_path
    )
    await wait_for_lines(out, 10)
    client = await nats.connect(nats_server.url)
    try:
        await client.jetstream().publish("logs.evil.x", b"\xff not a message")
    finally:
        await client.close()
    await central.wait_for(
        lambda: any("cannot be read" in line for line in central.err), "the poison reported"
    )
    write_lines(logs, 10, 10)
    await wait_for_lines(out, 20)
    assert lines_of(out) == [f"line {n}" for n in range(20)]
    assert await central.stop() == 0
    assert await sidecar.stop() == 0


async def test_central_restart_repeats_nothing(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """A central stopped (SIGTERM) while sidecars publish, then started again: it takes up
    where it stopped, nothing lost and nothing twice."""
    logs = tmp_path / "a.log"
    out = tmp_path / "central.json"
    config = central_config(tmp_path, nats_server.url, out)
    central = await start(cli_processes, config, tmp_path)
    sidecar = await start(
        cli_processes, sidecar_config(tmp_path, nats_server.url, "n1", logs), tmp_path
    )
    write_lines(logs, 0, 300)
    await wait_for_lines(out, 300)
    assert await central.stop() == 0
    write_lines(logs, 300, 300)  # published while the central is away
    central = await start(cli_processes, config, tmp_path)
    await wait_for_lines(out, 600)
    write_lines(logs, 600, 100)
    await wait_for_lines(out, 700)
    assert lines_of(out) == [f"line {n}" for n in range(700)]
    assert await central.stop() == 0
    assert await sidecar.stop() == 0


async def test_metrics_and_health_show_the_bus(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """/metrics counts what was published and acknowledged; /healthz names a bus that is away."""
    import asyncio

    from tests.helpers.web import http_get

    logs = tmp_path / "a.log"
    write_lines(logs, 0, 100)
    config = sidecar_config(tmp_path, nats_server.url, "n1", logs)
    config.write_text(
        config.read_text() + '\n[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    )
    sidecar = await start(cli_processes, config, tmp_path)
    host, port = await sidecar.serving()  # a port of its own: one chosen before may be taken
    base = f"http://{host}:{port}"

    def metric(text: str, name: str) -> float:
        prefix = f'{name}{{sink="bus"}} '
        return next(float(line[len(prefix):]) for line in text.splitlines()
                    if line.startswith(prefix))  # fmt: skip

    async def metrics() -> str:
        return (await asyncio.to_thread(http_get, f"{base}/metrics"))[2]

    scraped: list[str] = []

    async def acknowledged_all() -> None:
        async with asyncio.timeout(DEADLINE):  # scrape until it holds (each scrape a look)
            while True:
                scraped.append(await metrics())
                if metric(scraped[-1], "aggregator_nats_records_acknowledged_total") >= 100:
                    return
                await asyncio.sleep(0.05)

    await acknowledged_all()
    text = await metrics()
    assert metric(text, "aggregator_nats_published_total") >= 1
    assert metric(text, "aggregator_nats_pending_records") == 0
    assert metric(text, "aggregator_remote_connected") == 1
    await nats_server.stop(signal.SIGKILL)
    await sidecar.wait_for(
        lambda: any("lost the connection" in line for line in sidecar.err), "the outage noticed"
    )
    status, _, body = await asyncio.to_thread(http_get, f"{base}/healthz")
    assert status == 200 and orjson.loads(body)["disconnected"] == ["sink bus"]
    await nats_server.start()
    assert await sidecar.stop() == 0


async def test_a_line_too_large_for_a_message_is_truncated_not_stuck(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """Records that do not fit one NATS message are split over several; a single line larger
    than the server takes is truncated (flagged), and the stream goes on."""
    logs = tmp_path / "a.log"
    with logs.open("w") as file:
        file.write("small 0\n" + "x" * 1_500_000 + "\n" + "ü" * 300_000 + "\nsmall 1\n")
    out = tmp_path / "central.json"
    await start(cli_processes, central_config(tmp_path, nats_server.url, out), tmp_path)
    config = sidecar_config(tmp_path, nats_server.url, "n1", logs)
    config.write_text(
        config.read_text().replace('type = "file"', 'type = "file"\nmax_line_bytes = "2MiB"')
    )
    await start(cli_processes, config, tmp_path)
    await wait_until(lambda: len(records_in(out)) >= 4, "4 records at the central")
    got = records_in(out)
    assert [r["line"] for r in (got[0], got[3])] == ["small 0", "small 1"]
    assert got[1]["truncated"] is True and 1000 < len(str(got[1]["line"])) < 1 << 20
    assert got[2]["line"] == "ü" * 300_000 and "truncated" not in got[2]


async def test_a_quiet_source_of_a_busy_sidecar_does_not_hold_the_merge(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """A quiet source of a sidecar does not hold its busy source's records back for the
    central's idle_timeout (60 s): they come through within the window (2 s), which the
    central holds every live record for, since a node it has not heard from may speak."""
    import asyncio

    app, db = tmp_path / "app.log", tmp_path / "db.log"
    app.write_text("")
    db.write_text("2026-01-01T00:00:00.000000Z db 0\n")
    out = tmp_path / "central.json"
    central = central_config(tmp_path, nats_server.url, out, order_window="2s")
    central.write_text(
        central.read_text().replace("order_window", 'idle_timeout = "60s"\norder_window')
    )
    config = sidecar_config(tmp_path, nats_server.url, "n1", app)
    config.write_text(config.read_text() + f'\n[sources.db]\ntype = "file"\npaths = ["{db}"]\n'
                      'start_at = "beginning"\n')  # fmt: skip
    await start(cli_processes, central, tmp_path)
    await start(cli_processes, config, tmp_path)

    def apps() -> list[dict[str, object]]:
        return [r for r in records_in(out) if r["source"] == "app"]

    async def shows_within(seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await wait_until(apps, "an app record at the central")
        except TimeoutError:
            return False
        return True

    async with asyncio.timeout(DEADLINE):  # far less than the central's idle_timeout
        number = 0
        while not await shows_within(0.5):  # each new message carries a newer watermark
            write_lines(app, 60_000 + number, 1)
            number += 1
    assert {(r["node"], r["source"]) for r in records_in(out)} >= {("n1", "db"), ("n1", "app")}


@pytest.mark.slow
async def test_central_sigkill_loses_nothing(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """A central SIGKILLed mid-stream and restarted: nothing is lost; its own file may repeat
    only what it wrote after its last saved book, and only from where it was killed on."""
    logs = tmp_path / "a.log"
    out = tmp_path / "central.json"
    config = central_config(tmp_path, nats_server.url, out)
    write_lines(logs, 0, 20_000)
    central = await start(cli_processes, config, tmp_path)
    sidecar = await start(
        cli_processes, sidecar_config(tmp_path, nats_server.url, "n1", logs, max_records="50"),
        tmp_path,
    )  # fmt: skip
    await wait_for_lines(out, 3000)  # some lines at the central
    assert await central.stop(signal.SIGKILL) == -signal.SIGKILL
    central = await start(cli_processes, config, tmp_path)
    everything = {f"line {n}" for n in range(20_000)}
    await wait_while_growing(
        lambda: finished_count(out) >= 20_000 and set(lines_of(out)) >= everything,
        lambda: finished_count(out),
        "every line at the central",
    )
    numbers = [int(line.split()[1]) for line in lines_of(out)]
    # In order, but for one step back where the restarted central took up again: what came
    # after its last saved book was delivered again (a line cut by the kill is not counted).
    steps_back = [(a, b) for a, b in itertools.pairwise(numbers) if b <= a]
    assert len(steps_back) <= 1, steps_back[:5]
    assert await central.stop() == 0
    assert await sidecar.stop() == 0


@pytest.mark.slow
async def test_two_live_sidecars_merge_by_time(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """Two sidecars following their files, lines written to both at once: the central holds
    each one's records for the other's (its window) and sends them merged by ts."""
    out = tmp_path / "central.json"
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    one.write_text("2026-01-01T00:00:00.000000Z hello one\n")
    two.write_text("2026-01-01T00:00:00.000000Z hello two\n")
    central = central_config(tmp_path, nats_server.url, out, order_window="5s")
    central.write_text(
        central.read_text().replace("order_window", 'idle_timeout = "60s"\norder_window')
    )
    await start(cli_processes, central, tmp_path)
    for node, logs in (("one", one), ("two", two)):
        await start(cli_processes, sidecar_config(tmp_path, nats_server.url, node, logs), tmp_path)
    await wait_for_lines(out, 2)  # both lanes known to the central, and live
    with one.open("a") as a, two.open("a") as b:
        for number in range(200):
            file = a if number % 2 == 0 else b
            file.write(f"2026-01-01T00:01:{number // 10:02d}.{number % 10}00000Z n {number}\n")
    await wait_for_lines(out, 202)
    records = records_in(out)[2:]
    assert [str(r["line"]).partition(" ")[2] for r in records] == [f"n {n}" for n in range(200)]
    assert [r["node"] for r in records] == ["one" if n % 2 == 0 else "two" for n in range(200)]


@pytest.mark.slow
async def test_a_server_without_jetstream_is_reported_and_retried(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A server that cannot hold the stream (JetStream off) is reported, not a crash; once it
    can, the sidecar sets the stream up and delivers."""
    server = NatsServer(tmp_path / "nats")
    await server.start(jetstream=False)
    try:
        logs = tmp_path / "a.log"
        write_lines(logs, 0, 50)
        sidecar = await start(
            cli_processes, sidecar_config(tmp_path, server.url, "n1", logs), tmp_path
        )
        await sidecar.wait_for(
            lambda: any("cannot set up the stream" in line for line in sidecar.err), "the error"
        )
        await server.stop()
        await server.start()
        out = tmp_path / "central.json"
        await start(cli_processes, central_config(tmp_path, server.url, out), tmp_path)
        await wait_for_lines(out, 50)
        assert lines_of(out) == [f"line {n}" for n in range(50)]
        assert await sidecar.stop() == 0
    finally:
        await server.stop(signal.SIGKILL)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("credentials", ["token", "user", "tls"])
async def test_credentials(tmp_path: Path, cli_processes: list[Cli], credentials: str) -> None:
    """A server that wants a token, a user and password, or TLS is reached with them, by the
    sink and the source alike; a wrong token is reported, not a crash."""
    tmp_path.mkdir(exist_ok=True)
    if credentials == "token":
        extra, keys = ["--auth", "s3cret"], {"token": '"s3cret"'}
    elif credentials == "user":
        extra, keys = ["--user", "ann", "--pass", "pw"], {"user": '"ann"', "password": '"pw"'}
    else:
        cert, key = make_certificate(tmp_path)
        extra = ["--tls", "--tlscert", str(cert), "--tlskey", str(key)]
        keys = {"tls": f'{{ ca = "{cert}" }}'}
    server = NatsServer(tmp_path / "nats", extra)
    await server.start()
    url = server.url.replace("nats://", "tls://") if credentials == "tls" else server.url
    try:
        logs = tmp_path / "a.log"
        write_lines(logs, 0, 20)
        out = tmp_path / "central.json"
        central = central_config(tmp_path, url, out)
        central.write_text(
            central.read_text().replace('durable = "central"', "durable = \"central\"\n"
                                        + "".join(f"{k} = {v}\n" for k, v in keys.items()))
        )  # fmt: skip
        await start(cli_processes, central, tmp_path)
        await start(cli_processes, sidecar_config(tmp_path, url, "n1", logs, **keys), tmp_path)
        await wait_for_lines(out, 20)
        assert lines_of(out) == [f"line {n}" for n in range(20)]
        if credentials == "token":
            wrong = sidecar_config(tmp_path, url, "n2", logs, token='"wrong"')
            refused = await start(cli_processes, wrong, tmp_path)
            await refused.wait_for(
                lambda: any("cannot connect to nats-server" in line for line in refused.err),
                "the refusal",
            )
            assert refused.proc.returncode is None  # it waits and retries
    finally:
        await server.stop(signal.SIGKILL)
