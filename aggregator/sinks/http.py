"""What the sinks that POST (otlp, alert) share: one HTTP client per sink, and how an answer is
read.

The client is httpx's ``AsyncClient``, made once and kept for the sink's whole life, so that
connections are reused (keep-alive) rather than opened per batch. This module sends and reads
answers; what to do with them (retry and hold the pipeline, or drop and count) is the sink's.

A sink whose one request in flight holds the pipeline (otlp) posts from an event loop of its
own, in a thread (``thread=True``): a POST takes several turns of the loop that runs it, and
while sources read through files, a turn of the main loop takes long (each lane's read is
decoded in it): the POST took a median 23-75 ms there, against ~2 ms on an idle loop
(bench/README.md, "kubernetes.py").
"""

import asyncio
import email.utils
import gzip
import logging
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from aggregator.backoff import Backoff as Backoff  # the POSTing sinks retry with it

logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line on stderr per request

RETRYABLE = frozenset({429, 502, 503, 504})
"""Statuses that say "later": the receiver is busy or a proxy cannot reach it."""
COMPRESS_ON_LOOP = 64 * 1024
"""Bodies larger than this are compressed in a thread, off the event loop."""
MAX_ANSWER_BYTES = 4096
"""Most of an answer's body kept: enough for a receiver's reason, bounded whatever it sends."""


class PostFailed(Exception):
    """The request got no answer: the receiver cannot be reached, or it timed out."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver said: its status, how long it asked to wait (``Retry-After``), and
    the start of its body."""

    status: int
    retry_after: float | None
    body: bytes
    sent: int = 0
    """Bytes of the request's body as sent (compressed if it was)."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE

    def reason(self) -> str:
        """The body as text, for a message: one line, at most ``MAX_ANSWER_BYTES``."""
        text = self.body.decode("utf-8", "replace").strip()
        return " ".join(text.split()) or f"HTTP {self.status}"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date;
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def tls_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """Verify the receiver with ``ca`` (else the system's), and show ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


class HttpPoster:
    """POSTs bodies to one URL over one kept-alive client."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        thread: bool = False,
    ) -> None:
        """``headers`` go with every request (tokens: never logged here); ``timeout`` bounds
        connecting and each read and write; ``thread``: post from a loop of its own (see the
        module)."""
        self.url = url
        self._side: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if thread:
            self._side = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._side.run_forever, name=f"http-poster:{url}", daemon=True
            )
            self._thread.start()
        # Made here, but it connects (and binds to a loop) only on the loop that posts.
        self._client = httpx.AsyncClient(
            headers=dict(headers or {}),
            verify=tls if tls is not None else True,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
            follow_redirects=False,
        )

    async def post(
        self, body: bytes, *, content_type: str = "application/json", compress: bool = False
    ) -> Answer:
        """One attempt; ``PostFailed`` if no answer came. ``compress``: gzip the body."""
        if self._side is None:
            return await self._post(body, content_type, compress)
        sent = asyncio.run_coroutine_threadsafe(
            self._post(body, content_type, compress), self._side
        )
        return await asyncio.wrap_future(sent)  # cancelled: so is the POST, on its loop

    async def _post(self, body: bytes, content_type: str, compress: bool) -> Answer:
        headers = {"Content-Type": content_type}
        if compress:
            if len(body) > COMPRESS_ON_LOOP and self._side is None:  # zlib lets go of the GIL
                body = await asyncio.to_thread(gzip.compress, body, 5)
            else:
                body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        try:
            async with self._client.stream("POST", self.url, content=body, headers=headers) as r:
                kept = bytearray()
                async for part in r.aiter_bytes():
                    kept += part[: MAX_ANSWER_BYTES - len(kept)]
                    if len(kept) >= MAX_ANSWER_BYTES:
                        break
                asked = retry_after(r.headers.get("retry-after"))
                return Answer(r.status_code, asked, bytes(kept), len(body))
        except httpx.LocalProtocolError as error:  # its message may quote a header's value
            raise PostFailed(f"the request could not be sent ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise PostFailed(str(error) or type(error).__name__) from error

    async def close(self) -> None:
        """Close the kept connections (and stop the poster's loop). Idempotent."""
        side, thread = self._side, self._thread
        if side is None or thread is None:
            await self._client.aclose()
            return
        if side.is_closed():
            return
        if thread.is_alive():
            closed = asyncio.run_coroutine_threadsafe(self._client.aclose(), side)
            await asyncio.wrap_future(closed)
            side.call_soon_threadsafe(side.stop)
            await asyncio.to_thread(thread.join)
        side.close()
