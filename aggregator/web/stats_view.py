"""``aggregator connect --stats``: a running aggregator's ``/stats`` as a table on a terminal,
refreshed. ``render`` is pure (tested on a snapshot); ``follow_stats`` asks and writes.
"""

import asyncio
import json
import sys
import urllib.error
import urllib.request
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from aggregator.web.client import ConnectError, websocket_url

REFRESH_SECONDS = 2.0
ROWS = 10
"""Most rows of each kind shown: the busiest first."""
CLEAR = "\x1b[H\x1b[2J"
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


def stats_url(url: str) -> str:
    """``http://HOST:PORT/stats`` from the URL ``connect`` takes (ws://…/ws or http://…)."""
    parts = urlsplit(websocket_url(url))
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/stats", "", ""))


def render(snapshot: dict[str, Any]) -> str:
    """The table: for each kind (level, source, the chosen field), the busiest values with their
    counts over the last 1 and 5 minutes."""
    windows = snapshot.get("windows", {})
    one, five = windows.get("1m", {}), windows.get("5m", {})
    lines = [f"{'':28} {'1m':>10} {'5m':>10}", f"{'all records':28} "
             f"{one.get('total', 0):>10,} {five.get('total', 0):>10,}"]  # fmt: skip
    kinds = [("level", "level"), ("source", "source")]
    if snapshot.get("field"):
        kinds.append(("field", str(snapshot["field"])))
    for key, title in kinds:
        recent, longer = one.get(key, {}), five.get(key, {})
        names = sorted(set(recent) | set(longer), key=lambda n: (-longer.get(n, 0), n))
        lines.append("")
        lines.append(title.translate(_CONTROL)[:28])
        for name in names[:ROWS]:
            shown = ("  " + str(name).translate(_CONTROL))[:28]
            lines.append(f"{shown:28} {recent.get(name, 0):>10,} {longer.get(name, 0):>10,}")
        if len(names) > ROWS:
            lines.append(f"  … {len(names) - ROWS} more")
    return "\n".join(lines) + "\n"


def fetch(url: str, token: str) -> dict[str, Any]:
    """One GET of /stats; ConnectError for a refusal (usage when the token is at fault)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token
                                     else {})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            data: dict[str, Any] = json.loads(answer.read(1 << 20))
            return data
    except urllib.error.HTTPError as error:
        reason = error.read(1000).decode("utf-8", "replace").strip()
        raise ConnectError(f"{url}: {error.code} {reason}", usage=error.code == 401) from None


async def follow_stats(url: str, token: str, out: TextIO = sys.stdout) -> None:
    """Show /stats every REFRESH_SECONDS until cancelled; a terminal is cleared between
    tables, a pipe gets one table after another. A server away is said and retried."""
    target = stats_url(url)
    terminal = out.isatty()
    while True:
        try:
            snapshot = await asyncio.to_thread(fetch, target, token)
        except (urllib.error.URLError, OSError, ValueError) as error:
            text = f"{target}: cannot read the counts ({getattr(error, 'reason', error)})\n"
        else:
            text = render(snapshot)
        out.write((CLEAR if terminal else "") + text + ("" if terminal else "\n"))
        out.flush()
        await asyncio.sleep(REFRESH_SECONDS)
