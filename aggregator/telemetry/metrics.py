"""Prometheus text exposition (format 0.0.4): families of samples rendered for /metrics."""

from collections.abc import Iterable, Mapping
from typing import Literal

Labels = dict[str, str]
Kind = Literal["counter", "gauge"]
Counters = dict[str, float | Mapping[str, float]]
"""What a source or sink counts, by name: a number, or numbers by a label (unread bytes per
file). ``aggregator.telemetry.pipeline`` says which metric each name is."""


class Family:
    """One metric: its name, type, help text and samples (labels, value)."""

    __slots__ = ("help", "kind", "name", "samples")

    def __init__(self, name: str, kind: Kind, help: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help
        self.samples: list[tuple[Labels, float]] = []

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(families: Iterable[Family]) -> str:
    """The exposition text of ``families``; a family without samples still has its HELP/TYPE."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            text = ",".join(f'{key}="{escape_label(item)}"' for key, item in labels.items())
            number = repr(float(value)) if isinstance(value, float) else str(value)
            lines.append(f"{family.name}{{{text}}} {number}" if text else f"{family.name} {number}")
    return "\n".join(lines) + "\n"
