"""What every source and sink shares: one life cycle, and being built from a registry.

A registry maps a config ``type`` to ``"module:Class"``; the module is imported only when a
config uses it, so a command loads only the parts it runs.
"""

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from aggregator.telemetry.metrics import Counters


class Part(Protocol):
    """A source or a sink: ``open``, then ``run`` (each protocol says what it takes), or
    ``close`` if ``run`` never comes (a failed start)."""

    name: str

    async def open(self) -> None:
        """Take what the part needs (bind a port, create a file): a part that cannot start is
        reported before anything is read."""

    async def close(self) -> None:
        """Release what ``open`` took, if ``run`` never will."""

    def counters(self) -> Counters:
        """For /metrics: what this part has counted (``telemetry.pipeline`` names them)."""
        return {}


def build(registry: Mapping[str, str], name: str, config: Any, context: object) -> Any:
    """``Class(name, config, context)`` for the class ``registry`` names for ``config.type``."""
    module, _, attribute = registry[config.type].partition(":")
    return getattr(importlib.import_module(module), attribute)(name, config, context)
