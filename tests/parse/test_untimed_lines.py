"""Lines without a time of their own take the time of the record before them in their lane
(SPEC §4), on the loop and in a parse worker alike, so a trace stays beside its error."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from aggregator.config import LineSourceConfig
from aggregator.config.schema import MultilineSpec
from aggregator.parse.decode import Decoding, now_micros
from aggregator.parse.pool import POOL_MIN_BYTES, ParsePool
from tests.conftest import DEADLINE

T1 = 1_764_583_200_000_000  # 2025-12-01T10:00:00Z in µs
TRACEBACK = (
    b"2025-12-01T10:00:00Z ERROR request failed\n"
    b"Traceback (most recent call last):\n"
    b'  File "app.py", line 3, in <module>\n'
    b"ValueError: boom\n"
    b"2025-12-01T10:00:01Z INFO next\n"
)


TIMED = {
    "raw": "{ts} ERROR failed",
    "auto": "{ts} ERROR failed",
    "json": '{{"ts": "{ts}", "msg": "failed"}}',
    "logfmt": "ts={ts} msg=failed",
}


@pytest.mark.parametrize("codec", list(TIMED))
def test_untimed_lines_take_the_time_before_them(codec: str) -> None:
    """Each untimed line takes the previous record's time, whatever the codec."""
    first, last = (
        TIMED[codec].format(ts=ts) for ts in ("2025-12-01T10:00:00Z", "2025-12-01T10:00:01Z")
    )
    data = f"{first}\nTraceback (most recent call last):\n  File x\nValueError: boom\n{last}\n"
    lane = Decoding("app", LineSourceConfig(codec=codec)).lane("a.log")
    stamps = [record.ts for record in lane.feed(data.encode())]
    assert stamps == [T1, T1, T1, T1, T1 + 1_000_000]


@pytest.mark.parametrize(
    ("feeds", "expected"),
    [
        ([b"2025-12-01T10:00:00Z a\n", b"  at x\n"], [T1, T1]),  # across reads
        ([b"2025-12-01T10:00:00Z a\n  at ", b"x\n  at y\n"], [T1, T1, T1]),  # a split line
        ([b"2025-12-01T10:00:00Z a\n", b"", b"\n"], [T1, T1]),  # an empty line is a record
    ],
)
def test_the_time_carries_across_reads(feeds: list[bytes], expected: list[int]) -> None:
    """The lane remembers its last time from one read to the next."""
    lane = Decoding("app", LineSourceConfig()).lane("a.log")
    stamps = [record.ts for data in feeds for record in lane.feed(data)]
    assert stamps == expected


def test_only_where_no_time_came_before_the_read_time() -> None:
    """Lines before the lane's first timed line carry the time they were read."""
    before = now_micros()
    lane = Decoding("app", LineSourceConfig()).lane("a.log")
    records = lane.feed(b"no time\nnor here\n2025-12-01T10:00:00Z timed\nafter\n")
    after = now_micros()
    assert all(before <= record.ts <= after for record in records[:2])
    assert [record.ts for record in records[2:]] == [T1, T1]


def test_lanes_keep_their_own_time() -> None:
    """One lane's time never reaches another's untimed lines."""
    decoding = Decoding("app", LineSourceConfig())
    first, second = decoding.lane("a.log"), decoding.lane("b.log")
    first.feed(b"2025-12-01T10:00:00Z a\n")
    before = now_micros()
    (record,) = second.feed(b"untimed\n")
    assert record.ts >= before


def test_a_joined_multiline_record_keeps_its_first_line_s_time() -> None:
    """A record the multiline joiner makes takes its first line's time, and an untimed
    record after it takes that time too."""
    config = LineSourceConfig(multiline=MultilineSpec(start=r"^\d"))
    lane = Decoding("app", config).lane("a.log")
    records = lane.feed(TRACEBACK) + lane.flush()
    assert [record.ts for record in records] == [T1, T1 + 1_000_000]
    assert records[0].line.count("\n") == 3


def _untimed_region(lines: int) -> bytes:
    return b"".join(
        b"    at frame %d of a very long stack trace\n" % index for index in range(lines)
    )


@pytest.mark.parametrize("codec", ["raw", "auto"])
async def test_a_worker_s_region_takes_the_lane_s_time(codec: str) -> None:
    """A large read parsed in a worker gives its untimed first lines the time the lane had
    before it, as parsing on the loop does."""
    config = LineSourceConfig(codec=codec)
    head = b"2025-12-01T10:00:00Z ERROR the start\n"
    region = _untimed_region(2000) + b"2025-12-01T10:00:01Z ok\n" + _untimed_region(10)
    assert len(region) >= POOL_MIN_BYTES
    on_loop = Decoding("app", config).lane("a.log")
    expected = on_loop.feed(head) + on_loop.feed(region)
    pool = ParsePool(1)
    lane = Decoding("app", config, pool=pool).lane("a.log")
    try:
        await pool.start()
        got = await lane.decode(head) + await lane.decode(region)
    finally:
        await pool.close()
    assert [r.ts for r in got] == [r.ts for r in expected]
    assert [r.ts for r in got[:2001]] == [T1] * 2001
    assert lane.last_ts == on_loop.last_ts == T1 + 1_000_000


def test_a_traceback_stays_beside_its_error_in_the_merge(tmp_path: Path) -> None:
    """--no-follow --from-start: a trace's lines follow their error, not the end of the
    other files, and --format json shows them with the error's ts."""
    (tmp_path / "app.log").write_bytes(TRACEBACK)
    (tmp_path / "other.log").write_bytes(
        b"2025-12-01T09:59:59Z before\n2025-12-01T10:00:00.500Z between\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "tail", "--no-follow", "--from-start",
         "--format", "json", "app.log", "other.log"],
        cwd=tmp_path, capture_output=True, timeout=DEADLINE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"][:12] for r in records] == [
        "2025-12-01T0",  # before
        "2025-12-01T1",  # the error
        "Traceback (m",
        '  File "app.',
        "ValueError: ",
        "2025-12-01T1",  # between
        "2025-12-01T1",  # next
    ]
    assert {r["ts"] for r in records[1:5]} == {"2025-12-01T10:00:00.000000Z"}
