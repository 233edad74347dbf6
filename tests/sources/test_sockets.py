"""Network and pipe sources end to end with real sockets (SPEC §3, §6; issue #5)."""

import asyncio
import contextlib
import resource
import signal
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import DEADLINE, Cli, start_cli, wait_until

AGGREGATOR = [sys.executable, "-m", "aggregator"]


def write_config(tmp_path: Path, source: str) -> Path:
    """A config with one source ``in`` (the given TOML keys) and JSON on stdout."""
    config = tmp_path / "c.toml"
    config.write_text(f'[sources.in]\n{source}\n[sinks.out]\ntype = "stdout"\nformat = "json"\n')
    return config


async def run_config(tmp_path: Path, cli_processes: list[Cli], source: str) -> Cli:
    cli = await start_cli("run", "-c", str(write_config(tmp_path, source)), cwd=tmp_path)
    cli_processes.append(cli)
    return cli


def records(cli: Cli) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in cli.out]


async def send_tcp(address: tuple[str, int], payload: bytes) -> None:
    _, writer = await asyncio.open_connection(*address)
    writer.write(payload)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def octet(message: bytes) -> bytes:
    return b"%d %s" % (len(message), message)


async def test_syslog_over_tcp_octet_counted(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """RFC 6587 frames, a newline inside one: time, severity, host and app come out."""
    cli = await run_config(
        tmp_path,
        cli_processes,
        'type = "tcp"\nlisten = "127.0.0.1:0"\nframing = "octet-counted"\ncodec = "syslog"',
    )
    address = await cli.listening("tcp")
    await send_tcp(
        address,
        octet(b"<11>1 2026-11-25T10:00:00Z web01 nginx 42 - - upstream down\nsecond line")
        + octet(b"<14>Nov 25 10:00:01 db01 postgres[7]: checkpoint"),
    )
    await cli.wait_for(lambda: len(cli.out) >= 2, "two records")
    first, second = records(cli)
    assert (
        first["line"] == "<11>1 2026-11-25T10:00:00Z web01 nginx 42 - - upstream down\nsecond line"
    )
    assert first["ts"] == "2026-11-25T10:00:00.000000Z" and first["level"] == "error"
    assert first["fields"] == {"facility": "user", "host": "web01", "app": "nginx", "pid": "42",
                               "message": "upstream down\nsecond line"}  # fmt: skip
    assert second["level"] == "info"
    assert second["fields"] == {"facility": "user", "host": "db01", "app": "postgres",
                                "pid": "7", "message": "checkpoint"}  # fmt: skip
    assert await cli.stop() == 0


async def test_syslog_over_udp(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A datagram is a record; the syslog codec reads its header."""
    cli = await start_cli("tail", "udp://127.0.0.1:0", "--codec", "syslog", "--format", "json",
                          cwd=tmp_path)  # fmt: skip
    cli_processes.append(cli)
    address = await cli.listening("udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<165>1 2026-11-25T10:00:00Z h app - ID1 - hello", address)
    await cli.wait_for(lambda: cli.out, "a record")
    record = records(cli)[0]
    assert record["level"] == "info" and record["origin"].startswith("127.0.0.1:")
    assert record["fields"]["msgid"] == "ID1"
    assert await cli.stop() == 0


async def test_max_connections_refuses_the_rest(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """Past max_connections a connection is closed at once and counted; the others go on."""
    cli = await run_config(
        tmp_path, cli_processes, 'type = "tcp"\nlisten = "127.0.0.1:0"\nmax_connections = 2'
    )
    address = await cli.listening("tcp")
    kept = [await asyncio.open_connection(*address) for _ in range(2)]
    for index, (_, writer) in enumerate(kept):
        writer.write(b"kept %d\n" % index)
        await writer.drain()
    await cli.wait_for(lambda: len(cli.out) >= 2, "two lines")
    reader, writer = await asyncio.open_connection(*address)
    async with asyncio.timeout(DEADLINE):
        assert await reader.read() == b""  # closed by the server
    await cli.wait_for(lambda: any("refused" in line for line in cli.err), "a refusal logged")
    writer.close()
    for _, kept_writer in kept:
        kept_writer.close()
    assert await cli.stop() == 0


async def test_idle_connection_is_closed(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A connection silent for idle_timeout is closed; what it sent was delivered."""
    cli = await run_config(
        tmp_path, cli_processes, 'type = "tcp"\nlisten = "127.0.0.1:0"\nidle_timeout = "200ms"'
    )
    reader, writer = await asyncio.open_connection(*await cli.listening("tcp"))
    writer.write(b"before silence\npartial")
    await writer.drain()
    async with asyncio.timeout(DEADLINE):
        assert await reader.read() == b""
    await cli.wait_for(lambda: len(cli.out) >= 2, "both lines")
    assert [r["line"] for r in records(cli)] == ["before silence", "partial"]
    writer.close()
    assert await cli.stop() == 0


async def test_long_lines_are_cut_per_connection(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """max_line_bytes cuts a line, flags it, and the connection goes on."""
    cli = await run_config(
        tmp_path, cli_processes, 'type = "tcp"\nlisten = "127.0.0.1:0"\nmax_line_bytes = 16'
    )
    await send_tcp(await cli.listening("tcp"), b"x" * 100_000 + b"\nnext\n")
    await cli.wait_for(lambda: len(cli.out) >= 2, "two records")
    long, short = records(cli)
    assert long["line"] == "x" * 16 and long["truncated"] is True
    assert short["line"] == "next" and "truncated" not in short
    assert await cli.stop() == 0


async def test_malformed_frame_closes_only_that_connection(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A header that is not a length: that connection is closed with a warning naming the
    peer; what it sent before is kept, and other connections go on."""
    cli = await run_config(
        tmp_path, cli_processes, 'type = "tcp"\nlisten = "127.0.0.1:0"\nframing = "octet-counted"'
    )
    address = await cli.listening("tcp")
    await send_tcp(address, octet(b"good") + b"oops not framed\n")
    await send_tcp(address, octet(b"other connection"))
    await cli.wait_for(lambda: len(cli.out) >= 2, "two records")
    assert sorted(r["line"] for r in records(cli)) == ["good", "other connection"]
    assert any("expected a frame length" in line and "127.0.0.1:" in line for line in cli.err)
    assert await cli.stop() == 0


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_tls(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """With tls = {cert, key}, lines arrive over TLS; a plain-text client gets nothing in."""
    cert, key = make_certificate(tmp_path)
    cli = await run_config(
        tmp_path,
        cli_processes,
        f'type = "tcp"\nlisten = "127.0.0.1:0"\ntls = {{ cert = "{cert}", key = "{key}" }}',
    )
    address = await cli.listening("tls")
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    _, writer = await asyncio.open_connection(*address, ssl=context)
    writer.write(b"secret line\n")
    await writer.drain()
    writer.close()
    await send_tcp(address, b"plain text is not TLS\n")
    await cli.wait_for(lambda: cli.out, "the TLS line")
    assert [r["line"] for r in records(cli)] == ["secret line"]
    assert await cli.stop() == 0


async def test_unix_stream_socket(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A stale socket file is replaced; the mode is 0660; the file is removed on exit."""
    path = tmp_path / "in.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: stale
    cli = await start_cli("tail", f"unix://{path}", "--format", "json", cwd=tmp_path)
    cli_processes.append(cli)
    await cli.wait_for(lambda: any("listening on unix://" in line for line in cli.err), "listen")
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    for text in (b"one\n", b"two\n"):
        _reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(text)
        await writer.drain()
        writer.close()
    await cli.wait_for(lambda: len(cli.out) >= 2, "two records")
    origins = {r["origin"] for r in records(cli)}
    assert origins == {f"{path}#1", f"{path}#2"}
    assert await cli.stop() == 0
    assert not path.exists()


def test_unix_socket_in_use_or_not_a_socket(tmp_path: Path) -> None:
    """A socket another program listens on, or a regular file, is left alone: exit 1."""
    live = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(live))
        listener.listen()
        result = subprocess.run([*AGGREGATOR, "tail", f"unix://{live}"], cwd=tmp_path,
                                capture_output=True, timeout=DEADLINE)  # fmt: skip
    assert result.returncode == 1
    assert b"in use by another program" in result.stderr
    regular = tmp_path / "notes.txt"
    regular.write_text("mine")
    result = subprocess.run([*AGGREGATOR, "tail", f"unix://{regular}"], cwd=tmp_path,
                            capture_output=True, timeout=DEADLINE)  # fmt: skip
    assert result.returncode == 1 and b"is not a socket" in result.stderr
    assert regular.read_text() == "mine"


async def test_unix_datagram_socket(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A /dev/log style datagram socket: each datagram's lines are records."""
    path = tmp_path / "log.sock"
    cli = await run_config(
        tmp_path,
        cli_processes,
        f'type = "unix"\nsocket = "datagram"\npath = "{path}"\nmode = "0620"',
    )
    await cli.wait_for(lambda: any("unixgram://" in line for line in cli.err), "listen")
    assert stat.S_IMODE(path.stat().st_mode) == 0o620
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"first\nsecond", str(path))
    await cli.wait_for(lambda: len(cli.out) >= 2, "two records")
    assert [r["line"] for r in records(cli)] == ["first", "second"]
    assert await cli.stop() == 0
    assert not path.exists()


@pytest.mark.slow
async def test_a_thousand_concurrent_connections(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """1000 connections open at once, each sends its line: all arrive, each its own origin."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))  # the child inherits it
    try:
        cli = await start_cli("tail", "tcp://127.0.0.1:0", "--format", "json", cwd=tmp_path)
        cli_processes.append(cli)
        address = await cli.listening("tcp")
        connections = [await asyncio.open_connection(*address) for _ in range(1000)]
        for index, (_, writer) in enumerate(connections):
            writer.write(b"hello from %d\n" % index)
        await asyncio.gather(*(writer.drain() for _, writer in connections))
        await cli.wait_for(lambda: len(cli.out) >= 1000, "1000 records")
        got = records(cli)
        assert sorted(r["line"] for r in got) == sorted(f"hello from {i}" for i in range(1000))
        assert len({r["origin"] for r in got}) == 1000
        for _, writer in connections:
            writer.close()
        assert await cli.stop() == 0
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
async def test_backpressure_holds_the_sender_and_loses_nothing(tmp_path: Path) -> None:
    """stdout not read: the pipeline fills, the aggregator stops reading the socket, the
    sender's writes wait; once stdout drains, every line arrives, in order."""
    proc = await asyncio.create_subprocess_exec(
        *AGGREGATOR, "tail", "tcp://127.0.0.1:0", "--format", "raw", "--codec", "raw",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None and proc.stdout is not None
        async with asyncio.timeout(DEADLINE):
            banner = (await proc.stderr.readline()).decode()
        port = int(banner.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = 300_000
        payload = b"".join(b"line %07d %s\n" % (n, b"x" * 80) for n in range(lines))

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.close()

        sender = asyncio.create_task(send(), name="test:sender")
        # The sender is held: its own buffer stays full because the kernel takes no more.
        await wait_until(
            lambda: writer.transport.get_write_buffer_size() > 1 << 20, "the sender to be held"
        )
        assert not sender.done()
        received = 0
        expected_next = 0
        async with asyncio.timeout(DEADLINE * 4):
            while received < lines:
                line = await proc.stdout.readline()
                assert line == b"line %07d %s\n" % (expected_next, b"x" * 80)
                expected_next += 1
                received += 1
            await sender
        assert received == lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(DEADLINE):
                await proc.wait()
    assert proc.returncode == 0


@pytest.mark.slow
async def test_sigterm_under_an_endless_stream(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A sender that never stops: SIGTERM still ends the program, exit 0, within the deadline."""
    cli = await start_cli("tail", "tcp://127.0.0.1:0", "--format", "raw", cwd=tmp_path)
    cli_processes.append(cli)
    _, writer = await asyncio.open_connection(*await cli.listening("tcp"))
    stop = asyncio.Event()

    async def flood() -> None:
        line = b"endless " + b"y" * 100 + b"\n"
        while not stop.is_set():
            writer.write(line * 100)
            try:
                await writer.drain()
            except ConnectionError:
                return

    sender = asyncio.create_task(flood(), name="test:flood")
    await cli.wait_for(lambda: len(cli.out) > 1000, "the stream flowing")
    assert await cli.stop(signal.SIGTERM) == 0
    stop.set()
    writer.close()
    async with asyncio.timeout(DEADLINE):
        await sender
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_burst_of_datagrams_is_not_dropped(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """500 datagrams sent at once (well within the kernel's buffer) all arrive: datagrams wait
    in a batch for the merge instead of each needing a place of its own."""
    cli = await start_cli("tail", "udp://127.0.0.1:0", "--format", "raw", cwd=tmp_path)
    cli_processes.append(cli)
    address = await cli.listening("udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for number in range(500):
            udp.sendto(b"datagram %d" % number, address)
    await cli.wait_for(lambda: len(cli.out) >= 500, "500 records")
    assert sorted(cli.out) == sorted(f"datagram {n}" for n in range(500))
    assert await cli.stop() == 0
    assert not any("dropped" in line for line in cli.err)
