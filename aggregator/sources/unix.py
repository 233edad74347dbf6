"""``type = "unix"``: one config table, two kinds of socket (``socket = "stream"|"datagram"``)."""

from aggregator.config import UnixSourceConfig
from aggregator.sources import Source, SourceContext
from aggregator.sources.datagram import UnixDatagramSource
from aggregator.sources.stream import UnixStreamSource


def unix_source(name: str, config: UnixSourceConfig, context: SourceContext) -> Source:
    """A Unix stream listener, or a datagram one (``/dev/log`` style)."""
    if config.socket == "stream":
        return UnixStreamSource(name, config, context)
    return UnixDatagramSource(name, config, context)
