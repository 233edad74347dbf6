"""The tests' nats-server helper: its port is chosen before it starts, so another process
may take it meanwhile; a first start whose address nobody was told yet moves to another."""

import asyncio
import socket
from pathlib import Path

import pytest

from tests.helpers.nats_server import NatsServer, PortTaken


def taken(port: int) -> socket.socket:
    """A listening socket on ``port``, as another test's process would hold it."""
    thief = socket.socket()
    thief.bind(("127.0.0.1", port))
    thief.listen()
    return thief


async def test_a_port_taken_before_the_first_start_is_chosen_again(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")
    first = server._port  # looked at without telling it to anyone
    with taken(first):
        await server.start()
        try:
            assert server.port != first
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.close()
            await writer.wait_closed()
        finally:
            await server.stop()


async def test_a_port_already_told_is_kept_and_its_loss_said(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")
    port = server.port
    with taken(port), pytest.raises(PortTaken):
        await server.start()
    assert server.port == port
