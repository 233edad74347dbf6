"""The alert sink end to end: ``aggregator run`` with a TCP source, and a real HTTP receiver in
the test (issue #29). Fires at the threshold and not below, by group, as JSON or Slack text;
a receiver that is down or never answers does not slow the stream, and is counted."""

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import DEADLINE, Cli
from tests.helpers.web import Server, http_get, json_lines, start_server


@dataclass
class Receiver:
    """An HTTP server that takes POSTs: answers 200, or never answers (``silent``)."""

    silent: bool = False
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    held: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.held.append(writer)  # closed by close(), whatever state it is in
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                body = await reader.readexactly(length)
                if self.silent:
                    return  # never answers
                self.posts.append((path, orjson.loads(body)))
                self.arrived.set()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

    async def wait_posts(self, count: int) -> None:
        async with asyncio.timeout(DEADLINE):
            while len(self.posts) < count:
                self.arrived.clear()
                await self.arrived.wait()

    async def close(self) -> None:
        for writer in self.held:
            writer.close()
        for writer in self.held:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def receiver() -> Any:
    receiving = Receiver()
    yield receiving
    await receiving.close()


def pager(url: str, extra: str = "") -> str:
    """The TOML of alert sinks appended after the websocket sink of tests.helpers.web."""
    return (
        f'\n[sinks.pager]\ntype = "alert"\nurl = "{url}/json"\nwhere = "level>=error"\n'
        'threshold = 3\nwindow = "1m"\ngroup_by = ["level"]\ncooldown = "10m"\n'
        f'timeout = "1s"\n{extra}'
    )


def metric(server: Server, text: str) -> str:
    _, _, body = http_get(server.url("/metrics"))
    return "\n".join(line for line in body.splitlines() if line.startswith(text))


async def test_fires_at_the_threshold_per_group_as_json_and_slack(
    tmp_path: Path, cli_processes: list[Cli], receiver: Receiver
) -> None:
    """Two errors of a group do not fire, the third does, once; another group on its own;
    format = "slack" posts {"text"}."""
    url = await receiver.start()
    slack = f'\n[sinks.chat]\ntype = "alert"\nurl = "{url}/slack"\nformat = "slack"\n'
    slack += "threshold = 8\n"
    server = await start_server(tmp_path, cli_processes, pager(url) + slack)
    await server.send(json_lines(2, level="error", text="disk") + json_lines(5))
    await server.cli.wait_for(lambda: len(server.cli.out) == 7, "7 records on stdout")
    assert receiver.posts == []  # below both thresholds
    await server.send(json_lines(1, start=7, level="error", text="disk"))
    await receiver.wait_posts(2)
    posts = dict(receiver.posts)
    alert = posts["/json"]
    assert alert["status"] == "firing" and alert["alert"] == "pager"
    assert alert["count"] == 3 and alert["rule"]["threshold"] == 3
    assert [orjson.loads(sample["line"])["msg"] for sample in alert["first"]] == [
        "disk 0", "disk 1", "disk 7",
    ]  # fmt: skip
    assert posts["/slack"]["text"].startswith("[firing] chat: 8 records within 60s")
    await server.send(json_lines(3, start=8, level="error", text="disk"))  # same group: no more
    await server.send(json_lines(3, start=11, level="fatal", text="net"))  # another group
    await receiver.wait_posts(3)
    assert [post["group"] for path, post in receiver.posts if path == "/json"] == [
        {"level": "error"}, {"level": "fatal"},
    ]  # fmt: skip
    await server.cli.wait_for(lambda: len(server.cli.out) == 14, "14 records on stdout")
    counted = await asyncio.to_thread(metric, server, 'aggregator_alerts_total{sink="pager"')
    assert 'result="sent"} ' in counted


@pytest.mark.slow
@pytest.mark.parametrize("receiver_state", ["down", "silent"])
async def test_a_receiver_down_or_silent_does_not_slow_the_stream(
    tmp_path: Path, cli_processes: list[Cli], receiver: Receiver, receiver_state: str
) -> None:
    """With the receiver away or never answering, every record still reaches stdout at once;
    the alert is dropped after its attempts and counted as failed."""
    if receiver_state == "silent":
        receiver.silent = True
        url = await receiver.start()
    else:
        url = "http://127.0.0.1:9"  # discard: nothing listens
    server = await start_server(tmp_path, cli_processes, pager(url))
    await server.send(json_lines(3, level="error", text="disk"))
    await server.cli.wait_for(lambda: len(server.cli.out) == 3, "3 records on stdout")
    await server.send(json_lines(2000, start=3))
    await server.cli.wait_for(lambda: len(server.cli.out) == 2003, "2003 records on stdout")
    failed = 'aggregator_alerts_total{sink="pager",result="failed"} 1'

    async def counted() -> bool:
        return failed in await asyncio.to_thread(metric, server, "aggregator_alerts_total")

    async with asyncio.timeout(4 * DEADLINE):
        while not await counted():
            await asyncio.sleep(0.2)  # polling /metrics: the count has no event to wait on
    # The line on stderr may still be on its way to the test when /metrics answers.
    await server.cli.wait_for(
        lambda: any("could not be sent" in line for line in server.cli.err), "the failure said"
    )


async def wait_metric(server: Server, text: str) -> None:
    """Until /metrics has the line ``text`` (polled: a count has no event to wait on)."""
    async with asyncio.timeout(DEADLINE):
        while text not in await asyncio.to_thread(metric, server, text.split("}")[0]):
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_resolved_once_quiet_and_no_second_notice_within_the_cooldown(
    tmp_path: Path, cli_processes: list[Cli], receiver: Receiver
) -> None:
    """A group that fired is resolved once under the threshold for a window; firing again
    within its cooldown is not notified (counted as suppressed), while another group fires
    meanwhile: the cooldown is per group."""
    url = await receiver.start()
    rule = (
        f'\n[sinks.pager]\ntype = "alert"\nurl = "{url}/json"\nwhere = "level>=error"\n'
        'threshold = 3\nwindow = "2s"\ngroup_by = ["level"]\ncooldown = "1h"\n'
    )
    server = await start_server(tmp_path, cli_processes, rule)
    await server.send(json_lines(3, level="error", text="disk"))
    await receiver.wait_posts(1)
    await receiver.wait_posts(2)  # nothing more comes: 2 s under the threshold, then a tick
    statuses = [(post["status"], post["group"], post["count"]) for _, post in receiver.posts]
    assert statuses == [("firing", {"level": "error"}, 3), ("resolved", {"level": "error"}, 0)]
    await server.send(json_lines(3, start=3, level="error", text="disk"))  # within the cooldown
    suppressed = 'aggregator_alerts_total{sink="pager",result="suppressed"} 1'
    await wait_metric(server, suppressed)
    await server.send(json_lines(3, start=6, level="fatal", text="net"))  # another group
    await receiver.wait_posts(3)
    await server.cli.wait_for(lambda: len(server.cli.out) == 9, "9 records on stdout")
    statuses = [(post["status"], post["group"]) for _, post in receiver.posts]
    assert statuses == [
        ("firing", {"level": "error"}),
        ("resolved", {"level": "error"}),
        ("firing", {"level": "fatal"}),
    ]
    await wait_metric(server, 'aggregator_alerts_total{sink="pager",result="sent"} 3')
