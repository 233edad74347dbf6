"""NATS JetStream, shared by the nats sink and the nats source: the link to the servers and
the message format (``link``), and the book of messages a source has taken (``ledger``)."""
