"""A time is only as exact as its precision: a record stamped to the second is neither late nor
out of place beside millisecond records of the same second (docs/guarantees.md, "Coarse times")."""

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from aggregator.flow.chunk import Announce, Chunk
from aggregator.flow.lane import precision_of, within_precision
from aggregator.flow.ordering import OrderingCore
from aggregator.record.record import Record
from tests.conftest import Cli, follow_synced, start_cli

S = 1_000_000  # µs
T = 1_764_583_205 * S  # a whole second


@pytest.mark.parametrize(
    ("ts", "precision"),
    [(T, S), (T + 500_000, 1000), (T + 123_000, 1000), (T + 123_456, 1), (T + 1, 1)],
)
def test_precision_is_what_the_value_tells(ts: int, precision: int) -> None:
    """Whole seconds are known to the second, whole milliseconds to the millisecond."""
    assert precision_of(ts) == precision


@pytest.mark.parametrize(
    ("key", "sent", "in_place"),
    [
        (T, T + 500_000, True),  # 10:00:05 may be 10:00:05.999: after .500 it is in place
        (T, T + 999_999, True),
        (T, T + S, False),  # after 10:00:06, 10:00:05 is late
        (T - S, T + 500_000, False),
        (T + 500_000, T + 500_999, True),  # a millisecond time, within its millisecond
        (T + 500_000, T + 501_000, False),  # ... and a whole millisecond later
        (T + 123_456, T + 123_457, False),  # a microsecond time: exact
        (T + 10, T + 5, True),  # newer: never late
    ],
)
def test_within_precision(key: int, sent: int, in_place: bool) -> None:
    """A record is late only if older than what was sent by its whole precision."""
    assert within_precision(key, sent) is in_place


@pytest.mark.parametrize("policy", ["emit", "drop"])
def test_a_coarse_record_after_finer_ones_is_not_late(policy: str) -> None:
    """Live: 10:00:05 after 10:00:05.500 was sent leaves unflagged and is not dropped;
    10:00:04 from another file is late (flagged, or dropped)."""
    core = OrderingCore(window=0.0, idle_timeout=1.0, late_policy=policy)  # type: ignore[arg-type]
    core.add_source("fine")
    core.add_source("coarse")
    core.announce("fine", Announce(["fine"], live=True), 0.0)
    core.announce("coarse", Announce(["coarse"], live=True), 0.0)
    core.push("fine", Chunk("fine", [Record(T + 500_000, "fine", "fine", "a")]), 0.0)
    assert [r.line for r in core.pop_ready(0.0)] == ["a"]
    core.push("coarse", Chunk("coarse", [Record(T, "coarse", "coarse", "b")]), 0.1)
    core.push("coarse", Chunk("coarse-2", [Record(T - S, "coarse", "coarse-2", "c")]), 0.1)
    out = core.pop_ready(0.1)
    if policy == "emit":
        assert [(r.line, r.late) for r in out] == [("c", True), ("b", False)]  # by time
    else:
        assert [(r.line, r.late) for r in out] == [("b", False)]
    assert core.stats.late == {"coarse": 1}


async def test_an_access_log_beside_a_millisecond_log(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Following a whole-second log beside a millisecond one: a line of the same second
    written after the finer one is not late; one of an earlier second is, and says so."""
    files = [tmp_path / name for name in ("app.log", "access.log", "old.log")]
    for path in files:
        path.write_text("")
    cli = await start_cli(
        "tail", "-n", "0", "--order-window", "0s", "--format", "json",
        *(path.name for path in files), cwd=tmp_path,
    )  # fmt: skip
    cli_processes.append(cli)
    for path in files:
        await follow_synced(cli, path, f"sync-{path.name}")
    # A minute ahead: after the sync lines (stamped when read), within future_grace.
    second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 60))
    earlier = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 59))
    written = [
        f"{second}.500Z fine",
        f"{second}Z same second",
        f"{earlier}Z a second before",
    ]
    for path, line in zip(files, written, strict=True):
        with path.open("a") as file:
            file.write(line + "\n")
        await cli.wait_for_out(line)  # sent before the next is written
    late = {(r := orjson.loads(line))["line"]: r.get("late", False) for line in cli.out}
    assert [late[line] for line in written] == [False, False, True]
    assert await cli.stop() == 0
    await asyncio.sleep(0)
