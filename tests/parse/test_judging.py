"""A sink's ``where`` judged where lines are decoded (issue #29): a worker's verdicts on a plain
lane's region, whole records on the loop while ``where``s are judged, and a record decoded
with less found again whole (``Decoding.complete``) — each as testing the whole record says."""

import pytest

from aggregator.config import LineSourceConfig
from aggregator.parse.decode import Decoding
from aggregator.parse.pool import POOL_MIN_BYTES, ParsePool
from aggregator.parse.worker import CodecSpec, parse_region
from aggregator.record.record import Record
from aggregator.record.verdicts import COMPLETE, MARKS_SHIFT, Judged
from aggregator.record.where import where_of
from tests.parse.test_parse_pool import mixed_region

WHERES = ("level >= warn and n >= 40", 'line contains "ERROR" or not exists(n)')
NEW = 'n < 10 or level = "error"'


def whole_records(config: LineSourceConfig, data: bytes, origin: str = "a.log") -> list[Record]:
    """The records of ``data`` with all their codec finds (what a sink would test)."""
    return Decoding("app", config).lane(origin).feed(data)


def verdict(record: Record, judged: Judged, text: str) -> bool:
    bit = judged.bit(text)
    assert record.verdicts & bit << MARKS_SHIFT, "not judged on it"
    return bool(record.verdicts & bit)


async def test_a_worker_judges_a_plain_lane_s_region_as_testing_the_records_would() -> None:
    """With ``where``s judged and the sinks needing only times, a large read's records carry
    the worker's verdicts on each ``where`` (and no level or fields), the same as testing the
    whole records; a small read's are found whole on the loop and marked so."""
    config = LineSourceConfig(max_line_bytes=256)
    judged = Judged()
    judged.use(WHERES)
    pool = ParsePool(1)
    decoding = Decoding("app", config, "stamps", pool, judged)
    region = mixed_region(100) + b"\n"
    small = mixed_region(3, seed=500) + b"\n"
    assert len(region) >= POOL_MIN_BYTES > len(small)
    try:
        await pool.start()
        lane = decoding.lane("a.log")
        large, little = await lane.decode(region), await lane.decode(small)
    finally:
        await pool.close()
    whole = whole_records(config, region)
    assert all(r.level is None and r.fields is None and not r.verdicts & COMPLETE for r in large)
    for text in WHERES:
        where = where_of(text)
        passing = [where.test(record) for record in whole]
        assert 0 < sum(passing) < len(whole)
        assert [verdict(record, judged, text) for record in large] == passing
    assert all(record.verdicts == COMPLETE for record in little)
    assert [(r.line, r.level, r.fields) for r in little] == [
        (r.line, r.level, r.fields) for r in whole_records(config, small)
    ]


@pytest.mark.parametrize("needs", ["stamps", "json"])
def test_complete_finds_again_what_a_decoding_left_out(needs: str) -> None:
    """A record decoded before a ``where`` reading fields was judged (only its time, or its
    JSON tail: a worker makes one only for lanes without fixed fields) is found whole again,
    with the lane's fixed fields; a whole one is as it is."""
    fixed = needs == "stamps"
    config = LineSourceConfig(fields={"team": "core"} if fixed else {}, max_line_bytes=256)
    # A Kubernetes path has fields of its own.
    origin = "/var/log/pods/ns_web-1_0123abcd/app/0.log" if fixed else "a.log"
    region = mixed_region(20)
    decoding = Decoding("app", config)
    spec = CodecSpec("auto", None, "auto", None, needs)  # type: ignore[arg-type]
    bare, _ = decoding.parsed_records(origin, parse_region(spec, region, 256), 7)
    assert all(r.level is None and r.fields is None for r in bare)
    whole = whole_records(config, region + b"\n", origin)
    completed = [decoding.complete(record) for record in bare]
    assert [(r.line, r.level, r.fields) for r in completed] == [
        (r.line, r.level, r.fields) for r in whole
    ]
    pod = [r for r in completed if r.fields and r.fields.get("k8s.pod.name") == "web-1"]
    assert len(pod) == (len(whole) if fixed else 0)
    assert all(decoding.complete(record) is record for record in whole if record.fields)


def test_a_reload_s_new_where_is_judged_from_the_next_region_on() -> None:
    """``Judged.use`` with a new ``where``: a region sent before still maps to the verdicts
    on what it was judged on (marked for those alone), one sent after carries the new one."""
    judged = Judged()
    judged.use(WHERES[:1])
    decoding = Decoding("app", LineSourceConfig(max_line_bytes=256), "stamps", None, judged)
    before = decoding.region_spec(judged.current, whole=False)
    judged.use([WHERES[0], NEW])
    after = decoding.region_spec(judged.current, whole=False)
    assert before.wheres == WHERES[:1] and after.wheres == (WHERES[0], NEW)
    region = mixed_region(30)
    old, _ = decoding.parsed_records("a.log", parse_region(before, region, 256), 7, None, before)
    new, _ = decoding.parsed_records("a.log", parse_region(after, region, 256), 7, None, after)
    new_mark = judged.bit(NEW) << MARKS_SHIFT
    assert not any(record.verdicts & new_mark for record in old)
    whole = whole_records(LineSourceConfig(max_line_bytes=256), region + b"\n")
    assert [verdict(r, judged, NEW) for r in new] == [where_of(NEW).test(r) for r in whole]
    assert [verdict(r, judged, WHERES[0]) for r in old] == [
        verdict(r, judged, WHERES[0]) for r in new
    ]
    assert decoding.region_spec(judged.current, whole=True).needs == "everything"
