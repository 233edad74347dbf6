"""The otlp sink: the merged stream as OTLP/HTTP logs (JSON encoding) to a collector.

Records are mapped by ``aggregator.record.otlp`` into requests that close at
``batch.max_records``, ``batch.max_bytes`` or when their first record has waited
``batch.max_delay``. One request is in flight at a time (the receiver sees them in order) and
``QUEUED_REQUESTS`` may wait behind it; past that the sink stops taking batches and the
pipeline waits, as for a tcp sink whose peer is away (SPEC §6).

What an answer means (OTLP/HTTP): a 2xx delivered the request (``partialSuccess`` may still
count records the receiver rejected); 429, 502, 503 and 504, or no answer at all, mean "later":
the same request is sent again after a backoff, or after the ``Retry-After`` the receiver asked
for. Any other status is final: the request's records are counted as rejected and the reason
the receiver gave is named on stderr; they are not sent again (a request the receiver refuses
once it refuses every time, and retrying it would hold the pipeline for ever).
``delivered_seq`` passes a record only once its request is settled so, after a crash, a file is
read again from before the first record no receiver has taken.
"""

import asyncio
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field

from aggregator.config import OtlpSinkConfig
from aggregator.flow.channel import Channel, EndOfStream
from aggregator.record.filters import RecordFilter
from aggregator.record.otlp import (
    REQUEST_OVERHEAD,
    LogEncoder,
    Resource,
    export_request,
    rejected_of,
    resource_bytes,
)
from aggregator.record.record import Batch
from aggregator.sinks import Sink, SinkContext
from aggregator.sinks.encoded import build_filter
from aggregator.sinks.http import Answer, Backoff, HttpPoster, PostFailed, tls_context
from aggregator.telemetry.metrics import Counters

log = logging.getLogger(__name__)

QUEUED_REQUESTS = 2
"""Requests cut and waiting behind the one in flight; past that the pipeline waits."""
LOGS_PATH = "/v1/logs"
REPORT_EVERY = 60.0
"""Seconds between two reports of the same kind of trouble (a receiver away, rejections)."""


@dataclass
class _Request:
    """A request being filled or waiting to be sent: its logRecords grouped by resource."""

    groups: dict[Resource, list[bytes]] = field(default_factory=dict)
    records: int = 0
    bytes: int = REQUEST_OVERHEAD
    first_seq: int = 0
    last_seq: int = 0
    since: float = 0.0  # when its first record came (monotonic)


