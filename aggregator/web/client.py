"""Following a running aggregator's stream from its WebSocket: ``StreamFollower``, used by
``aggregator connect URL`` (``StreamClient``: the stream on stdout) and the websocket source.

The server sends JSON records; ``connect`` writes them as text, json or raw. A lost connection is
retried with backoff and resumed with ``since`` (and the run it belongs to), so nothing is
repeated; what the server could no longer replay, or dropped because this client fell behind,
is reported on stderr.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from aggregator.errors import AggregatorError
from aggregator.invalid import InvalidInput, shown
from aggregator.record.formats import FormatName, make_encoder
from aggregator.record.record import Record
from aggregator.record.wire import InvalidRecord, record_from_json
from aggregator.sinks.writers import ByteWriter, colour_wanted, open_writer
from aggregator.trouble import reason_of

log = logging.getLogger(__name__)

FIRST_RETRY = 0.5
LAST_RETRY = 10.0
"""Seconds between reconnection attempts: doubling from the first to the last, with jitter."""
OPEN_TIMEOUT = 10.0
MAX_FRAME = 16 << 20
"""Largest frame taken from a server by default; a larger one closes the connection (1009)."""


class ConnectError(AggregatorError):
    """The server refused what was asked (bad filter, token): retrying would not help.

    ``usage`` is true when what was asked is at fault (a bad URL or filter: exit code 2)."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(slots=True)
class StreamRequest:
    """What to ask the server for; ``query`` adds where to resume."""

    url: str
    sources: list[str] = field(default_factory=list)
    level: str | None = None
    grep: str | None = None
    replay: int = 0
    token: str = ""
    where: str | None = None

    @classmethod
    def from_url(cls, url: str, token: str = "") -> "StreamRequest":
        """The request a URL's query names (``?source=a*,b&level=info&where=E&replay=N``)."""
        query = parse_qs(urlsplit(url).query)
        sources = [item for value in query.get("source", []) for item in value.split(",") if item]
        level = query.get("level", [None])[-1]
        grep = query.get("grep", [None])[-1]
        where = query.get("where", [None])[-1]
        replay = query.get("replay", ["0"])[-1] or "0"
        count = int(replay) if replay.isdigit() else 0
        return cls(url, sources, level, grep, count, token, where)

    def query(self, run: str | None, since: int) -> str:
        params: dict[str, str] = {"format": "json"}
        if self.sources:
            params["source"] = ",".join(self.sources)
        if self.level:
            params["level"] = self.level
        if self.grep:
            params["grep"] = self.grep
        if self.where:
            params["where"] = self.where
        if run is None:
            params["replay"] = str(self.replay)
        else:
            params["since"] = str(since)
            params["run"] = run
        return urlencode(params)


def websocket_url(url: str) -> str:
    """``ws://HOST:PORT/ws`` from that or from ``http://HOST:PORT`` (the page's address)."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ConnectError(f"{url}: expected ws://HOST:PORT/ws or http://HOST:PORT", usage=True)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


Received = list[Record]
"""A frame's records, each read and checked by ``record_from_json``."""


