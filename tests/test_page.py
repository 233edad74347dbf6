"""The browser page in headless Chromium (Debian's package, driven by Playwright; issue #6)."""

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from playwright.async_api import Browser, Page, async_playwright
from websockets.asyncio.client import connect

from tests.conftest import DEADLINE, Cli
from tests.web import CuttableLink, Server, Subscription, json_lines, start_server

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium: Playwright drives it; it never downloads a browser of its own."""
CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the machine has no internet: no calls home
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = DEADLINE * 1000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        yield launched
        await launched.close()


async def new_page(browser: Browser) -> Page:
    """A page that lets Playwright's own wait functions run: the page's CSP forbids eval, so
    the log's safety is proven by rendering (text, never HTML), with the CSP checked apart."""
    page = await browser.new_page(bypass_csp=True)
    page.set_default_timeout(WAIT_MS)
    return page


async def open_page(browser: Browser, url: str) -> Page:
    page = await new_page(browser)
    await page.goto(url)
    await page.wait_for_selector("body[data-state=live]")
    return page


async def row_count(page: Page) -> int:
    count: int = await page.evaluate("document.querySelectorAll('#log .row[data-seq]').length")
    return count


async def shown_seqs(page: Page) -> list[int]:
    seqs: list[int] = await page.evaluate(
        "[...document.querySelectorAll('#log .row[data-seq]')].map(row => +row.dataset.seq)"
    )
    return seqs


async def wait_rows(page: Page, count: int) -> None:
    await page.wait_for_function(
        f"document.querySelectorAll('#log .row[data-seq]').length >= {count}"
    )


async def test_log_text_is_shown_as_text_never_as_html(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    server = await start_server(
        tmp_path, cli_processes, 'auth_token = "${T}"', env={"T": "page-token"}
    )
    page = await new_page(browser)
    answer = await page.goto(server.url("/", "token=page-token"))
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in (await answer.all_headers())["content-security-policy"]
    await page.wait_for_selector("body[data-state=live]")
    payloads = [
        '<img src=x onerror="window.pwned=1">',
        "<script>window.pwned=2</script>",
        '"><svg onload="window.pwned=3">',
        "\x1b[31mred\x1b[0m & <b>bold</b>",
    ]
    await server.send(payloads)
    await wait_rows(page, len(payloads))
    lines = await page.eval_on_selector_all(
        "#log .row .line", "rows => rows.map(r => r.textContent)"
    )
    assert lines == payloads
    injected = await page.evaluate(
        "[window.pwned, document.querySelectorAll('#log img, #log script, #log svg, #log b')"
        ".length]"
    )
    assert injected == [None, 0]


async def test_filters_are_applied_by_the_server(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    server = await start_server(tmp_path, cli_processes)
    page = await open_page(browser, server.url("/"))
    await page.select_option("#level", "error")
    await page.fill("#grep", "disk|net")
    await page.click("#apply")
    await page.wait_for_selector('body[data-filter*="error"]')
    await server.send(
        json_lines(3, text="disk")
        + json_lines(2, start=3, level="error", text="cpu")
        + json_lines(2, start=5, level="error", text="disk")
    )
    await wait_rows(page, 2)
    await server.send(json_lines(1, start=7, level="fatal", text="net"))
    await wait_rows(page, 3)
    assert await shown_seqs(page) == [6, 7, 8]
    # An invalid pattern is refused by the server and shown; the old filter stays.
    await page.fill("#grep", "(unclosed")
    await page.click("#apply")
    await page.wait_for_selector("#error:not([hidden])")
    assert "grep" in await page.inner_text("#error")


@pytest.fixture
async def linked(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> AsyncIterator[tuple[Server, CuttableLink, Page]]:
    """A server, and the page open through a link the test can cut."""
    server = await start_server(tmp_path, cli_processes)
    link = CuttableLink(server.http)
    url = (await link.start()).replace("ws://", "http://").removesuffix("/ws") + "/"
    try:
        yield server, link, await open_page(browser, url)
    finally:
        await link.close()


async def test_pause_then_resume_shows_what_came_meanwhile(
    linked: tuple[Server, CuttableLink, Page],
) -> None:
    server, link, page = linked
    await server.send(json_lines(3))
    await wait_rows(page, 3)
    await page.click("#pause")
    await page.wait_for_selector("body[data-paused=true]")  # set when the server confirms
    watcher = Subscription(await connect(server.url("/ws")))
    await server.send(json_lines(4, start=3))
    await watcher.records_until(4)
    # Still paused across a reconnection: what came while it was away waits too.
    link.cut()
    await page.wait_for_selector("body[data-state=reconnecting]")
    await server.send(json_lines(2, start=7))
    await watcher.records_until(6)
    link.down = False
    await page.wait_for_selector("body[data-state=live]")
    # A round trip: once its answer is back, anything sent before it has arrived.
    await page.evaluate("document.body.dataset.paused = 'asking'; send({pause: true})")
    await page.wait_for_selector("body[data-paused=true]")
    assert await page.evaluate("state.received") == 3
    await page.click("#pause")
    await wait_rows(page, 9)
    assert await shown_seqs(page) == list(range(1, 10))


async def test_the_list_is_capped_and_follows_the_bottom(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    server = await start_server(tmp_path, cli_processes)
    page = await open_page(browser, server.url("/"))
    total = 12_000
    await server.send(json_lines(total, text="line"))
    await page.wait_for_function(
        f"document.querySelector('#log .row:last-child')?.dataset.seq === '{total}'"
    )
    seqs = await shown_seqs(page)
    assert len(seqs) == 5000 and seqs == list(range(total - 4999, total + 1))
    at_bottom = await page.evaluate(
        "(() => { const log = document.getElementById('log');"
        " return log.scrollHeight - log.scrollTop - log.clientHeight < 4; })()"
    )
    assert at_bottom
    # Highlight marks the text without turning it into HTML; each source has a colour.
    await page.fill("#highlight", "line 11999")
    marks = await page.eval_on_selector_all("#log mark", "marks => marks.map(m => m.textContent)")
    assert marks == ["line 11999"]
    colour = await page.eval_on_selector("#log .src", "el => el.style.color")
    assert colour.startswith("rgb")
    await page.wait_for_function("document.querySelector('#legend li')?.textContent.length > 0")


async def test_the_page_reconnects_and_resumes_without_repeats(
    linked: tuple[Server, CuttableLink, Page],
) -> None:
    server, link, page = linked
    await server.send(json_lines(5))
    await wait_rows(page, 5)
    link.cut()
    await page.wait_for_selector("body[data-state=reconnecting]")
    await server.send(json_lines(5, start=5))
    await server.cli.wait_for(lambda: len(server.cli.out) == 10, "10 records")
    link.down = False
    await page.wait_for_selector("body[data-state=live]")
    await wait_rows(page, 10)
    await server.send(json_lines(1, start=10))
    await wait_rows(page, 11)
    assert await shown_seqs(page) == list(range(1, 12))
    lines = await page.eval_on_selector_all("#log .row .line", "r => r.map(e => e.textContent)")
    assert orjson.loads(lines[-1])["msg"] == "msg 10"
