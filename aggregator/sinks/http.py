"""What the sinks that POST (otlp, alert) share: one HTTP client per sink, and how an answer is
read.

The client is httpx's ``AsyncClient``, made once and kept for the sink's whole life, so that
connections are reused (keep-alive) rather than opened per batch. This module sends and reads
answers; what to do with them (retry and hold the pipeline, or drop and count) is the sink's.
"""

import asyncio
import email.utils
import gzip
import logging
import ssl
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
    ) -> None:
        """``headers`` go with every request (tokens: never logged here); ``timeout`` bounds
        connecting and each read and write."""
        self.url = url
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
        headers = {"Content-Type": content_type}
        if compress:
            if len(body) > COMPRESS_ON_LOOP:  # zlib lets go of the GIL: a thread pays
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
        """Close the kept connections. Idempotent."""
        await self._client.aclose()
