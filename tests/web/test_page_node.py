"""The page shows a remote record's node (issue #25, as text does: ``web-7d4b9/app``), and a
click on it filters by node through where. Records from a real nats-server reach a central
whose websocket sink the page watches; headless Chromium as in tests/web/test_page.py."""

import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser

from aggregator.jetstream.messages import encode_message
from aggregator.record.record import Record
from tests.conftest import Cli
from tests.helpers.nats_server import NatsServer, consumer_made, nats_server
from tests.helpers.web import json_lines, start_server
from tests.web.test_page import (  # noqa: F401 (browser is a fixture)
    browser,
    open_page,
    snap,
    wait_rows,
)

__all__ = ["nats_server"]  # the fixture, used by name

pytestmark = pytest.mark.slow

START = int(datetime.datetime(2026, 11, 25, 10, 0, 1, tzinfo=datetime.UTC).timestamp() * 1e6)


async def publish(js: Any, node: str, lines: list[str], level: str = "info") -> None:
    """One message of ``node``'s source ``app``, as a sidecar's nats sink sends it."""
    records = []
    for n, line in enumerate(lines, 1):
        record = Record(START + n * 1000, "app", "/var/log/app.log", line, level)
        record.lane, record.lane_seq = "app.log", n
        records.append(record)
    await js.publish(f"logs.{node}.app", encode_message(node, "app", records, records[-1].ts))


async def texts(page: Any, selector: str) -> list[str]:
    found: list[str] = await page.eval_on_selector_all(
        selector, "items => items.map(item => item.textContent)"
    )
    return found


async def test_a_remote_record_shows_its_node_and_a_click_on_it_filters_by_node(
    tmp_path: Path,
    cli_processes: list[Cli],
    browser: Browser,  # noqa: F811
    nats_server: NatsServer,
) -> None:
    """A remote row's source reads NODE/SOURCE (a local one its source alone); a click on the
    node puts ``node = "…"`` in the where box, the server filters, the address keeps it; a
    where already there is kept (and-ed), another node's clause gives way."""
    import nats

    bus = f'[sources.bus]\ntype = "nats"\nurl = "{nats_server.url}"\ndurable = "page"\n'
    server = await start_server(tmp_path, cli_processes, extra_sources=bus)
    page = await open_page(browser, server.url("/"))
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await consumer_made(js, "page")
        await server.send(json_lines(1, text="local"))
        await publish(js, "web-7d4b9", ["web 1", "web 2", "web 3"])
        await publish(js, "db-0", ["db 1", "db 2"], level="warn")
    finally:
        await client.close()
    await wait_rows(page, 6)
    sources = await texts(page, "#log .row[data-seq] > .src")
    assert sorted(sources) == sorted(["net", *["web-7d4b9/app"] * 3, *["db-0/app"] * 2])
    assert sorted(set(await texts(page, "#log .row > .src > .node"))) == ["db-0", "web-7d4b9"]
    title = await page.get_attribute("#log .row > .src > .node", "title")
    assert title is not None and title.startswith("show only node ")
    await snap(page, "nodes-shown")

    await page.click("#log .row > .src > .node >> text=db-0")
    await page.wait_for_selector('body[data-filter*="db-0"]')
    await page.wait_for_function(
        "[...document.querySelectorAll('#log .row[data-seq] > .src')]"
        ".every(s => s.textContent === 'db-0/app')"
    )
    await wait_rows(page, 2)
    assert await texts(page, "#log .row[data-seq] .line") == ["db 1", "db 2"]
    assert await page.input_value("#where") == 'node = "db-0"'
    assert parse_qs(urlsplit(page.url).query)["where"] == ['node = "db-0"']
    await snap(page, "filtered-by-node")

    # Another node's clause gives way; any other where is kept.
    await page.fill("#where", 'line~"[13]$"')
    await page.click("#apply")
    await page.wait_for_selector('body[data-filter*="[13]"]')
    await page.wait_for_function(  # web 1, web 3, db 1 (the local line is JSON: it ends in })
        "document.querySelectorAll('#log .row[data-seq]').length === 3"
    )
    await page.click("#log .row > .src > .node >> text=web-7d4b9")
    await page.wait_for_selector('body[data-filter*="web-7d4b9"]')
    assert await page.input_value("#where") == '(line~"[13]$") and node = "web-7d4b9"'
    await page.wait_for_function(
        "[...document.querySelectorAll('#log .row[data-seq] .line')].map(l => l.textContent)"
        ".join() === 'web 1,web 3'"
    )
    await snap(page, "filtered-by-node-and-where")
