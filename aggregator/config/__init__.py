"""The config: TOML or command-line options → typed, validated tables.

``types`` holds the scalar types (durations, sizes, addresses), ``schema`` the tables,
``loading`` reads a file and reports every error with its key path (``plain`` validates
the usual file without pydantic; pydantic is loaded only for the rest), and ``adhoc``
builds ``aggregator tail``'s config from its options (``aggregator.check``, in the shell,
finds what can be known without starting). What the rest of the program uses is named here.
"""

from aggregator.config.loading import ConfigError, load_config, parse_config
from aggregator.config.schema import (
    AggregatorSection,
    Config,
    FileSinkConfig,
    FileSourceConfig,
    FilterSpec,
    LineSourceConfig,
    NatsPart,
    NatsSinkConfig,
    NatsSourceConfig,
    OtlpSinkConfig,
    SinkConfig,
    SourceConfig,
    StdinSourceConfig,
    StdoutSinkConfig,
    StreamListenerConfig,
    TcpSinkConfig,
    TcpSourceConfig,
    UdpSourceConfig,
    UnixSourceConfig,
    WebSocketSinkConfig,
    WebSocketSourceConfig,
)

__all__ = [
    "AggregatorSection",
    "Config",
    "ConfigError",
    "FileSinkConfig",
    "FileSourceConfig",
    "FilterSpec",
    "LineSourceConfig",
    "NatsPart",
    "NatsSinkConfig",
    "NatsSourceConfig",
    "OtlpSinkConfig",
    "SinkConfig",
    "SourceConfig",
    "StdinSourceConfig",
    "StdoutSinkConfig",
    "StreamListenerConfig",
    "TcpSinkConfig",
    "TcpSourceConfig",
    "UdpSourceConfig",
    "UnixSourceConfig",
    "WebSocketSinkConfig",
    "WebSocketSourceConfig",
    "load_config",
    "parse_config",
]
