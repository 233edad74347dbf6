"""What the nats sink and the nats source share: the connection, the stream, the messages.

A message holds many records of one (node, source): a first line of JSON *meta*, then the
records as one JSON array of rows (``encode_message`` says what a row holds). The meta says who
sent them and where
each record is in its file (``Record.lane``, ``lane_seq``), so that a consumer recognises records
a sidecar sends again after a crash whatever the messages they come in, and carries the
sender's *watermark*: the highest event time it has sent, which no later record of that sender
undercuts except a late one (its merge sent everything in order).

Pure apart from ``connect`` and ``ensure_stream``: encoding and decoding are tested directly.
"""

import asyncio
import contextlib
import hashlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from aggregator.config import NatsPart
from aggregator.flow.record import Record
from aggregator.sinks.formats import json_tail

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONNECT_TIMEOUT = 30.0
"""Seconds one ``nats.connect`` may take before it is tried again: nats-py can hang on a TLS
verification failure (nats.py#718), and a wait for a server that is down is retried anyway."""
SETUP_RETRY = 5.0
"""Seconds between attempts to set up the stream on a server that refused it."""
RECONNECT_WAIT = 1.0
"""Seconds nats-py waits between attempts to reach a server (its wait is fixed)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(name: str) -> str:
    """``name`` as one subject token: dots, wildcards and spaces become ``_`` (the real
    names travel in the records, never parsed back from the subject)."""
    return _UNSAFE.sub("_", name) or "_"


def subject_for(prefix: str, node: str, source: str) -> str:
    return f"{prefix}.{subject_token(node)}.{subject_token(source)}"


class BadMessage(ValueError):
    """A message that is not one the nats sink wrote (a poison message)."""


@dataclass(slots=True)
class Message:
    """Records of one (node, source) on their way to the stream."""

    subject: str
    payload: bytes
    msg_id: str
    count: int
    first_seq: int
    last_seq: int


def message_id(node: str, source: str, records: Sequence[Record], fallback: str) -> str:
    """A ``Nats-Msg-Id`` the same for the same records: from their places in their files when
    they all have one (a restart that cuts the same messages is deduplicated by the server
    too), else ``fallback`` (the sender's run and the message's number)."""
    first, last = records[0], records[-1]
    if first.lane is None or last.lane is None:
        return fallback
    text = f"{node}\0{source}\0{first.lane}\0{first.lane_seq}\0{last.lane}\0{last.lane_seq}"
    return hashlib.blake2b(f"{text}\0{len(records)}".encode(), digest_size=16).hexdigest()


def encode_message(node: str, source: str, records: Sequence[Record], watermark: int) -> bytes:
    """The payload: a meta line (who sent it, its watermark, the origins and file lanes it
    names), then one JSON array of rows, one per record: ``[ts, origin, line, tail, lane,
    lane_seq, late, node]``. ``ts`` is in microseconds, ``origin`` and ``lane`` index the
    meta's lists (-1: none), ``tail`` is the record's JSON after ``"line"`` (level, fields,
    truncated, parse_error: ``Record.json_tail``), ``node`` is null but for a record that came
    from further away. Rows are what the consumer rebuilds records from without parsing a time
    or a JSON object per record (a third of the cost of NDJSON)."""
    origins: dict[str, int] = {}
    lanes: dict[str, int] = {}
    rows = []
    for r in records:
        tail = r.json_tail
        if tail is None:
            tail = json_tail(r.level, r.fields, r.truncated, r.parse_error)
        origin = origins.get(r.origin)
        if origin is None:
            origin = origins[r.origin] = len(origins)
        lane = -1
        if r.lane is not None:
            lane = lanes.get(r.lane, -1)
            if lane < 0:
                lane = lanes[r.lane] = len(lanes)
        rows.append((r.ts, origin, r.line, tail, lane, r.lane_seq, r.late, r.node))
    meta: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "node": node,
        "source": source,
        "wm": watermark,
        "at": time.time_ns() // 1000,  # the sender's clock: the consumer estimates its skew
        "origins": list(origins),
        "lanes": list(lanes),
    }
    return orjson.dumps(meta) + b"\n" + orjson.dumps(rows)


@dataclass(slots=True)
class Decoded:
    node: str
    source: str
    watermark: int
    records: list[Record] = field(default_factory=list)
    sent_at: int | None = None
    """The sender's clock when it cut the message (µs since the epoch), if it said."""


def decode_message(payload: bytes) -> Decoded:
    """The records of a payload, each with its ``node``, ``lane`` and ``lane_seq``;
    ``BadMessage`` if it is not one ``encode_message`` made."""
    try:
        head, _, body = payload.partition(b"\n")
        meta = orjson.loads(head)
        if not isinstance(meta, dict) or meta.get("v") != FORMAT_VERSION:
            raise BadMessage(f"not a message of format {FORMAT_VERSION}")
        node, source, watermark = str(meta["node"]), str(meta["source"]), int(meta["wm"])
        origins = [str(origin) for origin in meta["origins"]]
        lanes = [str(lane) for lane in meta["lanes"]]
        rows = orjson.loads(body)
        if not isinstance(rows, list):
            raise BadMessage("the records are not a list")
        records = []
        for ts, origin, line, tail, lane, lane_seq, late, from_node in rows:
            record = Record(ts, source, origins[origin], line, json_tail=tail or None)
            if tail:
                _read_tail(record, tail)
            record.node = node if from_node is None else from_node
            if lane >= 0:
                record.lane = lanes[lane]
                record.lane_seq = lane_seq
            record.late = late
            records.append(record)
        if not all(isinstance(r.ts, int) and isinstance(r.line, str) for r in records):
            raise BadMessage("a record without a time or a line")
    except BadMessage:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as error:
        raise BadMessage(f"cannot be read: {error}") from error
    sent_at = meta.get("at")
    return Decoded(node, source, watermark, records, sent_at if isinstance(sent_at, int) else None)


