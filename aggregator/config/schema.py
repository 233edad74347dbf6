"""The config's tables as pydantic models: every key, its type and its default (SPEC §3).

Unknown keys are errors (``extra="forbid"``). Sources and sinks are discriminated by ``type``.
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, SecretStr

from aggregator.config.types import (
    CodecName,
    Duration,
    FileMode,
    FormatName,
    HostPort,
    Level,
    NatsName,
    NatsUrls,
    Regex,
    Size,
    StreamUrl,
    Workers,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AggregatorSection(_Strict):
    state_dir: Path = Path(".aggregator")
    order_window: Duration = 0.25
    late: Literal["emit", "drop"] = "emit"
    idle_timeout: Duration = 1.0
    checkpoint_interval: Duration = 1.0
    parse_workers: Workers = "auto"
    """Processes that parse large reads (catch-up); 0: parse everything on the event loop."""


class TimestampSpec(_Strict):
    field: str | None = None
    format: str = "auto"


class MultilineSpec(_Strict):
    start: Regex
    timeout: Duration = 1.0
    max_lines: PositiveInt = 1000


class LineSourceConfig(_Strict):
    """What every source that reads lines shares: how bytes become records."""

    codec: CodecName = "auto"
    pattern: Regex | None = None
    timestamp: TimestampSpec = TimestampSpec()
    multiline: MultilineSpec | None = None
    max_line_bytes: Annotated[Size, Field(gt=0)] = 1 << 20


class FileSourceConfig(LineSourceConfig):
    type: Literal["file"]
    paths: Annotated[list[str], Field(min_length=1)]
    exclude: list[str] = []
    start_at: Literal["end", "beginning"] = "end"
    follow: bool = True
    rotate_wait: Duration = 5.0  # keep reading a rotated-away (or deleted) file this long
    close_idle: Duration = (
        60.0  # close a watched file quiet this long (reopened on change); 0: never
    )


class StdinSourceConfig(LineSourceConfig):
    type: Literal["stdin"]


class TlsSpec(_Strict):
    cert: Path
    key: Path


class StreamListenerConfig(LineSourceConfig):
    """What stream listeners (TCP, Unix stream) share."""

    framing: Literal["newline", "octet-counted"] = "newline"
    max_connections: PositiveInt = 1000
    idle_timeout: Duration = 0.0  # close a connection silent this long; 0: never


class TcpSourceConfig(StreamListenerConfig):
    type: Literal["tcp"]
    listen: HostPort
    tls: TlsSpec | None = None


class UdpSourceConfig(LineSourceConfig):
    type: Literal["udp"]
    listen: HostPort
    max_datagram_bytes: Annotated[Size, Field(gt=0)] = 65535


class UnixSourceConfig(StreamListenerConfig):
    type: Literal["unix"]
    path: Path
    socket: Literal["stream", "datagram"] = "stream"
    mode: FileMode = 0o660
    max_datagram_bytes: Annotated[Size, Field(gt=0)] = 65535


class NatsTlsSpec(_Strict):
    """TLS to nats-server: ``ca`` to verify it, ``cert`` and ``key`` to be verified by it."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


class NatsPart(_Strict):
    """What the nats sink and source share: the servers, the credentials, the stream."""

    url: NatsUrls = ["nats://127.0.0.1:4222"]
    subject: NatsName = "logs"  # a prefix: records go to SUBJECT.NODE.SOURCE
    stream: NatsName = "LOGS"  # created if missing (subjects SUBJECT.>), else used as it is
    creds: Path | None = None  # a .creds file (JWT and NKey seed)
    token: SecretStr = SecretStr("")
    user: str | None = None
    password: SecretStr = SecretStr("")
    tls: NatsTlsSpec | None = None
    # Only when the stream is created here: how long and how much it keeps, and how long a
    # re-sent message (same Nats-Msg-Id) is recognised. 0: no limit.
    max_age: Duration = 7 * 86400.0
    max_bytes: Size = 0
    duplicate_window: Annotated[Duration, Field(gt=0)] = 600.0


