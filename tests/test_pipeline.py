"""What the pipeline asks the codecs to find, from what its sinks show."""

from typing import Any

import pytest
from pydantic import TypeAdapter

from aggregator.config import SinkConfig
from aggregator.sinks import SinkContext, build_sink

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
