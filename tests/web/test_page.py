"""The browser page in headless Chromium (Debian's package, driven by Playwright; issue #6)."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import DEADLINE, Cli
from tests.helpers.web import (
    CuttableLink,
    Server,
    http_get,
    json_lines,
    send_lines,
    start_server,
)

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


async def snap(page: Page, name: str) -> None:
    """Save a screenshot as ``$PAGE_SCREENSHOTS/NAME.png`` when that variable names a folder
    (to look at the page's states by eye); otherwise do nothing."""
    folder = os.environ.get("PAGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(folder) / f"{name}.png"))


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
    # Control characters are shown as \xNN, as the terminal shows them.
    assert lines == [*payloads[:3], "\\x1b[31mred\\x1b[0m & <b>bold</b>"]
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
    watcher = await server.subscribe()
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
    await watcher.connection.close()


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
    # At the bottom once the last rows are laid out (a frame may come after they are put in).
    await page.wait_for_function(
        "(() => { const log = document.getElementById('log');"
        " return log.scrollHeight - log.scrollTop - log.clientHeight < 4; })()"
    )
    # Highlight marks the text without turning it into HTML; each source has a colour.
    await page.fill("#highlight", "line 11999")
    marks = await page.eval_on_selector_all("#log mark", "marks => marks.map(m => m.textContent)")
    assert marks == ["line 11999"]
    colour = await page.eval_on_selector("#log .src", "el => getComputedStyle(el).color")
    assert colour.startswith("rgb") and "c0" in await page.get_attribute("#log .src", "class")
    await page.wait_for_function("document.querySelector('#legend li')?.textContent.length > 0")
    await snap(page, "10k-lines")


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
    assert lines[-1] == "msg 10"  # a JSON record's message, its other fields beside it


async def test_rates_are_the_servers_and_every_source_is_told_apart(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    """The rate plot shows what every source sends, also those the page's filter hides."""
    other = '[sources.other]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "json"\n'
    server = await start_server(tmp_path, cli_processes, extra_sources=other)
    page = await open_page(browser, server.url("/"))
    await page.fill("#sources", "net")
    await page.click("#apply")
    await page.wait_for_selector('body[data-filter*="net"]')
    await page.wait_for_selector("#legend li[data-source=other]")  # a first rates frame came
    await server.send(json_lines(300, text="net"))
    await send_lines(await server.source_address("other"), json_lines(40, text="other"))
    # The page received only the 300 of net; its plot counts the 40 of other too.
    await page.wait_for_function(
        "(() => { const sum = (s) => state.rates.reduce((n, r) => n + (r.counts[s] ?? 0), 0);"
        " return sum('net') === 300 && sum('other') === 40; })()"
    )
    await wait_rows(page, 300)
    legend = await page.eval_on_selector_all("#legend li", "r => r.map(i => i.dataset.source)")
    assert legend == ["net", "other"]
    classes = await page.eval_on_selector_all("#legend li", "items => items.map(i => i.className)")
    assert classes == ["c0", "c1"]
    colours = await page.eval_on_selector_all(
        "#legend li", "items => items.map(i => getComputedStyle(i).color)"
    )
    assert colours[0] != colours[1]
    sources = await page.eval_on_selector_all(
        "#log .row[data-seq] .src", "items => [...new Set(items.map(i => i.textContent))]"
    )
    assert sources == ["net"]  # the rows are filtered; the rates are not
    await snap(page, "rates-two-sources")


async def test_json_records_show_fields_and_level_colours(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    """A JSON record shows its message, its fields as key=value, and all of them on a click."""
    server = await start_server(tmp_path, cli_processes, codec="auto")
    page = await open_page(browser, server.url("/"))
    lines = [
        orjson.dumps(
            {"ts": "2026-11-25T10:00:00.100Z", "level": "info", "msg": "user logged in",
             "user": "ann", "ip": "10.0.0.7"}
        ).decode(),
        orjson.dumps(
            {"ts": "2026-11-25T10:00:00.200Z", "level": "warn", "msg": "slow query",
             "ms": 1840, "query": {"table": "orders", "rows": 12}}
        ).decode(),
        orjson.dumps(
            {"ts": "2026-11-25T10:00:00.300Z", "level": "error", "msg": "payment failed",
             "user": "bob", "error": "card declined"}
        ).decode(),
        "2026-11-25T10:00:00.400Z plain text line, no fields",
    ]  # fmt: skip
    await server.send(lines)
    await wait_rows(page, 4)
    messages = await page.eval_on_selector_all("#log .row .line", "r => r.map(e => e.textContent)")
    assert messages == [
        "user logged in",
        "slow query",
        "payment failed",
        "plain text line, no fields",
    ]
    chips = await page.eval_on_selector_all(
        "#log .row[data-seq='1'] .kv", "r => r.map(e => e.textContent)"
    )
    assert chips == ["user=ann", "ip=10.0.0.7"]
    levels = await page.eval_on_selector_all(
        "#log .row[data-seq] .lvl", "r => r.map(e => e.textContent)"
    )
    assert levels[:3] == ["info", "warn", "error"]
    error_colour = await page.eval_on_selector(".lvl-error .line", "e => getComputedStyle(e).color")
    info_colour = await page.eval_on_selector(".lvl-info .line", "e => getComputedStyle(e).color")
    assert error_colour != info_colour
    await page.click("#log .row[data-seq='2']")
    await page.wait_for_selector(".detail")
    terms = await page.eval_on_selector_all(".detail dt", "r => r.map(e => e.textContent)")
    values = await page.eval_on_selector_all(".detail dd", "r => r.map(e => e.textContent)")
    detail = dict(zip(terms, values, strict=True))
    assert detail["ms"] == "1840" and orjson.loads(detail["query"]) == {
        "table": "orders",
        "rows": 12,
    }
    assert detail["line"] == lines[1] and detail["source"] == "net"
    await snap(page, "json-fields-expanded")


async def test_a_time_that_starts_the_line_is_shown_once(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    """A text line that begins with its time shows it in the time column only."""
    server = await start_server(tmp_path, cli_processes, codec="auto")
    page = await open_page(browser, server.url("/"))
    await server.send(
        [
            "2026-11-25T10:00:00.123Z GET /index.html 200",
            "2026-11-25 10:00:01,456 ERROR worker crashed",
            "Nov 25 10:00:02 host sshd[1]: accepted key",
            "no time here",
            "2026-11-25T12:00:00+02:00 an offset",
        ]
    )
    await wait_rows(page, 5)
    lines = await page.eval_on_selector_all("#log .row .line", "r => r.map(e => e.textContent)")
    assert lines == [
        "GET /index.html 200",
        "worker crashed",  # ERROR: in the level column (issue #29)
        "host sshd[1]: accepted key",
        "no time here",
        "an offset",
    ]
    first = await page.inner_text("#log .row[data-seq='1']")
    assert first.count("10:00:00.123") == 1
    # A time the codec did not take (a JSON source's text line is stamped when read) stays.
    (tmp_path / "json").mkdir()
    server = await start_server(tmp_path / "json", cli_processes, codec="json")
    page = await open_page(browser, server.url("/"))
    await server.send(["2020-01-01T00:00:00Z an old time, not the record's"])
    await wait_rows(page, 1)
    assert (
        await page.inner_text("#log .row .line")
        == "2020-01-01T00:00:00Z an old time, not the record's"
    )


async def test_a_banner_shows_while_disconnected(
    linked: tuple[Server, CuttableLink, Page],
) -> None:
    """Losing the server shows a banner until the page is live again."""
    server, link, page = linked
    await server.send(json_lines(3))
    await wait_rows(page, 3)
    assert await page.is_hidden("#banner")
    link.cut()
    await page.wait_for_selector("#banner:not([hidden])")
    assert "reconnecting" in await page.inner_text("#banner")
    await snap(page, "disconnected-banner")
    link.down = False
    await page.wait_for_selector("body[data-state=live]")
    await page.wait_for_selector("#banner", state="hidden")


async def test_paused_shows_how_many_new_and_resumes_from_the_button(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    """While paused, "N new" counts what the server took; the button resumes and shows them."""
    server = await start_server(tmp_path, cli_processes)
    page = await open_page(browser, server.url("/"))
    await server.send(json_lines(30))
    await wait_rows(page, 30)
    await page.click("#pause")
    await page.wait_for_selector("body[data-paused=true]")
    await server.send(json_lines(12, start=30, level="warn", text="while paused"))
    await page.wait_for_selector("#jump:not([hidden])")
    await page.wait_for_function("document.body.dataset.newCount === '12'")
    assert await page.inner_text("#jump") == "12 new · resume"
    assert await row_count(page) == 30
    await snap(page, "paused-n-new")
    await page.click("#jump")
    await wait_rows(page, 42)
    assert await shown_seqs(page) == list(range(1, 43))
    await page.wait_for_selector("#jump", state="hidden")


async def test_scrolled_up_holds_new_rows_and_jumps_to_the_bottom(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    """Scrolled up, new records wait below as "N new"; the button shows them and follows."""
    server = await start_server(tmp_path, cli_processes)
    page = await open_page(browser, server.url("/"))
    await server.send(json_lines(200))
    await wait_rows(page, 200)
    await page.eval_on_selector("#log", "log => { log.scrollTop = 0; }")
    await page.wait_for_function("!document.getElementById('follow').checked")
    await server.send(json_lines(7, start=200))
    await page.wait_for_function("document.body.dataset.newCount === '7'")
    assert await page.inner_text("#jump") == "↓ 7 new"
    await snap(page, "scrolled-n-new")
    assert await row_count(page) == 200  # what is being read does not move
    assert await page.eval_on_selector("#log", "log => log.scrollTop") == 0
    await page.click("#jump")
    await wait_rows(page, 207)
    await page.wait_for_function("document.getElementById('follow').checked")
    at_bottom = await page.eval_on_selector(
        "#log", "log => log.scrollHeight - log.scrollTop - log.clientHeight < 4"
    )
    assert at_bottom


async def test_no_request_fails_and_the_light_theme_applies(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    """The page loads without a 404 (favicon included) and follows a light colour scheme."""
    server = await start_server(tmp_path, cli_processes)
    context = await browser.new_context(color_scheme="light", bypass_csp=True)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    statuses: list[tuple[int, str]] = []
    page.on("response", lambda answer: statuses.append((answer.status, answer.url)))
    await page.goto(server.url("/"))
    await page.wait_for_selector("body[data-state=live]")
    await server.send(json_lines(5) + json_lines(2, start=5, level="error", text="boom"))
    await wait_rows(page, 7)
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(251, 251, 252)"
    await page.wait_for_selector("#legend li")
    await snap(page, "light")
    assert [s for s in statuses if s[0] >= 400] == []
    assert any(url.endswith("/favicon.svg") and status == 200 for status, url in statuses)
    status, headers, _ = http_get(server.url("/favicon.ico"))
    assert status == 200 and headers["Content-Type"] == "image/svg+xml"
    await context.close()


async def test_dark_theme_by_default(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    """With a dark colour scheme (the default) the page is dark; sources differ in colour."""
    extra = "".join(
        f'[sources.{name}]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "auto"\n'
        for name in ("api", "worker", "db")
    )
    server = await start_server(tmp_path, cli_processes, codec="auto", extra_sources=extra)
    context = await browser.new_context(color_scheme="dark", bypass_csp=True)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(server.url("/"))
    await page.wait_for_selector("body[data-state=live]")
    await server.send(
        [*json_lines(2), *json_lines(1, start=2, level="warn", text="disk almost full"),
         "2026-11-25T10:00:00.500Z a text line with \x1b[31mcolour\x1b[0m codes"]
    )  # fmt: skip
    for number, name in enumerate(("api", "worker", "db")):
        record = {"ts": f"2026-11-25T10:00:01.{number}00Z", "level": "info", "msg": "handled",
                  "path": "/orders", "status": 200 + number, "ms": 12 + number}  # fmt: skip
        error = {"ts": f"2026-11-25T10:00:02.{number}00Z", "level": "error", "msg": "failed",
                 "path": "/pay", "err": "timeout"}  # fmt: skip
        await send_lines(
            await server.source_address(name),
            [orjson.dumps(record).decode(), orjson.dumps(error).decode()],
        )
    await wait_rows(page, 10)
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 22, 26)"
    colours = await page.eval_on_selector_all(
        "#log .row[data-seq] .src", "r => [...new Set(r.map(e => getComputedStyle(e).color))]"
    )
    assert len(colours) == 4
    await page.wait_for_selector("#legend li[data-source=db]")
    await snap(page, "dark")
    await context.close()


async def test_the_page_works_under_its_own_strict_csp(
    tmp_path: Path, cli_processes: list[Cli], browser: Browser
) -> None:
    """Without bypassing the CSP, the page renders records and fields and breaks no rule."""
    server = await start_server(tmp_path, cli_processes, codec="auto")
    page = await browser.new_page()  # the CSP applies
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    await page.goto(server.url("/"))
    await page.wait_for_selector("body[data-state=live]")
    await server.send(
        [orjson.dumps({"level": "error", "msg": "boom", "user": "ann"}).decode(), "plain"]
    )
    await page.wait_for_selector("#log .row.lvl-error .kv")
    await page.click("#log .row.lvl-error")
    await page.wait_for_selector(".detail")
    await page.wait_for_selector("#legend li")  # the plot was drawn
    assert problems == []
