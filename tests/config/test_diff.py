"""The pure config diff a reload applies: parts keyed by name, [aggregator] keys that cannot
change live (issue #28)."""

from typing import Any

from aggregator.config import parse_config
from aggregator.config.diff import ConfigDiff, PartsDiff, diff_configs, diff_parts

BASE: dict[str, Any] = {
    "aggregator": {"state_dir": "/tmp/state", "order_window": "250ms"},
    "sources": {
        "app": {"type": "file", "paths": ["/var/log/app/*.log"]},
        "net": {"type": "tcp", "listen": "127.0.0.1:5170", "max_connections": 10},
        "old": {"type": "udp", "listen": "127.0.0.1:5514"},
    },
    "sinks": {
        "console": {"type": "stdout", "filter": {"level": "info"}},
        "live": {"type": "websocket", "listen": "127.0.0.1:8765", "auth_token": "a"},
    },
}


def diff(old: dict[str, Any], new: dict[str, Any]) -> ConfigDiff:
    return diff_configs(parse_config(old, "old.toml", {}), parse_config(new, "new.toml", {}))


def edited(**sections: Any) -> dict[str, Any]:
    """BASE with whole sections replaced."""
    return {**BASE, **sections}


def test_the_same_config_is_an_empty_diff() -> None:
    """Two equal configs (parsed twice, defaults spelled out or not) change nothing."""
    spelled = edited(
        sources={**BASE["sources"], "old": {**BASE["sources"]["old"], "codec": "auto"}}
    )
    result = diff(BASE, spelled)
    assert result.empty
    assert result.sources.unchanged == ["app", "net", "old"]
    assert result.sinks.unchanged == ["console", "live"]


def test_parts_are_added_removed_changed_by_name() -> None:
    """A new name is added, a missing one removed, any changed key (a filter, a limit, a
    secret) changes its part; the rest is unchanged."""
    sources = {
        "app": BASE["sources"]["app"],
        "net": {**BASE["sources"]["net"], "max_connections": 20},
        "new": {"type": "file", "paths": ["/tmp/new.log"]},
    }
    sinks = {
        "console": {"type": "stdout", "filter": {"level": "warn"}},
        "live": {**BASE["sinks"]["live"], "auth_token": "b"},
    }
    result = diff(BASE, edited(sources=sources, sinks=sinks))
    assert result.sources == PartsDiff(
        added=["new"], removed=["old"], changed=["net"], unchanged=["app"]
    )
    assert result.sinks == PartsDiff(changed=["console", "live"])
    assert not result.refused and not result.empty


def test_a_part_whose_type_changed_under_its_name_is_changed() -> None:
    """The same name with another type is a change (replaced), not an add and a remove."""
    sources = {**BASE["sources"], "old": {"type": "tcp", "listen": "127.0.0.1:5514"}}
    assert diff(BASE, edited(sources=sources)).sources.changed == ["old"]


def test_live_settings_apply_and_the_others_are_refused_by_name() -> None:
    """order_window, late, idle_timeout and checkpoint_interval apply live; a new state_dir
    or parse_workers is refused, naming the key and both values."""
    live = edited(aggregator={**BASE["aggregator"], "order_window": "1s", "late": "drop"})
    result = diff(BASE, live)
    assert result.settings == ["order_window", "late"] and result.refused == []
    moved = edited(aggregator={"state_dir": "/tmp/elsewhere", "parse_workers": 2})
    result = diff(BASE, moved)
    assert result.settings == []  # 250ms is the default: the same value
    assert result.refused == [
        'aggregator.state_dir: cannot change while running ("/tmp/state" → "/tmp/elsewhere"); '
        "restart to apply it",
        'aggregator.parse_workers: cannot change while running ("auto" → 2); restart to apply it',
    ]


def test_diff_parts_keeps_the_new_order_and_the_old_order_for_removed() -> None:
    """Names come in the new config's order; removed ones in the old's."""
    result = diff_parts({"a": 1, "b": 2, "c": 3, "d": 4}, {"e": 5, "c": 30, "a": 1})
    assert result == PartsDiff(added=["e"], removed=["b", "d"], changed=["c"], unchanged=["a"])
