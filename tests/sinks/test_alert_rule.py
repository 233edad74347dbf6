"""The alert rule, pure, with a fake clock: threshold within a window, groups, cooldown,
resolve, bounds (issue #29)."""

from aggregator.record.record import Record
from aggregator.record.where import where_of
from aggregator.sinks.alert_rule import MAX_GROUPS, OVERFLOW, SAMPLES, AlertRule


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def errors(count: int, source: str = "app", pod: str = "web-1") -> list[Record]:
    records = []
    for n in range(count):
        record = Record(0, source, "", f"boom {n}", level="error", fields={"k8s.pod.name": pod})
        record.seq = n + 1
        records.append(record)
    return records


def rule(clock: Clock, threshold: int = 3, group_by: tuple[str, ...] = (),
         cooldown: float = 600.0) -> AlertRule:  # fmt: skip
    return AlertRule(where_of("level>=error"), threshold, 60.0, group_by, cooldown, clock)


def test_fires_at_the_threshold_within_the_window_and_not_below() -> None:
    """Two matches do not fire; the third within a minute does, once, with samples."""
    clock = Clock()
    alerts = rule(clock)
    info = Record(0, "app", "", "fine", level="info")
    assert alerts.observe([info, *errors(2)]) == []
    clock.now += 61  # the first two have left the window
    assert alerts.observe(errors(2)) == []
    clock.now += 1
    [fired] = alerts.observe(errors(1))
    assert (fired.status, fired.count, fired.group) == ("firing", 3, {})
    assert [sample["line"] for sample in fired.first] == ["boom 0", "boom 1", "boom 0"]
    assert alerts.observe(errors(5)) == []  # still firing: no second notification


def test_one_alert_per_group() -> None:
    """group_by tells groups apart: each fires on its own count."""
    clock = Clock()
    alerts = rule(clock, group_by=("source", "k8s.pod.name"))
    fired = alerts.observe(errors(3, "app", "web-1") + errors(2, "app", "web-2")
                           + errors(3, "db", "web-1"))  # fmt: skip
    assert [(n.group, n.count) for n in fired] == [
        ({"source": "app", "k8s.pod.name": "web-1"}, 3),
        ({"source": "db", "k8s.pod.name": "web-1"}, 3),
    ]
    assert [n.group["k8s.pod.name"] for n in alerts.observe(errors(1, "app", "web-2"))] == ["web-2"]


def test_resolved_once_under_the_threshold_for_a_window_and_cooldown_suppresses() -> None:
    """Resolved after a whole window under the threshold; a new firing within the cooldown is
    suppressed (counted once) and notified once the cooldown has passed, if it still holds."""
    clock = Clock()
    alerts = rule(clock, cooldown=300.0)
    assert [n.status for n in alerts.observe(errors(3))] == ["firing"]
    clock.now += 30
    assert alerts.tick() == []  # count still 3 within the window
    clock.now += 31
    assert alerts.tick() == []  # under the threshold now: the window starts
    clock.now += 59
    assert alerts.tick() == []
    clock.now += 2
    [resolved] = alerts.tick()
    assert resolved.status == "resolved" and resolved.count == 0
    assert alerts.observe(errors(3)) == []  # within the cooldown
    assert alerts.observe(errors(3)) == [] and alerts.suppressed == 1
    clock.now = 10_000.0 + 301
    assert [n.status for n in alerts.observe(errors(3))] == ["firing"]


def test_groups_and_samples_are_bounded() -> None:
    """Past MAX_GROUPS, new groups share one; samples stay few; idle groups are let go."""
    clock = Clock()
    alerts = rule(clock, threshold=1000, group_by=("source",))
    for number in range(MAX_GROUPS + 50):
        alerts.observe(errors(1, f"s{number}"))
    assert len(alerts._groups) <= MAX_GROUPS + 1
    assert (OVERFLOW,) in alerts._groups
    alerts.observe(errors(500, "s1"))
    group = alerts._groups[("s1",)]
    assert len(group.first) == SAMPLES and len(group.last) == SAMPLES
    clock.now += 61 + 600
    alerts.tick()
    assert alerts._groups == {}


def test_without_where_every_record_counts() -> None:
    """A rule with no where counts every record."""
    clock = Clock()
    alerts = AlertRule(None, 2, 60.0, (), 0.0, clock)
    assert len(alerts.observe([Record(0, "a", "", "x"), Record(0, "a", "", "y")])) == 1
