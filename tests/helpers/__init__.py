"""What the tests share beside conftest: faults to cause, a nats-server, a WebSocket client."""
