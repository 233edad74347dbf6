"""A nats source replaced or removed by a reload (#28, #25): its book is saved and acknowledged
a last time, its connection closed and the book forgotten, once the sinks wrote its records;
a successor of the same name loads what was saved and takes every record once."""

import asyncio
from pathlib import Path
from typing import Any

import orjson

from aggregator.config import Config, parse_config
from aggregator.jetstream.messages import encode_message
from aggregator.pipeline import Pipeline
from aggregator.record.record import Record
from aggregator.reload import apply
from aggregator.sources.nats import NatsSource
from tests.conftest import DEADLINE, wait_until
from tests.helpers.nats_server import NatsServer, consumer_made, nats_server, settled
from tests.helpers.outputs import finished_lines

__all__ = ["nats_server"]  # the fixture, used by name


def config(root: Path, url: str, nats: dict[str, Any] | None) -> Config:
    """A central: the nats source ``bus`` (None: none) beside a TCP source, a JSON file."""
    sources: dict[str, Any] = {"net": {"type": "tcp", "listen": "127.0.0.1:0"}}
    if nats is not None:
        sources["bus"] = {"type": "nats", "url": url, "durable": "central", **nats}
    return parse_config(
        {
            "aggregator": {"state_dir": str(root / "state"), "order_window": "50ms",
                           "checkpoint_interval": "50ms", "parse_workers": 0},
            "sources": sources,
            "sinks": {"out": {"type": "file", "path": str(root / "out.json"), "format": "json",
                              "fsync": "never"}},
        },
        "test",
        env={},
    )  # fmt: skip


def lines(root: Path) -> list[str]:
    return [orjson.loads(line)["line"] for line in finished_lines(root / "out.json")]


async def publish(js: Any, start: int, count: int) -> None:
    records = [
        Record(1_000_000 * (n + 1), "app", "a.log", f"line {n}")
        for n in range(start, start + count)
    ]
    for n, record in enumerate(records, start + 1):
        record.lane, record.lane_seq = "a.log", n
    await js.publish("logs.n1.app", encode_message("n1", "app", records, records[-1].ts))


async def test_a_replaced_or_removed_nats_source_retires_its_book(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Replaced (a changed ``batch``): the old source's messages are acknowledged, its link
    closed, and the successor's book is the one registered, loaded with what the old one
    saved; every record once. Removed: its book is gone and its link closed."""
    import nats

    pipeline = Pipeline(config(tmp_path, nats_server.url, {}))
    await pipeline.start()
    running = asyncio.create_task(pipeline.run(), name="test:pipeline")
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await consumer_made(js, "central")
        await publish(js, 0, 10)
        await wait_until(lambda: len(lines(tmp_path)) >= 10, "10 lines")
        old = pipeline.source_slots["bus"].source
        assert isinstance(old, NatsSource)

        await apply(pipeline, config(tmp_path, nats_server.url, {"batch": 50}))
        new = pipeline.source_slots["bus"].source
        assert isinstance(new, NatsSource) and new is not old
        assert old.link.client is None  # closed, not kept until exit
        assert pipeline.checkpoints.books["nats:bus"] is new.checkpointer
        assert pipeline.checkpoints.owners() == [new]
        assert new.checkpointer.positions["logs.n1.app"].stream_seq == 1  # what old saved
        await publish(js, 10, 10)
        await wait_until(lambda: len(lines(tmp_path)) >= 20, "20 lines")
        await settled(js)

        await apply(pipeline, config(tmp_path, nats_server.url, None))
        assert "nats:bus" not in pipeline.checkpoints.books
        assert pipeline.checkpoints.owners() == []
        assert new.link.client is None
        await settled(js)
        assert lines(tmp_path) == [f"line {n}" for n in range(20)]
    finally:
        await client.close()
        pipeline.request_stop()
        async with asyncio.timeout(DEADLINE):
            await running
