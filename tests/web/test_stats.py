"""Live counts: the pure counter with a fake clock, /stats on a real server (token rules as
/metrics), and ``connect --stats`` as a subprocess (issue #29)."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson

from aggregator.record.record import Record
from aggregator.telemetry.live_counts import MAX_KEYS, OTHER, LiveCounts
from aggregator.web.stats_view import render, stats_url
from tests.conftest import DEADLINE, Cli
from tests.helpers.web import http_get, json_lines, start_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rec(source: str, level: str | None, pod: str | None = None) -> Record:
    return Record(0, source, "", "x", level=level, fields={"k8s": {"pod": pod}} if pod else None)


def test_counts_per_level_source_and_field_over_1_and_5_minutes() -> None:
    """Records count in the windows they fall in; older than 5 minutes, in none."""
    clock = Clock()
    counts = LiveCounts("k8s.pod", clock)
    counts.add([rec("app", "info", "web-1"), rec("app", "error", "web-2"), rec("db", None)])
    clock.now += 120
    counts.add([rec("db", "warn", "web-1")])
    snap = counts.snapshot()
    one, five = snap["windows"]["1m"], snap["windows"]["5m"]
    assert one == {"total": 1, "level": {"warn": 1}, "source": {"db": 1}, "field": {"web-1": 1}}
    assert five["total"] == 4
    assert five["level"] == {"info": 1, "error": 1, "(none)": 1, "warn": 1}
    assert five["source"] == {"db": 2, "app": 2}
    assert five["field"] == {"web-1": 2, "web-2": 1, "(none)": 1}
    clock.now += 300
    assert counts.snapshot()["windows"]["5m"]["total"] == 0


def test_memory_is_bounded_by_keys_and_buckets() -> None:
    """Thousands of distinct sources fold into (other); old buckets are let go."""
    clock = Clock()
    counts = LiveCounts(None, clock)
    for second in range(0, 1200, 5):
        clock.now = 1000.0 + second
        counts.add([rec(f"s{second}-{n}", "info") for n in range(50)])
    sources = counts.snapshot()["windows"]["5m"]["source"]
    assert len(sources) <= MAX_KEYS and OTHER in sources
    assert sum(sources.values()) == 50 * 60
    assert len(counts._buckets) <= 61


def test_render_shows_the_busiest_with_control_characters_escaped() -> None:
    """The terminal table: one row per value, 1m and 5m columns, escapes for control chars."""
    text = render({"field": "status", "windows": {
        "1m": {"total": 3, "level": {"info": 3}, "source": {"a\x1b[31m": 3}, "field": {"500": 1}},
        "5m": {"total": 9, "level": {"info": 9}, "source": {"a\x1b[31m": 9}, "field": {"500": 2}},
    }})  # fmt: skip
    assert "\x1b" not in text and "a\\x1b[31m" in text
    assert any(line.split() == ["info", "3", "9"] for line in text.splitlines())
    assert "status" in text
    assert stats_url("ws://h:1/ws") == "http://h:1/stats"
    assert stats_url("http://h:1") == "http://h:1/stats"


async def test_stats_over_http_counts_every_record_and_needs_the_token(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """/stats answers JSON counts of every record (the sink's filter aside) behind the token,
    and connect --stats shows them as a table."""
    token = "stats-token"
    server = await start_server(
        tmp_path, cli_processes, 'auth_token = "${WS_TOKEN}"\nstats_field = "msg"',
        env={"WS_TOKEN": token},
    )  # fmt: skip
    await server.send(json_lines(3) + json_lines(2, start=3, level="error"))
    await server.cli.wait_for(lambda: len(server.cli.out) == 5, "5 records on stdout")
    status, _, body = await asyncio.to_thread(http_get, server.url("/stats"))
    assert status == 401
    status, headers, body = await asyncio.to_thread(
        http_get, server.url("/stats"), {"Authorization": f"Bearer {token}"}
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    one = orjson.loads(body)["windows"]["1m"]
    assert one["total"] == 5 and one["level"] == {"info": 3, "error": 2}
    assert one["source"] == {"net": 5} and one["field"]["msg 4"] == 1
    with subprocess.Popen(
        [sys.executable, "-m", "aggregator", "connect", server.url("/"), "--stats"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "AGGREGATOR_TOKEN": token},
    ) as shown:  # fmt: skip
        try:
            assert shown.stdout is not None
            lines = [await asyncio.to_thread(shown.stdout.readline) for _ in range(6)]
            assert lines[1].split() == ["all", "records", "5", "5"], lines
        finally:
            shown.terminate()
            await asyncio.to_thread(shown.wait, DEADLINE)
