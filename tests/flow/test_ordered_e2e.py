"""The merged stream through the CLI: exact event-time order for existing data (SPEC §5)."""

import asyncio
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from aggregator.record.formats import rfc3339_micros
from tests.conftest import DEADLINE, Cli, start_cli
from tests.helpers.web import http_get

AGGREGATOR = [sys.executable, "-m", "aggregator"]
T0 = 1_795_600_800_000_000


def line_for(kind: str, ts: int, text: str) -> str:
    stamp = rfc3339_micros(ts)
    if kind == "json":
        return orjson.dumps({"ts": stamp, "level": "info", "msg": text}).decode()
    if kind == "logfmt":
        return f'ts={stamp} level=warn msg="{text}"'
    return f"{stamp} ERROR {text}"


@pytest.mark.parametrize("output", ["json", "raw", "text"])
def test_no_follow_equals_a_stable_merge_by_time(tmp_path: Path, output: str) -> None:
    """tail --no-follow --from-start a b c == sort -m -s on ts, ties in command-line order,
    whatever each line's format; with the raw and text formats too, for which only the time
    is parsed."""
    rng = random.Random(7)
    expected: list[tuple[int, int, int, str]] = []
    names = ["a.log", "b.log", "c.log"]
    for order, name in enumerate(names):
        ts = T0
        lines = []
        for index in range(2000):
            ts += rng.choice([0, 0, 1000, 250_000, 1_000_000])  # equal stamps across files too
            text = f"{name}#{index}"
            lines.append(line_for(rng.choice(["json", "logfmt", "text"]), ts, text))
            expected.append((ts, order, index, text))
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [*AGGREGATOR, "tail", "--no-follow", "--from-start", *names, "--format", output],
        cwd=tmp_path,
        capture_output=True,
        timeout=DEADLINE * 2,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    texts = [re.search(r"[abc]\.log#\d+", line) for line in lines]
    assert [text and text.group() for text in texts] == [text for *_, text in sorted(expected)]
    if output == "json":
        records = [orjson.loads(line) for line in lines]
        assert not any(record.get("late") for record in records)
        assert [r["seq"] for r in records] == list(range(1, len(lines) + 1))


def test_records_keep_their_own_time_level_and_fields(tmp_path: Path) -> None:
    """ts comes from the line; level and fields from the codec; bad JSON keeps its line."""
    (tmp_path / "app.log").write_text(
        '{"ts": "2026-11-25T10:00:00.5Z", "level": "WARNING", "user": "ann"}\n'
        '{"ts": "2026-11-25T10:00:01Z", "broken\n'
    )
    result = subprocess.run(
        [*AGGREGATOR, "tail", "--no-follow", "app.log", "--codec", "json", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        timeout=DEADLINE * 2,
    )
    first, second = (orjson.loads(line) for line in result.stdout.splitlines())
    assert first["ts"] == "2026-11-25T10:00:00.500000Z"
    assert first["level"] == "warn" and first["fields"] == {"user": "ann"}
    assert second["line"] == '{"ts": "2026-11-25T10:00:01Z", "broken'
    assert second["parse_error"].startswith("invalid JSON")


def test_multiline_records_from_config(tmp_path: Path) -> None:
    """A stack trace becomes one record, its lines joined with newlines."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[sources.app]\ntype = "stdin"\ncodec = "raw"\n'
        "multiline = { start = '^\\S', timeout = \"5s\" }\n"
        '[sinks.out]\ntype = "stdout"\nformat = "json"\n'
    )
    trace = (
        b"2026-11-25T10:00:00Z ERROR failed\n"
        b"  File a.py, line 1\n"
        b"  File b.py, line 2\n"
        b"2026-11-25T10:00:01Z INFO recovered\n"
    )
    result = subprocess.run(
        [*AGGREGATOR, "run", "-c", str(config)],
        cwd=tmp_path,
        input=trace,
        capture_output=True,
        timeout=DEADLINE * 2,
    )
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line)["line"] for line in result.stdout.splitlines()]
    assert lines == [
        "2026-11-25T10:00:00Z ERROR failed\n  File a.py, line 1\n  File b.py, line 2",
        "2026-11-25T10:00:01Z INFO recovered",
    ]


async def test_a_tie_goes_to_the_source_first_in_the_config_when_the_later_one_sends_first(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Records of equal ts from two sources leave in config order, even when the later source
    (b) was reading first and its record was read first (SPEC §5): b's live record is held in
    the merge (by c, a quiet live source, within a long window) when a's file appears."""
    a_log, b_log, c_log = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    now = int(time.time()) * 1_000_000
    tie, after = now - 30_000_000, now - 29_000_000
    b_log.write_text("")
    c_log.write_text("")
    config = tmp_path / "c.toml"
    config.write_text(
        # c, live and quiet, holds live records back until it sends (it never idles out here).
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\nidle_timeout = "60s"\n'
        'order_window = "60s"\n'
        f'[sources.a]\ntype = "file"\npaths = ["{a_log}"]\n'  # not there yet: looked for every 1 s
        f'[sources.b]\ntype = "file"\npaths = ["{b_log}"]\n'
        f'[sources.c]\ntype = "file"\npaths = ["{c_log}"]\n'
        '[sinks.out]\ntype = "stdout"\nformat = "json"\n'
        '[sinks.web]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'  # for /metrics
    )
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    host, port = await cli.serving()
    url = f"http://{host}:{port}"

    async def metric(sample: str) -> None:
        """Until /metrics shows ``sample``."""
        metrics = ""
        try:
            async with asyncio.timeout(DEADLINE):
                while sample not in metrics:
                    metrics = (await asyncio.to_thread(http_get, f"{url}/metrics"))[2]
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"no {sample!r} in {metrics}\n{cli.err}") from None

    async def read_by(source: str, count: int) -> None:
        """Until ``source`` has handed ``count`` records to the merge."""
        await metric(f'aggregator_records_in_total{{source="{source}"}} {count}')

    await metric('aggregator_files_open{source="b"} 1')  # followed from its end: write now
    with b_log.open("a") as file:
        file.write(line_for("text", tie, "from b") + "\n")
    await read_by("b", 1)  # b's record waits in the merge, for c
    assert cli.out == []
    # a's file appears, whole (renamed into place: created empty and then written, it could
    # be read empty first and its lines then taken as live): read from its start, its first
    # record ties with b's.
    staged = tmp_path / "a.staged"
    staged.write_text(
        line_for("text", tie, "from a") + "\n" + line_for("text", after, "a after") + "\n"
    )
    staged.rename(a_log)
    await read_by("a", 2)
    with c_log.open("a") as file:
        file.write(line_for("text", after, "c after") + "\n")
    # c's record releases b's; a's catch-up record after the tie may leave once b's has (c's
    # own waits for the window: b, live and quiet, could still send an older one).
    await cli.wait_for(lambda: len(cli.out) >= 3, "the tied records and what ranks after")
    assert await cli.stop() == 0
    records = [orjson.loads(line) for line in cli.out]
    assert [(r["source"], r["line"].split(" ", 2)[2]) for r in records][:3] == [
        ("a", "from a"),
        ("b", "from b"),
        ("a", "a after"),
    ]
    assert records[0]["ts"] == records[1]["ts"] and not any(r.get("late") for r in records)
