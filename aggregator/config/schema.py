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
    Regex,
    Size,
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


SourceConfig = Annotated[
    FileSourceConfig | StdinSourceConfig | TcpSourceConfig | UdpSourceConfig | UnixSourceConfig,
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


SinkConfig = Annotated[
    StdoutSinkConfig | FileSinkConfig | WebSocketSinkConfig, Field(discriminator="type")
]


class Config(_Strict):
    """A whole pipeline. Sources and sinks keep their order in the file: ties in the merge go
    to the source that comes first."""

    aggregator: AggregatorSection = AggregatorSection()
    sources: Annotated[dict[str, SourceConfig], Field(min_length=1)]
    sinks: Annotated[dict[str, SinkConfig], Field(min_length=1)]
