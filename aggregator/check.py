"""What can be known about a config without starting it: the resolved pipeline, the files it
names (can they be read, can they be written), and what each glob matches now.

``aggregator check`` prints all of it; ``aggregator run`` says what it follows at start.
"""

import dataclasses
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aggregator.config.schema import (
    Config,
    FileSinkConfig,
    FileSourceConfig,
    NatsPart,
    NatsSinkConfig,
    NatsSourceConfig,
    TcpSourceConfig,
    UnixSourceConfig,
)
from aggregator.config.types import Secret
from aggregator.errors import StartupError
from aggregator.flow.checkpoints import check_state_dir
from aggregator.lazyjson import dumps  # orjson with ``check``'s output, not at start
from aggregator.masking import MASK, mask_url
from aggregator.record.filters import NamePathMatcher
from aggregator.sources.file.discovery import discover, split_compressed

SHOWN_FILES = 5
"""Files named one by one when saying what a source follows; beyond, only their number."""


def plain(value: Any, key: str = "") -> Any:
    """A config value as JSON can hold it: tables as objects, paths as strings, secrets
    hidden: Secret values, header values, and passwords and tokens in URLs."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: plain(getattr(value, item.name), item.name)
            for item in dataclasses.fields(value)
        }
    if isinstance(value, Secret):
        return str(value)
    if key == "headers" and isinstance(value, dict):
        return dict.fromkeys(value, MASK)
    if key in ("url", "endpoint") and isinstance(value, str):
        return mask_url(value)
    if key in ("url", "endpoint") and isinstance(value, list):
        return [mask_url(item) if isinstance(item, str) else item for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def describe(config: Config) -> str:
    """The resolved pipeline, one part a line, and what each file source's globs match now."""
    lines = [f"aggregator: {_fields(plain(config.aggregator))}"]
    for kind, parts in (("source", config.sources), ("sink", config.sinks)):
        for name, part in parts.items():
            values = plain(part)
            values = {"type": values.pop("type"), **values}
            # What the remote parts' defaults resolve to here: the consumer, the node.
            if isinstance(part, NatsSourceConfig) and part.durable is None:
                values["durable"] = name
            if isinstance(part, NatsSinkConfig) and not part.node:
                values["node"] = socket.gethostname()
            lines.append(f"{kind} {name}: {_fields(values)}")
            if isinstance(part, FileSourceConfig):
                lines.extend(f"  {line}" for line in matches(part))
    return "\n".join(lines)


def _fields(values: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={dumps(value).decode()}" for key, value in values.items() if value is not None
    )


def matches(source: FileSourceConfig) -> Iterator[str]:
    """For each of a file source's paths: how many files it matches now, and which of them
    cannot be read."""
    exclude = NamePathMatcher(source.exclude)
    for pattern in source.paths:
        found, compressed = split_compressed(discover([pattern], exclude))
        if not found and not compressed:
            yield f"{pattern}: no file now (followed once one appears)"
            continue
        unreadable = [path for path in found if not os.access(path, os.R_OK)]
        count = f"{len(found)} file{'s' if len(found) != 1 else ''} now"
        if unreadable:
            names = ", ".join(str(path) for path in unreadable[:SHOWN_FILES])
            count += f", {len(unreadable)} that cannot be read: {names}"
        if compressed:  # rotated copies logrotate compressed: not text
            names = ", ".join(str(path) for path in list(compressed)[:SHOWN_FILES])
            more = " …" if len(compressed) > SHOWN_FILES else ""
            count += f"; {len(compressed)} compressed, skipped: {names}{more}"
        yield f"{pattern}: {count}"


def following(config: Config) -> Iterator[str]:
    """What each file source follows at start, one line a source with files (for ``run``'s
    stderr)."""
    for name, source in config.sources.items():
        if not isinstance(source, FileSourceConfig):
            continue
        found, _ = split_compressed(discover(source.paths, NamePathMatcher(source.exclude)))
        if not found:
            continue  # the source says which of its patterns match nothing, once, as it starts
        shown = ", ".join(str(path) for path in found[:SHOWN_FILES])
        more = f" and {len(found) - SHOWN_FILES} more" if len(found) > SHOWN_FILES else ""
        plural = "s" if len(found) != 1 else ""
        yield f"source {name}: following {len(found)} file{plural}: {shown}{more}"


def problems(config: Config) -> list[str]:
    """What would stop the pipeline from starting, found without starting it: files it must
    read that cannot be read, places it must write that cannot be written."""
    found: list[str] = []
    # File sources keep their offsets in state_dir, nats sources what they took.
    keeps_state = (FileSourceConfig, NatsSourceConfig)
    if any(isinstance(source, keeps_state) for source in config.sources.values()):
        try:  # as ``run`` does at start, so that what it would refuse is refused here
            check_state_dir(config.aggregator.state_dir, keep=False)
        except StartupError as error:
            found.append(str(error))
    for name, source in config.sources.items():
        if isinstance(source, TcpSourceConfig) and source.tls is not None:
            for key in ("cert", "key"):
                path = getattr(source.tls, key)
                why = _unreadable_file(path)
                if why:
                    found.append(f"sources.{name}.tls.{key}: cannot read {path}: {why}")
        if isinstance(source, UnixSourceConfig):
            why = _unwritable_directory(source.path.parent, create=False)
            if why:
                found.append(f"sources.{name}.path: cannot create {source.path}: {why}")
    parts: list[tuple[str, object]] = [
        *((f"sources.{name}", part) for name, part in config.sources.items()),
        *((f"sinks.{name}", part) for name, part in config.sinks.items()),
    ]
    for where, part in parts:
        if isinstance(part, NatsPart):
            files = [("creds", part.creds)]
            if part.tls is not None:
                files += [(f"tls.{key}", getattr(part.tls, key)) for key in ("ca", "cert", "key")]
            for key, path in files:
                why = _unreadable_file(path) if path is not None else None
                if why:
                    found.append(f"{where}.{key}: cannot read {path}: {why}")
    for name, sink in config.sinks.items():
        if isinstance(sink, FileSinkConfig):
            why = _unwritable_file(sink.path)
            if why:
                found.append(f"sinks.{name}.path: cannot write {sink.path}: {why}")
    return found


def _unreadable_file(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _unwritable_directory(path: Path, create: bool = True) -> str | None:
    """Why a directory cannot be written (or, with ``create``, made where it is missing)."""
    if path.is_dir():
        return None if os.access(path, os.W_OK | os.X_OK) else "permission denied"
    if path.exists():
        return "not a directory"
    if not create:
        return "no such directory"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"{parent}: permission denied"


def _unwritable_file(path: Path) -> str | None:
    if path.exists():
        if path.is_dir():
            return "a directory"
        return None if os.access(path, os.W_OK) else "permission denied"
    return _unwritable_directory(path.parent)
