"""The link to NATS that the nats sink and the nats source share: connecting (credentials,
TLS, reconnection reported once), and the stream they publish to and consume from."""

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aggregator.config import NatsPart
from aggregator.trouble import reason_of

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0
"""Seconds one ``nats.connect`` may take before it is tried again: nats-py can hang on a TLS
verification failure (nats.py#718), and a wait for a server that is down is retried anyway."""
SETUP_RETRY = 5.0
"""Seconds between attempts to set up the stream on a server that refused it."""
CLOSE_TIMEOUT = 5.0
"""Seconds closing the connection may take (it flushes what is buffered)."""
RECONNECT_WAIT = 1.0
"""Seconds nats-py waits between attempts to reach a server (its wait is fixed)."""
ELECTION_RETRY = 0.2
"""Seconds between two attempts to set up the stream while the JetStream API times out."""


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
        self.away = asyncio.Event()
        """Set while not connected: what a wait for the server gives up on."""
        self.away.set()
        self.outages = 0
        self._reported = False
        self._ready = False  # the stream is set up on ``client`` (``on_connect`` succeeded)

    @property
    def up(self) -> bool:
        return self.connected.is_set()

    async def open(self, on_connect: Callable[[Any], Awaitable[None]]) -> Any:
        """Connect (waiting as long as it takes), then ``on_connect(client)``."""
        import nats  # imported only when a config uses nats

        while True:
            try:
                # In this task, not one of its own (as ``wait_for`` makes on 3.11): a stop
                # cancels the connect loop itself, which ends at once.
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    client = await nats.connect(
                        **self.options,
                        error_cb=self._on_error,
                        disconnected_cb=self._on_disconnected,
                        reconnected_cb=self._on_reconnected,
                        closed_cb=self._on_closed,
                    )
            except (TimeoutError, OSError, nats.errors.Error) as error:
                self._report(error)
                await asyncio.sleep(RECONNECT_WAIT)
                continue
            self.client = client
            if await self._set_up_stream(client, on_connect):
                self._ready = True
                if client.is_connected:  # else when it reconnects (``_on_reconnected``)
                    self._set_up()
                return client

    async def _set_up_stream(
        self, client: Any, on_connect: Callable[[Any], Awaitable[None]]
    ) -> bool:
        """``on_connect(client)`` until it succeeds (True), or until it fails in a way that
        closes the connection (False, after ``SETUP_RETRY``). The JetStream API not answering
        (a cluster electing a stream's leader, which takes seconds) is asked again on the same
        connection after ``ELECTION_RETRY``, said once: a sidecar that starts during a failover
        publishes as soon as the stream has a leader again, not a retry's wait after it."""
        import nats

        electing = False
        while True:
            try:
                await on_connect(client)
                return True
            except (TimeoutError, nats.errors.TimeoutError) as error:
                if client.is_closed:
                    break
                if not electing:
                    electing = True
                    log.warning("%s: connected, but the stream %s does not answer yet (%s): a "
                                "cluster electing its leader?; asking again", self.where,
                                self.config.stream, reason_of(error))  # fmt: skip
                await asyncio.sleep(ELECTION_RETRY)
                continue
            except (OSError, nats.errors.Error, StreamUnfit) as error:
                # Connected, but the stream or the consumer cannot be set up (JetStream off,
                # no permission, a stream of that name with other subjects): said, and tried
                # again, since an operator may fix it while this waits.
                log.error("%s: connected, but cannot set up the stream %s: %s; retrying in "
                          "%gs", self.where, self.config.stream, reason_of(error),
                          SETUP_RETRY)  # fmt: skip
                break
            except BaseException:
                await self.close()
                raise
        await self.close()
        await asyncio.sleep(SETUP_RETRY)
        return False

    def _set_up(self) -> None:
        if self._reported or self.outages:
            url = self.client.connected_url if self.client else None
            where = f"{url.hostname}:{url.port}" if url is not None else ""
            log.info("%s: connected to nats-server %s", self.where, where)  # credentials: never
        self._reported = False
        self.away.clear()
        self.connected.set()

    def _report(self, error: BaseException) -> None:
        if not self._reported:
            self._reported = True
            log.warning("%s: cannot connect to nats-server (%s); retrying", self.where,
                        reason_of(error))  # fmt: skip

    async def _on_error(self, error: Exception) -> None:
        self._report(error)

    async def _on_disconnected(self) -> None:
        if self.connected.is_set():
            self.outages += 1
            log.warning("%s: lost the connection to nats-server; reconnecting", self.where)
        self._lost()

    async def _on_reconnected(self) -> None:
        # Not while ``open`` sets the stream up on this connection: ``connected`` would tell
        # the sink's publishers to publish through a client that is not ready yet.
        if self._ready:
            self._set_up()

    async def _on_closed(self) -> None:
        self._lost()

    def _lost(self) -> None:
        self.connected.clear()
        self.away.set()

    async def close(self) -> None:
        client, self.client = self.client, None
        self._ready = False
        self._lost()
        if client is not None and not client.is_closed:
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await client.close()


class StreamUnfit(Exception):
    """The stream exists but does not take ``SUBJECT.>`` (made by someone else)."""


def covers(pattern: str, subject: str) -> bool:
    """Whether the subject pattern ``pattern`` (``*`` a token, ``>`` the rest) matches every
    subject that ``subject`` (which may end in ``>``) does."""
    theirs, ours = pattern.split("."), subject.split(".")
    for index, token in enumerate(theirs):
        if token == ">":
            return index < len(ours)
        if index >= len(ours) or ours[index] == ">" or token not in ("*", ours[index]):
            return False
    return len(theirs) == len(ours)


def check_subjects(config: NatsPart, subjects: list[str] | None) -> None:
    """``StreamUnfit``, naming both, unless the stream's subjects take ``SUBJECT.>``."""
    wanted = f"{config.subject}.>"
    if not any(covers(pattern, wanted) for pattern in subjects or []):
        raise StreamUnfit(
            f"the stream {config.stream} exists with the subjects {subjects or []}, which do not "
            f"take {wanted}: use another stream name, or add {wanted} to that stream"
        )


async def ensure_stream(client: Any, config: NatsPart, within: float | None = None) -> Any:
    """The stream's info; the stream is created first (file storage, subjects ``SUBJECT.>``,
    ``replicas`` copies) if it is missing; one that exists is used as it is, if it takes
    ``SUBJECT.>``. ``within``: seconds each JetStream API request may take (nats-py's 5 s by
    default)."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import BadRequestError, NotFoundError

    js = client.jetstream() if within is None else client.jetstream(timeout=within)
    try:
        info = await js.stream_info(config.stream)
        check_subjects(config, info.config.subjects)
        return info
    except NotFoundError:
        pass
    stream = StreamConfig(
        name=config.stream,
        subjects=[f"{config.subject}.>"],
        storage=StorageType.FILE,
        max_age=config.max_age or None,
        max_bytes=config.max_bytes or -1,
        duplicate_window=config.duplicate_window,
        num_replicas=config.replicas,
    )
    try:
        info = await js.add_stream(stream)
        log.info("created the JetStream stream %s for %s.> (%d replicas)", config.stream,
                 config.subject, config.replicas)  # fmt: skip
    except BadRequestError:
        info = await js.stream_info(config.stream)  # made meanwhile by another part: use it
        check_subjects(config, info.config.subjects)
    return info