class NatsSourceConfig(NatsPart):
    """A durable JetStream pull consumer of ``SUBJECT.>`` (SPEC §3, §6)."""

    type: Literal["nats"]
    durable: NatsName | None = None  # default: the source's name
    batch: PositiveInt = 64  # messages asked for in one fetch (each up to max_message_bytes)
    ack_wait: Annotated[Duration, Field(gt=0)] = 60.0  # unacknowledged this long: redelivered
    max_ack_pending: PositiveInt = 1000  # messages delivered and not yet acknowledged


class WebSocketSourceConfig(_Strict):
    """Another aggregator's stream, followed the way ``aggregator connect`` follows it."""

    type: Literal["websocket"]
    url: StreamUrl  # ws://HOST:PORT/ws?source=…&level=…&grep=…
    token: SecretStr = SecretStr("")
    node: str = ""  # the name its records get as ``node``; "": the URL's HOST:PORT


SourceConfig = Annotated[
    FileSourceConfig
    | StdinSourceConfig
    | TcpSourceConfig
    | UdpSourceConfig
    | UnixSourceConfig
    | NatsSourceConfig
    | WebSocketSourceConfig,
    Field(discriminator="type"),
]


class FilterSpec(_Strict):
    sources: list[str] = []
    level: Level | None = None
    grep: Regex | None = None


class _Sink(_Strict):
    filter: FilterSpec | None = None


class StdoutSinkConfig(_Sink):
    type: Literal["stdout"]
    format: FormatName = "text"


class RotateSpec(_Strict):
    max_bytes: Annotated[Size, Field(gt=0)]
    keep: PositiveInt = 5


class FileSinkConfig(_Sink):
    type: Literal["file"]
    path: Path
    format: FormatName = "json"
    rotate: RotateSpec | None = None
    fsync: Literal["always", "interval", "never"] = "interval"


class WebSocketSinkConfig(_Sink):
    """The live stream for WebSocket subscribers and the browser page, on one port (SPEC §7)."""

    type: Literal["websocket"]
    listen: HostPort
    replay: NonNegativeInt = 1000  # last N records kept for new and resuming subscribers
    auth_token: SecretStr = SecretStr("")  # shown as ****** by `check`; never logged
    allowed_origins: list[str] = []  # besides the page's own origin
    allow_anonymous: bool = False  # a non-loopback listen without a token is refused without it
    max_subscribers: PositiveInt = 1000
    slow_subscriber: Literal["drop", "disconnect"] = "drop"
    subscriber_buffer: Annotated[Size, Field(gt=0)] = 4 << 20  # bytes queued for one subscriber
    compression: bool = False  # permessage-deflate: costs the server CPU per subscriber
    ping_interval: Duration = 20.0  # a subscriber that does not answer a ping in time is closed


class TcpSinkConfig(_Sink):
    """Newline-delimited records to a TCP peer (Vector, Fluent Bit, nc)."""

    type: Literal["tcp"]
    address: HostPort
    format: FormatName = "json"


class NatsSinkConfig(_Sink, NatsPart):
    """The stream published to NATS JetStream, many records a message (SPEC §3, §6)."""

    type: Literal["nats"]
    node: str = ""  # this machine's name in subjects and records; "": the host name
    max_records: PositiveInt = 1000  # a message closes at this many records,
    max_message_bytes: Annotated[Size, Field(gt=0, le=1 << 20)] = 256 << 10  # this many bytes,
    linger: Duration = 0.005  # or when its first record has waited this long
    publish_timeout: Annotated[Duration, Field(gt=0)] = 5.0  # no ack this long: sent again


SinkConfig = Annotated[
    StdoutSinkConfig | FileSinkConfig | WebSocketSinkConfig | TcpSinkConfig | NatsSinkConfig,
    Field(discriminator="type"),
]


class Config(_Strict):
    """A whole pipeline. Sources and sinks keep their order in the file: ties in the merge go
    to the source that comes first."""

    aggregator: AggregatorSection = AggregatorSection()
    sources: Annotated[dict[str, SourceConfig], Field(min_length=1)]
    sinks: Annotated[dict[str, SinkConfig], Field(min_length=1)]
