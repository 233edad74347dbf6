"""The merged stream through the CLI: exact event-time order for existing data (SPEC §5)."""

import random
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from aggregator.record.formats import rfc3339_micros
from tests.conftest import DEADLINE

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
