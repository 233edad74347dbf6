"""``where`` over the WebSocket port (a real server process, real clients), and what a page
opened without the right token is told (issue #29)."""

import asyncio
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import Cli
from tests.helpers.web import Server, Subscription, http_get, json_lines, start_server


def messages(subscription: Subscription) -> list[str]:
    return [orjson.loads(line)["msg"] for line in subscription.lines()]


@pytest.fixture
async def server(tmp_path: Path, cli_processes: list[Cli]) -> Server:
    return await start_server(tmp_path, cli_processes, "replay = 50")


async def test_where_in_the_url_filters_on_the_server(server: Server) -> None:
    """/ws?where= passes what the expression says, with the other keys by and."""
    where = await server.subscribe("where=" + quote('level>=warn and msg~" [13]$"'))
    both = await server.subscribe("level=error&where=" + quote('msg contains "msg"'))
    await server.send(json_lines(2) + json_lines(2, start=2, level="warn")
                      + json_lines(2, start=4, level="error"))  # fmt: skip
    await where.records_until(1)
    await both.records_until(2)
    assert messages(both) == ["msg 4", "msg 5"]
    await server.send(json_lines(1, start=6, level="error"))
    await both.records_until(3)
    assert messages(where) == ["msg 3"]


async def test_a_wrong_where_in_the_url_is_a_400_with_the_position(server: Server) -> None:
    """/ws?where= that does not parse: 400 naming the position and what was expected."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.url("/ws", "where=" + quote("level>=")))
    assert refused.value.response.status_code == 400
    body = bytes(refused.value.response.body).decode()
    assert 'where: at 8: expected a value after ">=", got end of input' in body


async def test_a_live_where_applies_and_a_wrong_one_keeps_the_old(server: Server) -> None:
    """{"filter": {"where": …}} changes the filter; a wrong one gets {"error"} and the old
    filter stays."""
    subscription = await server.subscribe()
    await subscription.connection.send('{"filter": {"where": "level = error"}}')
    await subscription.receive_until(lambda: subscription.notices("filter"), "the notice")
    assert subscription.notices("filter")[0]["filter"]["where"] == "level = error"
    await subscription.connection.send('{"filter": {"where": "level = "}}')
    await subscription.receive_until(
        lambda: any("error" in message for message in subscription.others), "the error"
    )
    error = next(message["error"] for message in subscription.others if "error" in message)
    assert error.startswith("where: at 9: expected a value"), error
    await server.send(json_lines(2) + json_lines(1, start=2, level="error"))
    await subscription.records_until(1)
    assert messages(subscription) == ["msg 2"]


async def test_the_page_says_whether_the_token_is_missing_or_wrong(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """401 without a token says one is required (and how to give it); with a wrong one, that
    it is wrong. The start-up line says a token is needed, without showing it."""
    token = "s3cret-token-value"
    server = await start_server(
        tmp_path, cli_processes, 'auth_token = "${WS_TOKEN}"', env={"WS_TOKEN": token}
    )
    status, _, body = await asyncio.to_thread(http_get, server.url("/"))
    assert status == 401 and "a token is required" in body and "?token=" in body
    status, _, body = await asyncio.to_thread(http_get, server.url("/", "token=nope"))
    assert status == 401 and "the token is wrong" in body
    serving = [line for line in server.cli.err if "serving on" in line]
    assert "a token is needed" in serving[0] and token not in serving[0]


def test_connect_asks_the_server_for_its_where() -> None:
    """connect --where goes to the server in the query (and comes back from a URL's)."""
    from urllib.parse import parse_qs

    from aggregator.web.client import StreamRequest

    request = StreamRequest("ws://127.0.0.1:1/ws", where='status>=500 and path~"^/a"')
    assert parse_qs(request.query(None, 0))["where"] == ['status>=500 and path~"^/a"']
    again = StreamRequest.from_url("ws://h:1/ws?" + request.query(None, 0))
    assert again.where == request.where
