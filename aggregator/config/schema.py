"""The config's tables as frozen dataclasses: every key, its type and its default (SPEC §3).

They are plain dataclasses so that what builds a config without a file (``aggregator tail``)
does not load pydantic; ``aggregator.config.loading`` validates a file's tables into them with
pydantic. Unknown keys are errors (``extra="forbid"``). Sources and sinks are told apart by
``type``.
"""

from dataclasses import MISSING, FrozenInstanceError, dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from aggregator.config.types import (
    CodecName,
    Constraint,
    Duration,
    FieldValue,
    FileMode,
    FormatName,
    HostPort,
    HttpUrl,
    InnerCodecName,
    Level,
    NatsName,
    NatsUrls,
    NonEmpty,
    NonNegativeInt,
    Positive,
    PositiveInt,
    Regex,
    Secret,
    Size,
    StreamUrl,
    Tagged,
    WhereText,
    Workers,
)


class _Strict:
    """A table: built from keyword arguments, frozen, compared and shown by its fields.

    These methods are written once here rather than generated for every table by
    ``@dataclass(frozen=True)``, which took 20 ms of every start (the tables are made with
    ``init=False, repr=False, eq=False``; pydantic fills a validated table's ``__dict__``
    itself).
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def __init__(self, **values: Any) -> None:
        for name, spec in self.__dataclass_fields__.items():
            if name in values:
                value = values.pop(name)
            elif spec.default is not MISSING:
                value = spec.default
            elif spec.default_factory is not MISSING:
                value = spec.default_factory()
            else:
                raise TypeError(f"{type(self).__name__}: {name} is required")
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__}: unknown keys {sorted(values)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__dataclass_fields__)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Strict)
            and type(other) is type(self)
            and (other._values() == self._values())
        )

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__)
        return f"{type(self).__name__}({values})"


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class AggregatorSection(_Strict):
    """The ``[aggregator]`` table: ordering, state and the parse workers of the whole pipeline."""

    state_dir: Path = Path(".aggregator")
    order_window: Duration = 0.25
    late: Literal["emit", "drop"] = "emit"
    future_grace: Duration = 600.0  # a time further ahead of its reading is not believed
    idle_timeout: Duration = 1.0
    stall_after: Duration = 30.0
    """A source with unread input whose reader has not moved this long is named (SPEC §8)."""
    checkpoint_interval: Duration = 1.0
    parse_workers: Workers = "auto"
    """Processes that parse large reads (catch-up); 0: parse everything on the event loop."""


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class TimestampSpec(_Strict):
    """Where a record's time is (a field of the line, or found by ``auto``) and its format."""

    field: str | None = None
    format: str = "auto"


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class MultilineSpec(_Strict):
    """Joins the lines of one message (a trace): a line matching ``start`` begins a new one."""

    start: Regex
    timeout: Duration = 1.0
    max_lines: PositiveInt = 1000


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class LineSourceConfig(_Strict):
    """What every source that reads lines shares: how bytes become records."""

    codec: CodecName = "auto"
    inner_codec: InnerCodecName = "auto"
    """What reads a container's message (codec ``cri`` or ``docker``, or one ``auto`` found)."""
    pattern: Regex | None = None
    timestamp: TimestampSpec = field(default_factory=TimestampSpec)
    multiline: MultilineSpec | None = None
    max_line_bytes: Annotated[Size, Positive] = 1 << 20
    fields: dict[str, FieldValue] = field(default_factory=dict)
    """Added to each record (``${VAR}`` expanded: the Downward API's values in a pod)."""


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class FileSourceConfig(LineSourceConfig):
    """``type = "file"``: files matching ``paths`` (globs), followed like ``tail -F``."""

    type: Literal["file"]
    paths: Annotated[list[str], NonEmpty]
    exclude: list[str] = field(default_factory=list)
    start_at: Literal["end", "beginning"] = "end"
    last_lines: NonNegativeInt | None = None
    """With ``start_at = "end"``: begin this many lines before each file's end (``tail -n``),
    the files' last lines merged by time, also with ``follow = false`` (which otherwise reads
    whole files). Ignored when a checkpoint exists."""
    follow: bool = True
    rotate_wait: Duration = 5.0  # keep reading a rotated-away (or deleted) file this long
    close_idle: Duration = (
        60.0  # close a watched file quiet this long (reopened on change); 0: never
    )


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class StdinSourceConfig(LineSourceConfig):
    """``type = "stdin"``: the program's standard input."""

    type: Literal["stdin"]


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class TlsSpec(_Strict):
    """A certificate and its key, to listen with TLS."""

    cert: Path
    key: Path


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class StreamListenerConfig(LineSourceConfig):
    """What stream listeners (TCP, Unix stream) share."""

    framing: Literal["newline", "octet-counted"] = "newline"
    max_connections: PositiveInt = 1000
    idle_timeout: Duration = 0.0  # close a connection silent this long; 0: never


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class TcpSourceConfig(StreamListenerConfig):
    """``type = "tcp"``: lines from the connections made to ``listen``."""

    type: Literal["tcp"]
    listen: HostPort
    tls: TlsSpec | None = None


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class UdpSourceConfig(LineSourceConfig):
    """``type = "udp"``: the datagrams sent to ``listen``."""

    type: Literal["udp"]
    listen: HostPort
    max_datagram_bytes: Annotated[Size, Positive] = 65535


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class UnixSourceConfig(StreamListenerConfig):
    """``type = "unix"``: lines from a Unix socket at ``path`` (stream or datagram)."""

    type: Literal["unix"]
    path: Path
    socket: Literal["stream", "datagram"] = "stream"
    mode: FileMode = 0o660
    max_datagram_bytes: Annotated[Size, Positive] = 65535


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class NatsTlsSpec(_Strict):
    """TLS to nats-server: ``ca`` to verify it, ``cert`` and ``key`` to be verified by it."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class NatsPart(_Strict):
    """What the nats sink and source share: the servers, the credentials, the stream."""

    url: NatsUrls = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    subject: NatsName = "logs"  # a prefix: records go to SUBJECT.NODE.SOURCE
    stream: NatsName = "LOGS"  # created if missing (subjects SUBJECT.>), else used as it is
    creds: Path | None = None  # a .creds file (JWT and NKey seed)
    token: Secret = field(default_factory=Secret)
    user: str | None = None
    password: Secret = field(default_factory=Secret)
    tls: NatsTlsSpec | None = None
    # Only when the stream is created here: how long and how much it keeps, and how long a
    # re-sent message (same Nats-Msg-Id) is recognised. 0: no limit.
    max_age: Duration = 7 * 86400.0
    max_bytes: Size = 0
    duplicate_window: Annotated[Duration, Positive] = 600.0
    replicas: Annotated[
        int, Constraint(lambda value: 1 <= value <= 5, "a number of replicas from 1 to 5")
    ] = 1  # copies of the stream in a JetStream cluster


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class NatsSourceConfig(NatsPart):
    """A durable JetStream pull consumer of ``SUBJECT.>`` (SPEC §3, §6)."""

    type: Literal["nats"]
    durable: NatsName | None = None  # default: the source's name
    batch: PositiveInt = 64  # messages asked for in one fetch (each up to max_message_bytes)
    ack_wait: Annotated[Duration, Positive] = 60.0  # unacknowledged this long: redelivered
    max_ack_pending: PositiveInt = 20000  # delivered, not acknowledged: > msgs/s x (window + 1s)
    quiet_after: Annotated[Duration, Positive] = 60.0  # a node silent this long is named
    max_held_records: PositiveInt = 131072  # taken and not yet written: rate x order_window


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class WebSocketSourceConfig(_Strict):
    """Another aggregator's stream, followed the way ``aggregator connect`` follows it."""

    type: Literal["websocket"]
    url: StreamUrl  # ws://HOST:PORT/ws?source=…&level=…&grep=…
    token: Secret = field(default_factory=Secret)
    node: str = ""  # the name its records get as ``node``; "": the URL's HOST:PORT
    max_size: Annotated[Size, Positive] = 16 << 20  # largest frame taken from the upstream


