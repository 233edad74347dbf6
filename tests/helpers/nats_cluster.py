"""Three real nats-servers on loopback ports with cluster routes and JetStream: a cluster whose
stream leader a test can find and kill."""

import asyncio
import signal
from pathlib import Path

from tests.conftest import wait_until
from tests.helpers.nats_server import NATS_SERVER, free_port


class PortTaken(Exception):
    """A server could not bind its port: another process took it first."""


class NatsCluster:
    """Servers ``n1``..``n3``; their configs and stores under ``root``."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.names = [f"n{index + 1}" for index in range(size)]
        self.ports = {name: free_port() for name in self.names}
        self.routes = {name: free_port() for name in self.names}
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{self.ports[name]}" for name in self.names]

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def _config(self, name: str) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{self.routes[other]}" for other in self.names)
        path = self.root / f"{name}.conf"
        path.write_text(
            f"""
server_name: {name}
listen: 127.0.0.1:{self.ports[name]}
jetstream {{ store_dir: "{self.root / ("store-" + name)}" }}
cluster {{
  name: c25
  listen: 127.0.0.1:{self.routes[name]}
  routes: [{routes}]
}}
"""
        )
        return path

    async def start(self) -> None:
        """Start every server; return once the cluster has a JetStream meta leader. A port
        another process took between ``free_port`` and a server's bind is chosen again."""
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            for name in self.names:
                self.log(name).write_bytes(b"")
                self.procs[name] = await asyncio.create_subprocess_exec(
                    NATS_SERVER, "-c", str(self._config(name)), "-l", str(self.log(name)),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            try:
                await wait_until(self._led, "a JetStream meta leader in the cluster")
                return
            except PortTaken:
                await self.stop()
                self.ports = {name: free_port() for name in self.names}
                self.routes = {name: free_port() for name in self.names}
        raise AssertionError("the cluster's ports were taken three times over")

    def _led(self) -> bool:
        for name, proc in self.procs.items():
            if proc.returncode is not None:
                log = self.log(name).read_text()
                if "address already in use" in log:
                    raise PortTaken(name)
                raise AssertionError(f"{name} exited: {log[-2000:]}")
        logs = "".join(self.log(name).read_text() for name in self.names)
        return "JetStream cluster new metadata leader" in logs or "metadata leader" in logs

    async def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        for name in list(self.procs):
            await self.kill(name)
