"""The page's view (issue #29): the filter and columns in the address, where in the filter box,
the counts panel, Download, and a line shown without what its columns show already. Headless
Chromium through Playwright, like tests/web/test_page.py."""

from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import orjson
import pytest
from playwright.async_api import Browser

from tests.conftest import Cli
from tests.helpers.web import json_lines, start_server
from tests.web.test_page import (  # noqa: F401 (browser is a fixture)
    WAIT_MS,
    browser,
    open_page,
    shown_seqs,
    snap,
    wait_rows,
)

pytestmark = pytest.mark.slow


async def test_the_filter_and_columns_live_in_the_address(
    tmp_path: Path,
    cli_processes: list[Cli],
    browser: Browser,  # noqa: F811
) -> None:
    """A where typed in the box filters on the server and goes into the address with the
    hidden columns; opening that address shows the same view."""
    server = await start_server(tmp_path, cli_processes)
    page = await open_page(browser, server.url("/"))
    await page.fill("#where", 'level>=warn and msg~"[46]$"')
    await page.click("#apply")
    await page.wait_for_selector('body[data-filter*="msg"]')
    await page.uncheck("#columns input[data-column=src]")
    await server.send(json_lines(3) + json_lines(3, start=3, level="warn")
                      + json_lines(3, start=6, level="error"))  # fmt: skip
    await wait_rows(page, 2)
    await page.wait_for_function("document.querySelector('#stats:not([hidden]) li')")
    assert await shown_seqs(page) == [5, 7]
    query = parse_qs(urlsplit(page.url).query)
    assert query["where"] == ['level>=warn and msg~"[46]$"'] and query["hide"] == ["src"]
    await snap(page, "where-filter-and-hidden-source-column")
    again = await open_page(browser, page.url)
    await wait_rows(again, 2)
    assert await shown_seqs(again) == [5, 7]
    assert await again.input_value("#where") == 'level>=warn and msg~"[46]$"'
    assert not await again.is_visible("#log .row .src")
    assert await again.is_visible("#log .row .ts")
    # A wrong expression is refused with its position; the old filter stays.
    await again.fill("#where", "level>=")
    await again.click("#apply")
    await again.wait_for_selector("#error:not([hidden])")
    assert 'at 8: expected a value after ">="' in await again.inner_text("#error")
    assert parse_qs(urlsplit(again.url).query)["where"] == ['level>=warn and msg~"[46]$"']
    await snap(again, "where-error")


async def test_the_counts_panel_filters_by_a_click(
    tmp_path: Path,
    cli_processes: list[Cli],
    browser: Browser,  # noqa: F811
) -> None:
    """The panel shows the server's counts per level and source; a click on a level filters."""
    server = await start_server(tmp_path, cli_processes)
    page = await open_page(browser, server.url("/", "where=" + quote("exists(msg)")))
    await server.send(json_lines(4) + json_lines(2, start=4, level="error"))
    await wait_rows(page, 6)
    await page.wait_for_selector("#stat-levels li[data-level=error]")
    await page.wait_for_function(
        "document.querySelector('#stat-levels li[data-level=info] .n')?.textContent === '4 · 4'"
    )
    await snap(page, "counts-panel")
    await page.click("#stat-levels li[data-level=error]")
    await page.wait_for_selector('body[data-filter*="error"]')
    await wait_rows(page, 2)
    assert await shown_seqs(page) == [5, 6]
    assert parse_qs(urlsplit(page.url).query)["level"] == ["error"]
    await page.click("#stat-sources li[data-source=net]")
    await page.wait_for_selector('body[data-filter*="net"]')
    assert await page.input_value("#sources") == "net"


async def test_download_saves_what_is_shown_with_control_characters_escaped(
    tmp_path: Path,
    cli_processes: list[Cli],
    browser: Browser,  # noqa: F811
) -> None:
    """Download: the shown records as NDJSON (each parses back) or text, one line a record."""
    server = await start_server(tmp_path, cli_processes)
    page = await open_page(browser, server.url("/", "where=" + quote('line contains "red"')))
    await server.send([*json_lines(2), "a\x1b[31mred\x07 and\ta tab"])
    await wait_rows(page, 1)
    async with page.expect_download() as waiting:
        await page.click("#download")
    saved = Path(await (await waiting.value).path()).read_text()
    records = [orjson.loads(line) for line in saved.splitlines()]
    assert [record["seq"] for record in records] == [3]
    assert records[0]["line"] == "a\x1b[31mred\x07 and\ta tab"
    assert "\x1b" not in saved and "\x07" not in saved
    await page.select_option("#download-format", "text")
    async with page.expect_download() as waiting:
        await page.click("#download")
    text = Path(await (await waiting.value).path()).read_text()
    assert len(text.splitlines()) == 1, text
    assert text.endswith(" net | a\\x1b[31mred\\x07 and\\x09a tab\n"), text


async def test_a_line_shows_its_level_and_time_once_and_logfmt_without_its_keys(
    tmp_path: Path,
    cli_processes: list[Cli],
    browser: Browser,  # noqa: F811
) -> None:
    """Text: the level word that the level column shows is left out of the line; logfmt: the
    message, then the fields not shown in columns; the time column is short, the whole on
    hover."""
    server = await start_server(tmp_path, cli_processes, codec="auto")
    page = await open_page(browser, server.url("/"))
    await server.send([
        "2026-11-25T10:00:00.123Z DEBUG checkpoint written",
        'time=2026-11-25T10:00:01.5Z level=warn status=503 path=/health msg="backend down"',
        "2026-11-25T10:00:02Z [ERROR] disk full",
        "2026-11-25T10:00:03Z INFOrmation is not a level word",
    ])  # fmt: skip
    await wait_rows(page, 4)
    lines = await page.eval_on_selector_all("#log .row .line", "r => r.map(e => e.textContent)")
    assert lines == ["checkpoint written", "backend down", "disk full",
                     "INFOrmation is not a level word"]  # fmt: skip
    chips = await page.eval_on_selector_all(
        "#log .row[data-seq='2'] .kv", "r => r.map(e => e.textContent)"
    )
    assert chips == ["status=503", "path=/health"]
    assert await page.inner_text("#log .row[data-seq='1'] .ts") == "10:00:00.123"
    title = await page.get_attribute("#log .row[data-seq='1'] .ts", "title")
    assert title is not None and title.startswith("2026-11-25T10:00:00.123000Z")
    await snap(page, "level-once-logfmt-short-time")
    assert WAIT_MS > 0
