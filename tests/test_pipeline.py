"""What the pipeline asks the codecs to find, from what its sinks show."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from aggregator.config import SinkConfig, parse_config
from aggregator.pipeline import Pipeline
from aggregator.sinks import SinkContext, build_sink
from tests.conftest import DEADLINE

SINK = TypeAdapter(SinkConfig)


@pytest.mark.parametrize(
    ("sink", "needs"),
    [
        ({"type": "stdout", "format": "raw"}, "stamps"),
        ({"type": "stdout", "format": "text", "filter": {"grep": "x", "sources": ["a"]}}, "stamps"),
        ({"type": "file", "path": "out.json"}, "json"),
        ({"type": "stdout", "format": "json", "filter": {"grep": "x"}}, "json"),
        ({"type": "stdout", "format": "raw", "filter": {"level": "warn"}}, "everything"),
        (
            {"type": "file", "path": "o", "format": "json", "filter": {"level": "warn"}},
            "everything",
        ),
        ({"type": "websocket", "listen": "127.0.0.1:0"}, "everything"),
    ],
)
def test_a_sink_needs_what_it_shows_or_filters_on(sink: dict[str, Any], needs: str) -> None:
    """Lines and times for raw and text; the rest of the JSON for json; everything for a level
    filter (it reads levels) and a WebSocket (its subscribers filter by level)."""
    assert build_sink("out", SINK.validate_python(sink), SinkContext()).needs == needs


async def test_a_stop_asked_while_the_parts_open_ends_the_run_at_once(tmp_path: Path) -> None:
    """A stop asked before ``run`` (a SIGTERM while the parts open) cancels sources that never
    ran a step: their channels end all the same, and the run ends without the drain's
    deadline (which would raise DrainTimeout)."""
    log = tmp_path / "app.log"
    log.write_text("2026-01-01T00:00:00Z one\n")
    config = parse_config(
        {
            "aggregator": {"state_dir": str(tmp_path / "state"), "parse_workers": 0},
            "sources": {"app": {"type": "file", "paths": [str(log)]}},
            "sinks": {"out": {"type": "file", "path": str(tmp_path / "out.log")}},
        },
        "test",
        env={},
    )
    pipeline = Pipeline(config)
    await pipeline.start()
    pipeline.request_stop()
    async with asyncio.timeout(DEADLINE):  # DrainTimeout after 5 s, were it stuck
        await pipeline.run()
