"""aggregator: many logs in, one live stream ordered by event time out."""

__version__ = "0.1.0"