SourceConfig = Annotated[
    FileSourceConfig
    | StdinSourceConfig
    | TcpSourceConfig
    | UdpSourceConfig
    | UnixSourceConfig
    | NatsSourceConfig
    | WebSocketSourceConfig,
    Tagged(),
]


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class FilterSpec(_Strict):
    """What a sink lets through: every condition given must hold."""

    sources: list[str] = field(default_factory=list)
    level: Level | None = None
    grep: Regex | None = None
    where: WhereText | None = None  # aggregator.record.where; combined with the others by and


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class _Sink(_Strict):
    """What every sink shares: its filter."""

    filter: FilterSpec | None = None


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class StdoutSinkConfig(_Sink):
    """``type = "stdout"``: the stream on standard output."""

    type: Literal["stdout"]
    format: FormatName = "text"
    color: Literal["auto", "always", "never"] = "auto"
    """``text`` in colour: "auto" on a terminal unless ``NO_COLOR`` is set."""


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class RotateSpec(_Strict):
    """When a file sink rotates its file (``max_bytes``) and how many old files it keeps."""

    max_bytes: Annotated[Size, Positive]
    keep: PositiveInt = 5


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class FileSinkConfig(_Sink):
    """``type = "file"``: the stream appended to a file."""

    type: Literal["file"]
    path: Path
    format: FormatName = "json"
    rotate: RotateSpec | None = None
    fsync: Literal["always", "interval", "never"] = "interval"


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class WebSocketSinkConfig(_Sink):
    """The live stream for WebSocket subscribers and the browser page, on one port (SPEC §7)."""

    type: Literal["websocket"]
    listen: HostPort
    replay: NonNegativeInt = 1000  # last N records kept for new and resuming subscribers
    replay_bytes: Annotated[Size, Positive] = 64 << 20  # ... and no more bytes than this
    auth_token: Secret = field(default_factory=Secret)  # shown as ****** by `check`; never logged
    allowed_origins: list[str] = field(default_factory=list)  # besides the page's own origin
    allowed_hosts: list[str] = field(default_factory=list)  # Host names a loopback listen takes
    allow_anonymous: bool = False  # a non-loopback listen without a token is refused without it
    max_subscribers: PositiveInt = 1000
    slow_subscriber: Literal["drop", "disconnect"] = "drop"
    subscriber_buffer: Annotated[Size, Positive] = 4 << 20  # bytes queued for one subscriber
    compression: bool = False  # permessage-deflate: costs the server CPU per subscriber
    ping_interval: Duration = 20.0  # a subscriber that does not answer a ping in time is closed
    stats_field: str = ""  # /stats also counts this field's values (dots as in where); "": none


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class TcpSinkConfig(_Sink):
    """Newline-delimited records to a TCP peer (Vector, Fluent Bit, nc)."""

    type: Literal["tcp"]
    address: HostPort
    format: FormatName = "json"


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class NatsSinkConfig(_Sink, NatsPart):
    """The stream published to NATS JetStream, many records a message (SPEC §3, §6)."""

    type: Literal["nats"]
    node: str = ""  # this machine's name in subjects and records; "": the host name
    max_records: PositiveInt = 1000  # a message closes at this many records,
    max_message_bytes: Annotated[
        Size, Constraint(lambda value: 0 < value <= 1 << 20, "a size above 0, at most 1MiB")
    ] = 256 << 10  # this many bytes,
    linger: Duration = 0.005  # or when its first record has waited this long
    publish_timeout: Annotated[Duration, Positive] = 5.0  # no ack this long: sent again


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class AlertSinkConfig(_Sink):
    """A webhook when a rule fires (SPEC §3 "alert"); never holds the pipeline back."""

    type: Literal["alert"]
    url: HttpUrl  # where the JSON is POSTed
    format: Literal["json", "slack"] = "json"  # slack: {"text": …}
    where: WhereText | None = None  # the records that count; none: every record
    threshold: PositiveInt = 1  # this many matching records ...
    window: Annotated[Duration, Positive] = 60.0  # ... within this long fire the rule
    group_by: list[str] = field(default_factory=list)  # one alert per group of these values
    cooldown: Duration = 600.0  # no second notification for a group sooner
    timeout: Annotated[Duration, Positive] = 10.0  # one attempt to send waits at most this


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class HttpTlsSpec(_Strict):
    """TLS to an HTTP receiver: ``ca`` to verify it (else the system's), ``cert`` and ``key``
    to be verified by it."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class OtlpBatchSpec(_Strict):
    """A request closes at ``max_records``, at ``max_bytes`` (of JSON, before gzip), or when
    its first record has waited ``max_delay``."""

    max_records: PositiveInt = 1000
    max_bytes: Annotated[Size, Positive] = 1 << 20
    max_delay: Duration = 1.0


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class OtlpSinkConfig(_Sink):
    """OTLP/HTTP logs in the JSON encoding (SPEC §3 "otlp")."""

    type: Literal["otlp"]
    endpoint: HttpUrl  # the base URL: "/v1/logs" is appended, as OpenTelemetry's exporters do
    headers: dict[str, Secret] = field(default_factory=dict)  # values never shown
    compression: Literal["gzip", "none"] = "gzip"
    service_name: str = ""  # resource attribute service.name; "": each record's source
    node: str = ""  # resource attribute host.name; "": the host name
    batch: OtlpBatchSpec = field(default_factory=OtlpBatchSpec)
    timeout: Annotated[Duration, Positive] = 10.0  # no answer this long: sent again
    tls: HttpTlsSpec | None = None


SinkConfig = Annotated[
    StdoutSinkConfig
    | FileSinkConfig
    | WebSocketSinkConfig
    | TcpSinkConfig
    | NatsSinkConfig
    | AlertSinkConfig
    | OtlpSinkConfig,
    Tagged(),
]


@dataclass(init=False, repr=False, eq=False, kw_only=True)
class Config(_Strict):
    """A whole pipeline. Sources and sinks keep their order in the file: ties in the merge go
    to the source that comes first."""

    aggregator: AggregatorSection = field(default_factory=AggregatorSection)
    sources: Annotated[dict[str, SourceConfig], NonEmpty]
    sinks: Annotated[dict[str, SinkConfig], NonEmpty]
