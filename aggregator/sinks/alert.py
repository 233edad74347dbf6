"""The alert sink: a webhook when a rule fires (SPEC §3 "alert"). It never holds the pipeline
back: the rule (``aggregator.sinks.alert_rule``) runs on each batch as it passes, and what it
says is due goes into a small queue that a sender task POSTs from, retrying with backoff. What
cannot be sent (the queue full, or the receiver away through every attempt) is dropped and
counted, as ``aggregator_alerts_total{sink, result}``: sent, failed, dropped, suppressed.
"""

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from aggregator.config.schema import AlertSinkConfig
from aggregator.flow.channel import Channel, EndOfStream
from aggregator.parse.needs import Needs
from aggregator.record.conditions import Getter
from aggregator.record.record import Batch
from aggregator.record.where import where_of
from aggregator.sinks import Sink, SinkContext
from aggregator.sinks.alert_rule import AlertRule, Notification
from aggregator.sinks.encoded import build_filter, where_reads_parsed
from aggregator.sinks.http import Backoff, HttpPoster, PostFailed
from aggregator.telemetry.metrics import Counters

log = logging.getLogger(__name__)

QUEUE_SIZE = 100
"""Notifications waiting to be sent; past it, new ones are dropped (and counted)."""
ATTEMPTS = 4
"""Tries to send one notification (backoff between them) before it is dropped as failed."""
TICK_SECONDS = 1.0
"""How often resolved notices are looked for."""
MAX_WAIT = 30.0
"""Longest wait between two attempts, whatever a receiver's Retry-After asks."""
FLUSH_TIMEOUT = 2.0
"""Seconds the sender gets at the end of the stream for what is queued."""


def body_of(name: str, config: AlertSinkConfig, notice: Notification, at: float) -> bytes:
    """The JSON POSTed: generic, or ``{"text": …}`` for ``format = "slack"``."""
    when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    group = ", ".join(f"{key}={value}" for key, value in notice.group.items())
    if config.format == "slack":
        what = f"`{config.where}`" if config.where else "records"
        head = f"[{notice.status}] {name}: {notice.count} {what} within {config.window:g}s"
        samples = [*notice.first, *notice.last]
        lines = [head + (f" ({group})" if group else "")]
        lines.extend(f"> {sample['source']}: {sample['line']}" for sample in samples)
        return orjson.dumps({"text": "\n".join(lines)})
    document: dict[str, Any] = {
        "alert": name,
        "status": notice.status,
        "at": when,
        "rule": {
            "where": config.where,
            "threshold": config.threshold,
            "window_seconds": config.window,
            "group_by": config.group_by,
        },
        "group": notice.group,
        "count": notice.count,
        "first": notice.first,
        "last": notice.last,
    }
    return orjson.dumps(document)


class AlertSink(Sink):
    """Runs the rule on every batch and POSTs what it says, without ever waiting for it."""

    def __init__(self, name: str, config: AlertSinkConfig, context: SinkContext) -> None:
        self.name = name
        self.config = config
        self.records_out = 0
        self.delivered_seq = 0
        self.gone = False
        reads = where_reads_parsed(config.filter) or (
            config.where is not None and where_of(config.where).reads_parsed
        )
        reads = reads or any(Getter(name).reads_parsed() for name in config.group_by)
        self.needs: Needs = "everything" if reads else "stamps"
        self._filter = build_filter(config.filter)
        self.rule = AlertRule(
            where_of(config.where) if config.where else None,
            config.threshold,
            config.window,
            config.group_by,
            config.cooldown,
            time.monotonic,
        )
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(QUEUE_SIZE)
        self._poster: HttpPoster | None = None
        self.results = {"sent": 0, "failed": 0, "dropped": 0}

    async def open(self) -> None:
        self._poster = HttpPoster(self.config.url, timeout=self.config.timeout)

    async def close(self) -> None:
        if self._poster is not None:
            await self._poster.close()
            self._poster = None

    def reopen(self) -> None:
        """Nothing to reopen."""

    def counters(self) -> Counters:
        return {"alerts": {**self.results, "suppressed": self.rule.suppressed}}

    async def run(self, inp: Channel[Batch]) -> None:
        sender = asyncio.create_task(self._send_all(), name=f"sink:{self.name}:send")
        ticker = asyncio.create_task(self._tick(), name=f"sink:{self.name}:tick")
        try:
            while True:
                try:
                    batch = await inp.get()
                except EndOfStream:
                    break
                if self._filter is not None:
                    kept = self._filter.apply(batch)
                    self._enqueue(self.rule.observe(kept))
                else:
                    self._enqueue(self.rule.observe(batch))
                self.records_out = self.rule.matched
                self.delivered_seq = batch[-1].seq if batch else self.delivered_seq
        finally:
            ticker.cancel("the stream has ended")
            await asyncio.gather(ticker, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_TIMEOUT):
                    await self._queue.join()
            sender.cancel("the stream has ended")
            await asyncio.gather(sender, return_exceptions=True)
            self.results["dropped"] += self._queue.qsize()
            await self.close()

    def _enqueue(self, notices: list[Notification]) -> None:
        for notice in notices:
            try:
                self._queue.put_nowait(notice)
            except asyncio.QueueFull:
                self.results["dropped"] += 1

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self._enqueue(self.rule.tick())

    async def _send_all(self) -> None:
        while True:
            notice = await self._queue.get()
            try:
                await self._send(notice)
            finally:
                self._queue.task_done()

    async def _send(self, notice: Notification) -> None:
        """Up to ATTEMPTS tries, with backoff; then dropped, counted and said once."""
        if self._poster is None:
            self._poster = HttpPoster(self.config.url, timeout=self.config.timeout)
        body = body_of(self.name, self.config, notice, time.time())
        backoff = Backoff(0.5, 5.0)
        reason = ""
        asked: float | None = None  # a receiver's Retry-After
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(min(backoff.next(asked), MAX_WAIT))
            try:
                answer = await self._poster.post(body)
            except PostFailed as error:
                reason = str(error)
                continue
            if answer.ok:
                self.results["sent"] += 1
                return
            reason = f"{answer.status} {answer.reason()}"[:300]
            if not answer.retryable:
                break
            asked = answer.retry_after
        self.results["failed"] += 1
        log.warning("sinks.%s: an alert could not be sent and is dropped: %s", self.name, reason)