def _read_tail(record: Record, tail: str) -> None:
    """Level, fields and flags from a record's JSON tail, for the filters and the page."""
    members = orjson.loads("{" + tail[1:] + "}")
    record.level = members.get("level")
    record.fields = members.get("fields")
    record.truncated = bool(members.get("truncated"))
    record.parse_error = members.get("parse_error")


def tls_context(config: NatsPart) -> ssl.SSLContext | None:
    spec = config.tls
    if spec is None:
        return None
    context = ssl.create_default_context(cafile=str(spec.ca) if spec.ca else None)
    if spec.cert is not None:
        context.load_cert_chain(str(spec.cert), str(spec.key) if spec.key else None)
    return context


def connect_options(config: NatsPart, name: str) -> dict[str, Any]:
    """What ``nats.connect`` is given: servers, credentials, TLS, and reconnecting forever."""
    options: dict[str, Any] = {
        "servers": list(config.url),
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT,
        "connect_timeout": 2,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
    }
    if config.creds is not None:
        options["user_credentials"] = str(config.creds)
    if config.token.get_secret_value():
        options["token"] = config.token.get_secret_value()
    if config.user is not None:
        options["user"] = config.user
        options["password"] = config.password.get_secret_value()
    context = tls_context(config)
    if context is not None:
        options["tls"] = context
    return options


class Link:
    """One connection to nats-server, made in the background and kept forever: ``connected``
    is set while it is up. What went wrong is logged once per outage, not per attempt."""

    def __init__(self, config: NatsPart, where: str, name: str, **extra: Any) -> None:
        self.config = config
        self.where = where  # "sinks.bus", for messages
        self.options = {**connect_options(config, name), **extra}
        self.client: Any = None
        self.connected = asyncio.Event()
        self.outages = 0
        self._reported = False

    @property
    def up(self) -> bool:
        return self.connected.is_set()

    async def open(self, on_connect: Callable[[Any], Awaitable[None]]) -> Any:
        """Connect (waiting as long as it takes), then ``on_connect(client)``."""
        import nats  # imported only when a config uses nats

        while True:
            try:
                client = await asyncio.wait_for(
                    nats.connect(
                        **self.options,
                        error_cb=self._on_error,
                        disconnected_cb=self._on_disconnected,
                        reconnected_cb=self._on_reconnected,
                        closed_cb=self._on_closed,
                    ),
                    CONNECT_TIMEOUT,
                )
            except (TimeoutError, OSError, nats.errors.Error) as error:
                self._report(error)
                await asyncio.sleep(RECONNECT_WAIT)
                continue
            self.client = client
            try:
                await on_connect(client)
            except (TimeoutError, OSError, nats.errors.Error) as error:
                # Connected, but the stream or the consumer cannot be set up (JetStream off,
                # no permission, a stream of that name with other subjects): said, and tried
                # again, since an operator may fix it while this waits.
                log.error("%s: connected, but cannot set up the stream %s: %s; retrying in "
                          "%gs", self.where, self.config.stream, describe(error),
                          SETUP_RETRY)  # fmt: skip
                await self.close()
                await asyncio.sleep(SETUP_RETRY)
                continue
            except BaseException:
                await self.close()
                raise
            self._set_up()
            return client

    def _set_up(self) -> None:
        if self._reported or self.outages:
            log.info("%s: connected to nats-server %s", self.where,
                     self.client.connected_url.netloc if self.client else "")  # fmt: skip
        self._reported = False
        self.connected.set()

    def _report(self, error: BaseException) -> None:
        if not self._reported:
            self._reported = True
            log.warning("%s: cannot connect to nats-server (%s); retrying", self.where,
                        describe(error))  # fmt: skip

    async def _on_error(self, error: Exception) -> None:
        self._report(error)

    async def _on_disconnected(self) -> None:
        if self.connected.is_set():
            self.outages += 1
            log.warning("%s: lost the connection to nats-server; reconnecting", self.where)
        self.connected.clear()

    async def _on_reconnected(self) -> None:
        self._set_up()

    async def _on_closed(self) -> None:
        self.connected.clear()

    async def close(self) -> None:
        client, self.client = self.client, None
        self.connected.clear()
        if client is not None and not client.is_closed:
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(client.close(), 5)


def describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


async def ensure_stream(client: Any, config: NatsPart) -> None:
    """Create the stream (file storage, subjects ``SUBJECT.>``) if it is missing; one that
    exists is used as it is."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import BadRequestError, NotFoundError

    js = client.jetstream()
    try:
        await js.stream_info(config.stream)
        return
    except NotFoundError:
        pass
    stream = StreamConfig(
        name=config.stream,
        subjects=[f"{config.subject}.>"],
        storage=StorageType.FILE,
        max_age=config.max_age or None,
        max_bytes=config.max_bytes or -1,
        duplicate_window=config.duplicate_window,
    )
    try:
        await js.add_stream(stream)
        log.info("created the JetStream stream %s for %s.>", config.stream, config.subject)
    except BadRequestError:
        await js.stream_info(config.stream)  # made meanwhile by another part: use it
