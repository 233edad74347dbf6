"""What the running pipeline tells about itself: counters rendered for /metrics
(``metrics``), and health and metrics read off the parts (``pipeline``)."""

from typing import Protocol


class Telemetry(Protocol):
    """What the pipeline tells /healthz and /metrics."""

    def health(self) -> tuple[bool, dict[str, object]]: ...

    def metrics(self) -> str: ...
