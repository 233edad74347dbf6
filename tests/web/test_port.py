"""The port before websockets is loaded: bound at start, served from the first connection
(``aggregator.web.server``; issue #27, start-up)."""

import asyncio
import contextlib
import shutil
import socket
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

import aggregator
from aggregator.config import parse_config
from aggregator.sinks import SinkContext
from aggregator.web.stream import WebSocketSink
from tests.conftest import DEADLINE, Cli, start_cli
from tests.helpers.web import http_get

HEALTH_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def websocket_sink() -> WebSocketSink:
    config = parse_config(
        {"sources": {"in": {"type": "stdin"}},
         "sinks": {"ws": {"type": "websocket", "listen": "127.0.0.1:0"}}},
        "test",
    )  # fmt: skip
    return WebSocketSink("ws", config.sinks["ws"], SinkContext(["in"]))


def answer_of(client: socket.socket) -> bytes:
    """Everything the server sends on ``client`` until it closes (the answers say
    ``Connection: close``); b"" when it was refused."""
    received = b""
    try:
        while chunk := client.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def imported(lines: list[str], package: str) -> bool:
    """Whether ``-X importtime``'s lines on stderr name ``package`` or a module of it."""
    names = [line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")]
    return any(name == package or name.startswith(f"{package}.") for name in names)


def websockets_imported(lines: list[str]) -> bool:
    """Whether ``-X importtime``'s lines on stderr name a module of websockets."""
    return imported(lines, "websockets")


async def test_websockets_is_loaded_by_the_first_connection(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Records go out and the port is said to serve before websockets is imported; the first
    request, sent right after, is answered (and imports it)."""
    (tmp_path / "a.log").write_text("2026-01-01T10:00:00Z first\n")
    cli = await start_cli(
        "tail", "a.log", "--ws", "127.0.0.1:0",
        cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"},
    )  # fmt: skip
    cli_processes.append(cli)
    host, port = await cli.serving()
    await cli.wait_for_out("first")
    assert not websockets_imported(cli.err)
    assert not imported(cli.err, "orjson")  # control frames and filters: with the first client
    status, _, body = await asyncio.to_thread(http_get, f"http://{host}:{port}/healthz")
    assert status == 200 and orjson.loads(body)["status"] == "ok"
    assert websockets_imported(cli.err)
    async with connect(f"ws://{host}:{port}/ws?replay=5") as subscriber:
        hello, replayed = [await subscriber.recv() for _ in range(2)]
    assert "hello" in orjson.loads(hello)
    assert "first" in str(replayed)
    assert await cli.stop() == 0


def test_connections_waiting_before_the_server_is_loaded_are_all_served() -> None:
    """Clients that connect while nothing accepts yet (the loop does not even run) wait in
    the port's queue, and each is answered once the loop runs: the first wakes the loading
    of websockets' server, which takes them all."""
    sink = websocket_sink()
    with asyncio.Runner() as runner:
        runner.run(sink.open())
        try:
            assert sink.address is not None
            clients = [socket.create_connection(sink.address, timeout=DEADLINE) for _ in range(3)]
            for client in clients:
                client.sendall(HEALTH_REQUEST)

            async def answers() -> list[bytes]:
                return await asyncio.gather(
                    *(asyncio.to_thread(answer_of, client) for client in clients)
                )

            for answer in runner.run(answers()):
                assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
        finally:
            for client in clients:
                client.close()
            runner.run(sink.close())


def test_a_close_with_a_connection_waiting_frees_the_port() -> None:
    """Stopping with a client waiting that was not served yet: the close returns in time, the
    client is answered or refused (never left hanging), and the port is free again (no socket
    is left open)."""
    sink = websocket_sink()
    with asyncio.Runner() as runner:
        runner.run(sink.open())
        assert sink.address is not None
        address = sink.address
        with socket.create_connection(address, timeout=DEADLINE) as client:
            client.sendall(HEALTH_REQUEST)
            runner.run(asyncio.wait_for(sink.close(), DEADLINE))
            answer = answer_of(client)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 200 OK\r\n")
    with socket.socket() as again:
        # As a server binds: a connection closed may linger (TIME_WAIT), a listener may not.
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(address)


def test_a_close_while_the_server_loads_for_a_first_client() -> None:
    """A stop that comes while the first client's connection wakes the loading: the close
    waits for it and then closes the server, and the client is answered or refused, never
    left hanging."""
    sink = websocket_sink()

    async def connect_then_close() -> bytes:
        assert sink.address is not None
        reader, writer = await asyncio.open_connection(*sink.address)
        writer.write(HEALTH_REQUEST)
        await asyncio.sleep(0)  # a turn of the loop: the port's reader may start the loading
        await asyncio.wait_for(sink.close(), DEADLINE)
        try:
            answer = await asyncio.wait_for(reader.read(), DEADLINE)
        except ConnectionResetError:
            answer = b""
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()
        return answer

    with asyncio.Runner() as runner:
        runner.run(sink.open())
        answer = runner.run(connect_then_close())
    assert answer == b"" or answer.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_a_broken_install_refuses_the_port_and_goes_on(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """An install that lost the page's files fails only when the first client comes: that
    is said once, naming the sink's address, the client is refused rather than left waiting,
    the records still go out, and a stop ends cleanly."""
    broken = tmp_path / "broken"
    shutil.copytree(
        Path(aggregator.__file__).parent,
        broken / "aggregator",
        ignore=shutil.ignore_patterns("*.so", "__pycache__", "static"),
    )
    (tmp_path / "a.log").write_text("2026-01-01T10:00:00Z first\n")
    cli = await start_cli(
        "tail", "a.log", "--ws", "127.0.0.1:0", cwd=tmp_path, env={"PYTHONPATH": str(broken)}
    )
    cli_processes.append(cli)
    host, port = await cli.serving()
    await cli.wait_for_out("first")
    with socket.create_connection((host, port), timeout=DEADLINE) as client:
        client.sendall(HEALTH_REQUEST)
        assert await asyncio.to_thread(answer_of, client) == b""
    said = "cannot serve on 127.0.0.1:0"
    await cli.wait_for(lambda: any(said in line for line in cli.err), "the failure said")
    assert sum(said in line for line in cli.err) == 1
    assert await cli.stop() == 0