class OtlpSink(Sink):
    """Sends the stream to ``endpoint``/v1/logs; see the module's docstring."""

    def __init__(self, name: str, config: OtlpSinkConfig, context: SinkContext) -> None:
        self.name = name
        self.config = config
        self.url = config.endpoint.rstrip("/") + LOGS_PATH
        self.records_out = 0
        self.gone = False
        self.needs = "everything"  # levels and fields become severity and attributes
        self._filter: RecordFilter | None = build_filter(config.filter)
        self._encoder = LogEncoder(config.node or socket.gethostname(), config.service_name)
        self._filling = _Request()
        self._queue: deque[_Request] = deque()  # cut; [0] is in flight
        self._room = asyncio.Event()
        self._work = asyncio.Event()
        self._last_seq = 0  # the last seq taken
        self._poster: HttpPoster | None = None
        self._failure: BaseException | None = None
        self._reported: dict[str, float] = {}
        self.connected = 1  # the last attempt got an answer
        self.requests = 0  # requests delivered (2xx)
        self.request_bytes = 0  # their bodies' bytes, as sent (compressed)
        self.records_sent = 0  # records in delivered requests, rejected ones not counted
        self.records_rejected = 0  # refused requests' records and partialSuccess's count
        self.retries = 0

    @property
    def delivered_seq(self) -> int:  # type: ignore[override]
        """The seq up to which every record is settled (delivered, rejected or filtered out)."""
        if self._queue:
            return self._queue[0].first_seq - 1
        if self._filling.records:
            return self._filling.first_seq - 1
        return self._last_seq

    async def open(self) -> None:
        """The client is made here (nothing is connected before there is a request)."""
        config = self.config
        tls = None
        if config.tls is not None:
            tls = tls_context(config.tls.ca, config.tls.cert, config.tls.key)
        # A value from an unset ${VAR} may leave "Bearer ": HTTP allows no space at the end.
        headers = {key: value.get_secret_value().strip() for key, value in config.headers.items()}
        self._poster = HttpPoster(self.url, headers=headers, tls=tls, timeout=config.timeout)

    async def close(self) -> None:
        if self._poster is not None:
            await self._poster.close()

    def reopen(self) -> None:
        """Nothing to reopen."""

    def counters(self) -> Counters:
        pending = self._filling.records + sum(request.records for request in self._queue)
        return {
            "connected": self.connected,
            "otlp_requests": self.requests,
            "otlp_request_bytes": self.request_bytes,
            "otlp_records_sent": self.records_sent,
            "otlp_records_rejected": self.records_rejected,
            "otlp_retries": self.retries,
            "otlp_pending": pending,
        }

    async def run(self, inp: Channel[Batch]) -> None:
        if self._poster is None:
            await self.open()
        sender = asyncio.create_task(self._send_in_order(), name=f"otlp:send:{self.name}")
        try:
            await self._take(inp)
            self._cut()
            while self._queue:
                await self._wait_for_room()
        finally:
            sender.cancel("the sink is stopping")
            await asyncio.gather(sender, return_exceptions=True)
            await self.close()

    async def _take(self, inp: Channel[Batch]) -> None:
        """Batches into the request being filled, cut as it fills or waits ``max_delay``."""
        delay = self.config.batch.max_delay
        while True:
            filling = self._filling
            try:
                if not filling.records:
                    batch = await inp.get()
                else:
                    async with asyncio.timeout(max(0.0, filling.since + delay - time.monotonic())):
                        batch = await inp.get()
            except TimeoutError:
                await self._cut_when_room()
                continue
            except EndOfStream:
                return
            await self._add(batch)

    async def _add(self, batch: Batch) -> None:
        records = self._filter.apply(batch) if self._filter is not None else batch
        limits = self.config.batch
        observed = time.time_ns()
        encoder = self._encoder
        for record in records:
            encoded = encoder.encode(record, observed)
            resource = encoder.resource(record)
            filling = self._filling
            size = len(encoded) + 1
            group = filling.groups.get(resource)
            if group is None:
                size += resource_bytes(resource)
            if filling.records and filling.bytes + size > limits.max_bytes:
                await self._cut_when_room()
                filling = self._filling
                group = None
                size = len(encoded) + 1 + resource_bytes(resource)
            if group is None:
                group = filling.groups[resource] = []
            group.append(encoded)
            if not filling.records:
                filling.first_seq = record.seq
                filling.since = time.monotonic()
            filling.records += 1
            filling.bytes += size
            filling.last_seq = record.seq
            if filling.records >= limits.max_records:
                await self._cut_when_room()
        self.records_out += len(records)
        self._last_seq = batch[-1].seq

    async def _cut_when_room(self) -> None:
        """Cut the request being filled once the queue has room (the backpressure)."""
        while len(self._queue) > QUEUED_REQUESTS:
            await self._wait_for_room()
        self._cut()

    def _cut(self) -> None:
        if self._filling.records:
            self._queue.append(self._filling)
            self._filling = _Request()
            self._work.set()

    async def _wait_for_room(self) -> None:
        """Until the sender has settled a request (or failed: raised here)."""
        self._room.clear()
        await self._room.wait()
        if self._failure is not None:
            raise self._failure

    async def _send_in_order(self) -> None:
        """Send each request until it is settled; what cannot be retried (a bug) wakes the
        sink, which raises it: the sender never dies alone."""
        try:
            while True:
                while not self._queue:
                    self._work.clear()
                    await self._work.wait()
                await self._settle(self._queue[0])
                self._queue.popleft()
                self._room.set()
        except Exception as error:
            self._failure = error
            self._room.set()
            raise

    async def _settle(self, request: _Request) -> None:
        """Send ``request`` until the receiver takes it or refuses it for good."""
        assert self._poster is not None
        body = export_request(list(request.groups.items()))
        compress = self.config.compression == "gzip"
        backoff = Backoff(0.1, 5.0)
        tries = 0
        while True:
            tries += 1
            try:
                answer = await self._poster.post(body, compress=compress)
            except PostFailed as error:
                self.connected = 0
                self._retry_later("cannot reach the receiver", str(error))
                await asyncio.sleep(backoff.next())
                continue
            self.connected = 1
            if answer.retryable:
                self._retry_later(f"the receiver answered {answer.status}", answer.reason())
                await asyncio.sleep(backoff.next(answer.retry_after))
                continue
            if tries > 1:
                log.info("sinks.%s: %s took the request after %d tries", self.name, self.url,
                         tries)  # fmt: skip
            self._settled(request, answer)
            return

    def _retry_later(self, what: str, reason: str) -> None:
        self.retries += 1
        self._report("retry", "sinks.%s: %s %s (%s); sending again until it is taken",
                     self.name, what, self.url, reason)  # fmt: skip

    def _settled(self, request: _Request, answer: Answer) -> None:
        if not answer.ok:
            self.records_rejected += request.records
            # Named each time: a refusal loses records (rarely more than once a minute).
            log.error("sinks.%s: %s refused %d records with %d: %s", self.name, self.url,
                      request.records, answer.status, answer.reason())  # fmt: skip
            return
        self.requests += 1
        self.request_bytes += answer.sent
        rejected, message = rejected_of(answer.body)
        rejected = min(rejected, request.records)
        self.records_sent += request.records - rejected
        if rejected:
            self.records_rejected += rejected
            self._report(
                "partial", "sinks.%s: %s rejected %d of %d records: %s", self.name, self.url,
                rejected, request.records, message or "no reason given",
            )  # fmt: skip

    def _report(self, kind: str, message: str, *args: object) -> None:
        """Log ``message`` at most once every ``REPORT_EVERY`` seconds for each ``kind``."""
        now = time.monotonic()
        if now - self._reported.get(kind, -REPORT_EVERY) >= REPORT_EVERY:
            self._reported[kind] = now
            log.warning(message, *args)
