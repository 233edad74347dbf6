"""The web side: one port serving the browser page, /healthz, /metrics and the /ws stream, and
the client that follows another aggregator's stream (``aggregator connect``)."""

CONNECTION_LOG = "aggregator.web.connections"
"""The logger websockets reports each connection and HTTP request to."""
