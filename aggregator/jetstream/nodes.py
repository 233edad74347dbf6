"""What a central knows of each sidecar node it hears through the stream: when it last heard of
it, how far behind it is, whether it stopped cleanly; quiet nodes named on stderr, once."""

import logging
import time
from dataclasses import dataclass, field

from aggregator.jetstream.messages import Decoded

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Node:
    """One sidecar, as far as the central can tell."""

    seen: float  # monotonic
    lag: float = 0.0  # seconds: taken here less sent there
    quiet: bool = False  # named on stderr as quiet, not heard of since
    subjects: set[str] = field(default_factory=set)  # its subjects heard of
    ended: set[str] = field(default_factory=set)  # those it ended cleanly


class Nodes:
    """The nodes a nats source heard of, for /metrics and stderr."""

    def __init__(self, where: str, quiet_after: float) -> None:
        self.where = where  # "sources.bus", for messages
        self.quiet_after = quiet_after
        self.known: dict[str, Node] = {}
        self._looked_at = 0.0

    def heard(self, decoded: Decoded, subject: str) -> None:
        """Note that the node spoke (and, for an end marker, that it stopped cleanly)."""
        now = time.monotonic()
        node = self.known.get(decoded.node)
        if node is None:
            node = self.known[decoded.node] = Node(now)
        elif node.quiet:
            log.info("%s: node %s speaks again", self.where, decoded.node)
        node.seen, node.quiet = now, False
        node.subjects.add(subject)
        if decoded.sent_at is not None:
            node.lag = round(time.time() - decoded.sent_at / 1e6, 6)
        if decoded.end:
            node.ended.add(subject)
            log.info("%s: node %s stopped %s cleanly", self.where, decoded.node, decoded.source)
        else:
            node.ended.discard(subject)

    def look_for_quiet(self) -> None:
        """Name each node silent for ``quiet_after`` on stderr, once (not one that stopped
        cleanly: it said so); looked at once a second at most."""
        now = time.monotonic()
        if now < self._looked_at + 1.0:
            return
        self._looked_at = now
        for name, node in self.known.items():
            if node.quiet or now - node.seen < self.quiet_after:
                continue
            node.quiet = True
            if node.ended != node.subjects:
                log.warning("%s: node %s has sent nothing for %.0fs", self.where, name,
                            now - node.seen)  # fmt: skip

    def last_seen(self) -> dict[str, float]:
        now = time.monotonic()
        return {name: round(now - node.seen, 3) for name, node in self.known.items()}

    def lags(self) -> dict[str, float]:
        return {name: node.lag for name, node in self.known.items()}
