"""What the tests share beside conftest: faults to cause, a nats-server to start, a WebSocket client."""
