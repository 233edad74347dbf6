"""What a reload changes: two configs compared part by part, keyed by name. Pure: no I/O.

A source or sink whose table is equal in both configs is *unchanged* and keeps running as it
is; one whose table differs in any key is *changed* (drained and replaced); one only in the new
config is *added*, one only in the old *removed*. In ``[aggregator]``, the keys in ``LIVE``
apply to the running merge; a change to any other (``state_dir``: where positions already
are) cannot apply without a restart, and refuses the whole reload.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

from aggregator.config.schema import AggregatorSection, Config

LIVE = frozenset({"order_window", "late", "idle_timeout", "checkpoint_interval"})
"""``[aggregator]`` keys a running pipeline takes on at a reload."""


@dataclass(frozen=True, slots=True)
class PartsDiff:
    """The names of one kind of part (sources or sinks), each in the new config's order
    (``removed``: the old one's)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def touched(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    sources: PartsDiff
    sinks: PartsDiff
    settings: list[str] = field(default_factory=list)
    """``[aggregator]`` keys that changed and apply live."""
    refused: list[str] = field(default_factory=list)
    """Why the reload cannot apply, one line each (``[aggregator]`` keys that need a restart)."""

    @property
    def empty(self) -> bool:
        """Nothing to do: the configs are the same, part for part."""
        return not (self.sources.touched or self.sinks.touched or self.settings or self.refused)


def diff_parts(old: Mapping[str, object], new: Mapping[str, object]) -> PartsDiff:
    """Which parts, by name, were added, removed, changed or left as they were."""
    result = PartsDiff(removed=[name for name in old if name not in new])
    for name, part in new.items():
        if name not in old:
            result.added.append(name)
        elif old[name] == part:
            result.unchanged.append(name)
        else:
            result.changed.append(name)
    return result


def diff_settings(old: AggregatorSection, new: AggregatorSection) -> tuple[list[str], list[str]]:
    """The ``[aggregator]`` keys that changed and apply live, and a line for each that cannot."""
    live, refused = [], []
    for key in AggregatorSection.__dataclass_fields__:
        before, after = getattr(old, key), getattr(new, key)
        if before == after:
            continue
        if key in LIVE:
            live.append(key)
        else:
            refused.append(
                f"aggregator.{key}: cannot change while running ({_show(before)} → "
                f"{_show(after)}); restart to apply it"
            )
    return live, refused


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """What a reload from ``old`` to ``new`` would do."""
    settings, refused = diff_settings(old.aggregator, new.aggregator)
    return ConfigDiff(
        diff_parts(old.sources, new.sources), diff_parts(old.sinks, new.sinks), settings, refused
    )


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str | PurePath) else str(value)
