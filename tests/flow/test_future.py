"""Records stamped in the future (SPEC §9): placed at the time they were read, flagged, kept
apart from what they claimed, and never a reason to call other records late."""

import time
from pathlib import Path

import orjson

from aggregator.flow.future import place_future
from aggregator.record.formats import encode_json, rfc3339_micros
from aggregator.record.record import Record
from tests.conftest import Cli, start_cli
from tests.helpers.web import Server, http_get, send_lines

NOW = 1_795_600_800_000_000
GRACE = 600_000_000


def test_only_records_beyond_the_grace_are_placed() -> None:
    """A time up to the grace ahead is believed; one beyond is placed at now, its claim kept."""
    stamps = [NOW - 5, NOW + GRACE, NOW + GRACE + 1, 2**62]
    records = [Record(ts, "a", "", str(ts)) for ts in stamps]
    assert place_future(records, NOW, GRACE) == 2
    assert [r.ts for r in records] == [NOW - 5, NOW + GRACE, NOW, NOW]
    assert [r.ts_claimed for r in records] == [0, 0, NOW + GRACE + 1, 2**62]
    assert place_future([], NOW, GRACE) == 0


def test_json_output_says_future_and_the_claimed_time() -> None:
    """``future: true`` and ``ts_claimed`` appear in NDJSON for a placed record only; a claim
    beyond any calendar is written as its number."""
    placed = Record(NOW, "a", "o", "x")
    placed.ts_claimed = NOW + GRACE + 1
    beyond = Record(NOW, "a", "o", "y")
    beyond.ts_claimed = 2**62
    plain = Record(NOW, "a", "o", "z")
    first, second, third = (
        orjson.loads(line) for line in encode_json([placed, beyond, plain]).splitlines()
    )
    assert first["future"] is True and first["ts_claimed"] == rfc3339_micros(NOW + GRACE + 1)
    assert second["ts_claimed"] == str(2**62)
    assert "future" not in third and "ts_claimed" not in third


def stamped(text: str, offset: float = 0.0) -> str:
    ts = rfc3339_micros(time.time_ns() // 1000 + round(offset * 1e6))
    return orjson.dumps({"ts": ts, "msg": text}).decode()


async def test_a_far_future_line_makes_nothing_else_late(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Two tcp sources with late = "drop": a line stamped 9999-12-31 between normal ones is
    placed at its read time and flagged; no record of either source is dropped or late."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[aggregator]\nlate = "drop"\norder_window = "100ms"\nstate_dir = "state"\n'
        '[sources.a]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "json"\n'
        '[sources.b]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "json"\n'
        '[sinks.out]\ntype = "stdout"\nformat = "json"\n'
        '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    )
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    http = await cli.serving()
    server = Server(cli, ("", 0), http)
    addresses = [await server.source_address("a"), await server.source_address("b")]
    await send_lines(addresses[0], [stamped("a1"), '{"ts": "9999-12-31T23:59:59Z", "msg": "far"}'])
    await cli.wait_for_out('"far"')
    await send_lines(addresses[1], [stamped(f"b{n}") for n in range(5)])
    await send_lines(addresses[0], [stamped("a2")])
    await cli.wait_for_out('"a2"')
    await cli.wait_for_out('"b4"')
    records = [orjson.loads(line) for line in cli.out]
    texts = sorted(r["fields"]["msg"] for r in records)
    assert texts == ["a1", "a2", "b0", "b1", "b2", "b3", "b4", "far"]
    assert not any(r.get("late") for r in records)
    far = next(r for r in records if r["fields"]["msg"] == "far")
    assert far["future"] is True and far["ts_claimed"] == "9999-12-31T23:59:59.000000Z"
    assert far["ts"] < "9999"
    assert any("stamped in the future" in line for line in cli.err)
    _, _, metrics = http_get(f"http://{http[0]}:{http[1]}/metrics")
    assert 'aggregator_future_total{source="a"} 1' in metrics
    assert 'aggregator_future_total{source="b"} 0' in metrics
    assert 'aggregator_dropped_total{source="b",reason="late"} 0' in metrics
