"""``aggregator connect`` end to end: filters, replay, and resuming across cut connections."""

from pathlib import Path

import orjson

from tests.conftest import Cli, start_cli
from tests.helpers.web import CuttableLink, Server, json_lines, start_server


async def start_connect(tmp_path: Path, cli_processes: list[Cli], *args: str) -> Cli:
    cli = await start_cli("connect", *args, cwd=tmp_path)
    cli_processes.append(cli)
    return cli


async def connected(tmp_path: Path, cli_processes: list[Cli], *args: str) -> Cli:
    """``aggregator connect`` once it has its first hello."""
    cli = await start_connect(tmp_path, cli_processes, *args)
    await cli.wait_for(lambda: any("connected" in line for line in cli.err), "connected")
    return cli


async def send_while_cut(
    server: Server, link: CuttableLink, lines: list[str], server_total: int
) -> None:
    """Cut the link, send ``lines`` until the server has ``server_total`` records, restore."""
    link.cut()
    await server.send(lines)
    await server.cli.wait_for(
        lambda: len(server.cli.out) == server_total, f"{server_total} records on the server"
    )
    link.down = False


async def test_connect_prints_text_with_filters_and_replay(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    server = await start_server(tmp_path, cli_processes)
    await server.send(json_lines(5) + json_lines(3, start=5, level="error"))
    await server.cli.wait_for(lambda: len(server.cli.out) == 8, "8 records")
    url = server.url("/", "").rstrip("/")
    cli = await start_connect(tmp_path, cli_processes, url, "--level", "error", "--replay", "2")
    await cli.wait_for(lambda: len(cli.out) == 2, "the replay")
    await server.send(json_lines(1, start=8) + json_lines(1, start=9, level="fatal"))
    await cli.wait_for(lambda: len(cli.out) == 3, "the live record")
    assert cli.out[0] == f"2026-11-25T10:00:00.000Z net | {json_lines(1, 6, 'error')[0]}"
    assert cli.out[2].endswith('"level":"fatal","msg":"msg 9"}')
    assert await cli.stop() == 0


async def test_connect_resumes_after_a_cut_without_repeats(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    server = await start_server(tmp_path, cli_processes, "replay = 100")
    link = CuttableLink(server.http)
    url = await link.start()
    try:
        cli = await connected(tmp_path, cli_processes, url, "--format", "json")
        await server.send(json_lines(30))
        await cli.wait_for(lambda: len(cli.out) == 30, "30 records")
        await send_while_cut(server, link, json_lines(30, start=30), server_total=60)
        await cli.wait_for(lambda: len(cli.out) == 60, "the records sent while cut")
        await server.send(json_lines(5, start=60))
        await cli.wait_for(lambda: len(cli.out) == 65, "live records after the resume")
        seqs = [orjson.loads(line)["seq"] for line in cli.out]
        assert seqs == list(range(1, 66))
        assert link.accepted >= 2
        assert any("resuming after seq 30" in line for line in cli.err)
        assert not any("gap" in line for line in cli.err)
    finally:
        await link.close()


async def test_connect_reports_a_gap_on_stderr(tmp_path: Path, cli_processes: list[Cli]) -> None:
    server = await start_server(tmp_path, cli_processes, "replay = 5")
    link = CuttableLink(server.http)
    url = await link.start()
    try:
        cli = await connected(tmp_path, cli_processes, url, "--format", "raw")
        await server.send(json_lines(3))
        await cli.wait_for(lambda: len(cli.out) == 3, "3 records")
        await send_while_cut(server, link, json_lines(20, start=3), server_total=23)
        await cli.wait_for(lambda: len(cli.out) == 8, "the last 5 after the gap")
        assert [orjson.loads(line)["msg"] for line in cli.out[3:]] == [
            f"msg {n}" for n in range(18, 23)
        ]
        await cli.wait_for(
            lambda: any("gap: 15 records" in line for line in cli.err), "the gap on stderr"
        )
    finally:
        await link.close()


async def test_connect_follows_a_restarted_server_into_its_new_run(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    first = await start_server(tmp_path, cli_processes)
    port = first.http[1]
    cli = await connected(tmp_path, cli_processes, first.url("/ws"), "--format", "raw")
    await first.send(json_lines(3))
    await cli.wait_for(lambda: len(cli.out) == 3, "3 records")
    assert await first.cli.stop() == 0
    second = await start_server(tmp_path, cli_processes, port=port)
    await second.send(json_lines(2, start=3))
    await cli.wait_for(lambda: len(cli.out) == 5, "the new run's records")
    assert [orjson.loads(line)["msg"] for line in cli.out] == [f"msg {n}" for n in range(5)]
    assert any("the server restarted" in line for line in cli.err)


async def test_connect_refusals_end_with_a_reason(tmp_path: Path, cli_processes: list[Cli]) -> None:
    server = await start_server(tmp_path, cli_processes, 'auth_token = "${T}"', env={"T": "right"})
    url = server.url("/ws")
    bad_filter = await start_cli(
        "connect", url, "--grep", "(", cwd=tmp_path, env={"AGGREGATOR_TOKEN": "right"}
    )
    assert await bad_filter.exit_code() == 2
    assert any("grep: not a usable regular expression" in line for line in bad_filter.err)
    wrong_token = await start_cli("connect", url, cwd=tmp_path, env={"AGGREGATOR_TOKEN": "no"})
    assert await wrong_token.exit_code() == 1
    assert any("401" in line for line in wrong_token.err)
    assert not any("right" in line for line in server.cli.err + wrong_token.err)