class StreamFollower:
    """Follows one server's stream forever, handing each frame's records to ``deliver``.

    A lost connection is retried with backoff (``FIRST_RETRY`` doubling to ``LAST_RETRY``) and
    resumed with ``since`` and the run, so nothing is repeated; what the server could no longer
    replay (``gaps``) or dropped because this client fell behind (``dropped``) is reported and
    counted. The server may be broken or hostile: a frame larger than ``max_size`` closes the
    connection, and a line that is not a valid record (not JSON, wrong types) is dropped and
    counted (``invalid``), never a crash; what the server says is shown with its control
    characters escaped. ``run`` returns only by an error: ``ConnectError`` for a refusal that
    retrying would not change, or whatever ``deliver`` raises. Both ``aggregator connect`` and the
    websocket source are one of these.
    """

    def __init__(
        self,
        request: StreamRequest,
        deliver: Callable[[Received], Awaitable[None]],
        where: str = "",
        max_size: int = MAX_FRAME,
    ) -> None:
        self.request = request
        self.max_size = max_size
        self.url = websocket_url(request.url)
        self.where = where or self.url
        self.deliver = deliver
        self.run_id: str | None = None
        self.last_seq = 0
        self.connected = False
        self.gaps = 0
        self.dropped = 0
        self.restarts = 0  # times the server was found running a new run
        self.invalid = InvalidInput(log)

    async def run(self) -> None:
        delay = FIRST_RETRY
        while True:
            try:
                if await self._follow():
                    delay = FIRST_RETRY
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as error:
                self._check_refusal(error)
                log.warning("%s: %s; retrying in %.1fs", self.where, shown(reason_of(error)),
                            delay)  # fmt: skip
            finally:
                self.connected = False
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, LAST_RETRY)

    async def _follow(self) -> bool:
        """One connection, until it closes; True if it got as far as the hello."""
        url = f"{self.url}?{self.request.query(self.run_id, self.last_seq)}"
        headers = {"Authorization": f"Bearer {self.request.token}"} if self.request.token else {}
        async with connect(
            url,
            additional_headers=headers,
            compression=None,
            open_timeout=OPEN_TIMEOUT,
            max_size=self.max_size,
        ) as connection:
            greeted = False
            async for frame in connection:
                greeted = await self._take(frame) or greeted
            self._report_close(connection)
            return greeted

    async def _take(self, frame: str | bytes) -> bool:
        """Deliver a frame's records; True if it was the hello. A line that is not valid is
        dropped and counted: one bad line from a broken server is no reason to stop."""
        data = frame.encode() if isinstance(frame, str) else frame
        records: Received = []
        hello = False
        for line in data.split(b"\n"):
            try:
                message = orjson.loads(line)
                if not isinstance(message, dict):
                    raise InvalidRecord("expected a JSON object")
                if "seq" in message:
                    record = record_from_json(message)
                    self.last_seq = record.seq
                    records.append(record)
                elif "hello" in message:
                    self._greet(message["hello"])
                    hello = True
                else:
                    self._report(message)
            except (orjson.JSONDecodeError, InvalidRecord) as error:
                self.invalid.dropped(self.where, str(error))
        if records:
            await self.deliver(records)
        return hello

    def _greet(self, hello: object) -> None:
        if not isinstance(hello, dict) or not isinstance(hello.get("run"), str):
            raise InvalidRecord("hello: expected an object with a run")
        run = hello["run"]
        if self.run_id is not None and run != self.run_id:
            self.restarts += 1
            log.warning("%s: the server restarted (a new run): its seq starts again", self.where)
        if self.run_id is None:
            log.info("%s: connected", self.where)
        else:
            log.info("%s: reconnected; resuming after seq %d", self.where, self.last_seq)
        self.run_id = run
        self.connected = True

    def _report(self, message: dict[str, Any]) -> None:
        notice = message.get("notice")
        if notice in ("gap", "dropped"):
            count = message.get("count")
            if type(count) is not int or count < 0:
                raise InvalidRecord(f"{notice}: expected a count")
            if notice == "gap":
                self.gaps += count
                log.warning("%s: gap: %d records were no longer held by the server",
                            self.where, count)  # fmt: skip
            else:
                self.dropped += count
                log.warning("%s: %d records dropped: this client fell behind",
                            self.where, count)  # fmt: skip
        elif "error" in message:
            log.error("%s: %s", self.where, shown(message["error"]))

    def _report_close(self, connection: ClientConnection) -> None:
        log.warning("%s: the server closed the stream (%s %s)", self.where,
                    connection.close_code, shown(connection.close_reason or ""))  # fmt: skip

    def _check_refusal(self, error: BaseException) -> None:
        """Raise ConnectError for answers that would be the same on every retry."""
        if not isinstance(error, InvalidStatus):
            return
        response = error.response
        if response.status_code in (
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.UNAUTHORIZED,
            HTTPStatus.FORBIDDEN,
            HTTPStatus.NOT_FOUND,
        ):
            reason = shown(bytes(response.body or b"").decode("utf-8", "replace").strip())
            usage = response.status_code == HTTPStatus.BAD_REQUEST
            raise ConnectError(f"{self.url}: {response.status_code}: {reason}", usage)


class StreamClient:
    """``aggregator connect``: a follower writing to stdout; ``run`` returns only when stdout's
    reader has gone."""

    def __init__(
        self, request: StreamRequest, output_format: FormatName, color: str = "auto"
    ) -> None:
        """``color``: "always", "never", or "auto" (on a terminal, unless ``NO_COLOR``)."""
        self.format = output_format
        self.follower = StreamFollower(request, self._write)
        self.url = self.follower.url
        colour = color == "always" or (color == "auto" and colour_wanted(1))
        self._encode = make_encoder(output_format, (), colour, expand_lines=True)
        self._writer: ByteWriter | None = None

    async def run(self) -> None:
        writer = self._writer = await open_writer(1)
        # The reader may go while no frame comes (``| head`` on a quiet stream): end then.
        following = asyncio.current_task()
        assert following is not None
        watch = asyncio.create_task(self._stop_when_gone(writer, following), name="stdout:reader")
        try:
            await self.follower.run()
        except (BrokenPipeError, ConnectionResetError):
            log.debug("stdout was closed by its reader")
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            await writer.close()

    @staticmethod
    async def _stop_when_gone(writer: ByteWriter, following: "asyncio.Task[Any]") -> None:
        await writer.gone.wait()
        log.debug("stdout was closed by its reader")
        following.cancel("stdout's reader has gone")

    async def _write(self, records: Received) -> None:
        assert self._writer is not None
        await self._writer.write(self._render(records))

    def _render(self, records: Received) -> bytes:
        """Records as this program writes them: json too is encoded again, never passed on
        as the server sent it."""
        return self._encode(records)
