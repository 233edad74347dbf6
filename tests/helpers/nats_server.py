"""A real nats-server with JetStream for the tests: on a free port, its store under tmp_path,
stopped (or killed) and started again on the same port and store."""

import asyncio
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEADLINE, wait_until

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PortTaken(AssertionError):
    """nats-server could not listen: its port was taken since it was chosen."""


class NatsServer:
    """One nats-server; ``start`` returns once it says it is ready (JetStream included)."""

    def __init__(self, root: Path, extra: list[str] | None = None) -> None:
        self.root = root
        self.extra = extra or []  # --auth TOKEN, --user/--pass, --tls …
        self.store = root / "store"
        self.log = root / "server.log"
        self._port = free_port()
        self.port_told = False
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def port(self) -> int:
        """Its port; once told, kept (a test may hand it to a program before the start)."""
        self.port_told = True
        return self._port

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self, jetstream: bool = True) -> None:
        """Start it (``jetstream=False``: a server without JetStream, to be refused by).

        The free port was chosen before; if another process took it meanwhile and nobody
        was told this server's address yet, it starts again on another free port."""
        for _ in range(3):
            try:
                await self._start_once(jetstream)
                return
            except PortTaken:
                if self.port_told or self.starts > 0:
                    raise
                self._port = free_port()
        raise AssertionError("nats-server found no free port in 3 tries")

    async def _start_once(self, jetstream: bool) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log.write_bytes(b"")
        self.proc = await asyncio.create_subprocess_exec(
            NATS_SERVER,
            *(["-js"] if jetstream else []),
            "-sd",
            str(self.store),
            "-a",
            "127.0.0.1",
            "-p",
            str(self._port),
            "-l",
            str(self.log),
            *self.extra,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.starts += 1
        proc = self.proc

        def ready() -> bool:
            if proc.returncode is not None:
                said = self.log.read_text()[-2000:]
                if "address already in use" in said:
                    self.starts -= 1
                    raise PortTaken(said)
                raise AssertionError(f"nats-server exited: {said}")
            return "Server is ready" in self.log.read_text()

        await wait_until(ready, "nats-server to be ready")

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.send_signal(signum)
            async with asyncio.timeout(15):
                await proc.wait()


async def consumer_made(js: Any, durable: str, stream: str = "LOGS") -> None:
    """Return once a central's durable consumer exists: it consumes live from then on, so
    what is published after is not the backlog it found at start."""
    import nats.js.errors

    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                await js.consumer_info(stream, durable)
                return
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.05)  # asking the server again, under the deadline


async def settled(js: Any, durable: str = "central", stream: str = "LOGS") -> None:
    """Until the consumer ``durable`` has nothing delivered and not acknowledged, nor waiting:
    acknowledgements reach the server after the messages they answer, and a program that
    sent them may have exited before the server has read them."""

    async def done() -> bool:
        info = await js.consumer_info(stream, durable)
        return info.num_ack_pending == 0 and info.num_pending == 0

    async with asyncio.timeout(DEADLINE):
        while not await done():
            await asyncio.sleep(0.05)  # asking the server again, under the deadline


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A running nats-server, stopped at the end of the test."""
    if not Path(NATS_SERVER).exists():
        pytest.fail(f"{NATS_SERVER} is missing: .ci/run installs Debian's nats-server")
    server = NatsServer(tmp_path / "nats")
    await server.start()
    yield server
    await server.stop(signal.SIGKILL)
