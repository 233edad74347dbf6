"""The CLI end to end, run as a subprocess with real files, pipes and a terminal (SPEC §2)."""

import asyncio
import os
import pty
import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson

from tests.conftest import DEADLINE, Cli, follow_synced, start_cli, wait_until

AGGREGATOR = [sys.executable, "-m", "aggregator"]


def run(*args: str, cwd: Path, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*AGGREGATOR, *args], cwd=cwd, input=input, capture_output=True, timeout=DEADLINE * 2
    )


def test_version(tmp_path: Path) -> None:
    """--version prints the version and exits 0."""
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.decode().startswith("aggregator ")


def test_check_prints_the_resolved_pipeline(tmp_path: Path) -> None:
    """check on a good config prints every part with its defaults filled in."""
    config = tmp_path / "ok.toml"
    config.write_text('[sources.app]\ntype = "stdin"\n[sinks.out]\ntype = "stdout"\n')
    result = run("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert 'source app: type="stdin" codec="auto"' in out
    assert 'sink out: type="stdout" format="text"' in out


def test_check_lists_every_error_and_exits_2(tmp_path: Path) -> None:
    """check on a broken config names each key path on stderr and exits 2."""
    broken = tmp_path / "broken.toml"
    broken.write_text(
        '[aggregator]\norder_window = "soon"\n'
        '[sources.app]\ntype = "file"\npaths = ["x"]\ncolour = "red"\n'
        '[sinks.live]\ntype = "stdout"\nformat = "yaml"\n'
    )
    result = run("check", "-c", str(broken), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == b""
    errors = result.stderr.decode().splitlines()
    assert errors == [
        f'{broken}: aggregator.order_window: expected a duration such as "250ms", "1s" or "5m", '
        'got "soon"',
        f"{broken}: sources.app.colour: unknown key",
        f"{broken}: sinks.live.format: expected one of 'text', 'json' or 'raw', got \"yaml\"",
    ]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    """No target, a bad option value or an unknown scheme is a usage error."""
    assert run("tail", cwd=tmp_path).returncode == 2
    assert run("tail", "-", "--order-window", "forever", cwd=tmp_path).returncode == 2
    result = run("tail", "ftp://x:1", cwd=tmp_path)
    assert result.returncode == 2
    assert b"expected tcp://HOST:PORT" in result.stderr


def test_stdin_json_every_line_in_order(tmp_path: Path) -> None:
    """seq 1 100000 | aggregator tail - --format json: every line, seq from 1, in order."""
    numbers = b"".join(b"%d\n" % n for n in range(1, 100_001))
    result = run("tail", "-", "--format", "json", cwd=tmp_path, input=numbers)
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in records] == [str(n) for n in range(1, 100_001)]
    assert [r["seq"] for r in records] == list(range(1, 100_001))
    assert {r["source"] for r in records} == {"stdin"}
    assert result.stderr == b""


def test_stdin_partial_last_line_and_empty_lines(tmp_path: Path) -> None:
    """EOF flushes a last line without newline; empty lines are records; CR is stripped."""
    result = run("tail", "-", "--format", "raw", cwd=tmp_path, input=b"a\r\n\n\x00b\nlast")
    assert result.returncode == 0
    assert result.stdout == b"a\n\n\x00b\nlast\n"


def test_no_follow_reads_files_and_exits(tmp_path: Path) -> None:
    """--no-follow reads every file through, keeps each file's order, and exits 0."""
    (tmp_path / "a.log").write_text("".join(f"a{i}\n" for i in range(500)))
    (tmp_path / "b.log").write_text("".join(f"b{i}\n" for i in range(300)) + "b-partial")
    result = run("tail", "--no-follow", "a.log", "b.log", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    by_source = {
        name: [r["line"] for r in records if r["source"] == name] for name in ("a.log", "b.log")
    }
    assert by_source["a.log"] == [f"a{i}" for i in range(500)]
    assert by_source["b.log"] == [*(f"b{i}" for i in range(300)), "b-partial"]


def test_a_level_filter_on_a_raw_sink_still_reads_levels(tmp_path: Path) -> None:
    """Raw and text sinks let the codecs read only each line's time, unless a sink filters
    on the level."""
    (tmp_path / "app.log").write_text(
        '{"ts": "2026-11-25T10:00:00Z", "level": "debug", "msg": "quiet"}\n'
        '{"ts": "2026-11-25T10:00:01Z", "level": "error", "msg": "loud"}\n'
        "2026-11-25T10:00:02Z WARN disk low\n"
        "2026-11-25T10:00:03Z INFO fine\n"
    )
    (tmp_path / "c.toml").write_text(
        '[sources.app]\ntype = "file"\npaths = ["app.log"]\nstart_at = "beginning"\n'
        'follow = false\n[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
        'filter = { level = "warn" }\n'
    )
    result = run("run", "-c", "c.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        '{"ts": "2026-11-25T10:00:01Z", "level": "error", "msg": "loud"}',
        "2026-11-25T10:00:02Z WARN disk low",
    ]


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """| head: the reader goes away, the program ends with 0 and no traceback."""
    script = (
        f"seq 1 2000000 | {' '.join(AGGREGATOR)} tail - --format raw | head -n 3; "
        'echo "status=${PIPESTATUS[1]}" >&2'
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, timeout=DEADLINE * 2
    )
    assert result.stdout == b"1\n2\n3\n"
    assert b"status=0" in result.stderr
    assert b"Traceback" not in result.stderr


async def test_follows_two_files_with_source_prefixes(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """tail -n 0 a.log b.log follows appends to both and prefixes each line with its source."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("old line, not shown\n")
    b.write_text("")
    cli = await start_cli("tail", "-n", "0", "a.log", "b.log", "--order-window", "0s", cwd=tmp_path)
    cli_processes.append(cli)
    await follow_synced(cli, a, "sync-a")
    await follow_synced(cli, b, "sync-b")
    with a.open("a") as file:
        file.write("hello from a\n")
    with b.open("a") as file:
        file.write("hello from b\nhalf a li")
    await cli.wait_for_out("b.log | hello from b")
    await cli.wait_for_out("a.log | hello from a")
    with b.open("a") as file:
        file.write("ne\n")
    await cli.wait_for_out("b.log | half a line")
    assert not any("old line" in line for line in cli.out)
    assert await cli.stop() == 0


async def test_sigterm_drains_and_exits_0(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """SIGTERM with stdin still open: what was read is written, exit 0 within the deadline."""
    cli = await start_cli(
        "tail", "-", "--format", "raw", cwd=tmp_path, stdin=asyncio.subprocess.PIPE
    )
    cli_processes.append(cli)
    assert cli.proc.stdin is not None
    cli.proc.stdin.write(b"".join(b"line %d\n" % n for n in range(1000)))
    await cli.proc.stdin.drain()
    await cli.wait_for_out("line 999")
    assert await cli.stop(signal.SIGTERM) == 0
    assert cli.out == [f"line {n}" for n in range(1000)]


async def test_tcp_and_udp_sources(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """Lines sent over TCP and UDP come out with their source and the peer as origin."""
    cli = await start_cli(
        "tail", "tcp://127.0.0.1:0", "udp://127.0.0.1:0", "--format", "json", cwd=tmp_path
    )
    cli_processes.append(cli)
    tcp_address = await cli.listening("tcp")
    udp_address = await cli.listening("udp")
    _, writer = await asyncio.open_connection(*tcp_address)
    writer.write(b"over tcp\nno newline at the end")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"over udp", udp_address)
    await cli.wait_for(lambda: len(cli.out) >= 3, "three records")
    records = {orjson.loads(line)["line"]: orjson.loads(line) for line in cli.out}
    assert set(records) == {"over tcp", "no newline at the end", "over udp"}
    assert records["over tcp"]["source"] == "tcp://127.0.0.1:0"
    assert records["over tcp"]["origin"].startswith("127.0.0.1:")
    assert records["over udp"]["source"] == "udp://127.0.0.1:0"
    assert await cli.stop() == 0


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    """A port that cannot be bound is reported with the source and address, exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("tail", f"tcp://127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 1
    message = result.stderr.decode()
    assert f"cannot listen on 127.0.0.1:{port}" in message
    assert "Traceback" not in message


def test_a_websocket_port_in_use_fails_at_start(tmp_path: Path) -> None:
    """The WebSocket port is bound at start though its server is loaded with the first client:
    a port in use is said then, with the sink, the address and the system's reason, exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text(
            '[sources.in]\ntype = "stdin"\n'
            f'[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:{port}"\n'
        )
        result = run("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"aggregator: ERROR: sinks.live: cannot listen on 127.0.0.1:{port}: error while "
        f"attempting to bind on address ('127.0.0.1', {port}): address already in use\n"
    )


def test_state_dir_that_cannot_be_written_exits_1(tmp_path: Path) -> None:
    """run with a state_dir that cannot be created stops before anything starts, exit 1."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "c.toml"
    config.write_text(
        f'[aggregator]\nstate_dir = "{blocker}/state"\n'
        '[sources.app]\ntype = "file"\npaths = ["*.log"]\n[sinks.out]\ntype = "stdout"\n'
    )
    result = run("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"aggregator.state_dir: cannot write {blocker}/state" in result.stderr.decode()


def test_file_sink_rotation_loses_nothing(tmp_path: Path) -> None:
    """rotate = {max_bytes = "10KiB", keep = 3}: every record is in exactly one file."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[sources.in]\ntype = "stdin"\n'
        '[sinks.quiet]\ntype = "stdout"\nfilter = { grep = "^never$" }\n'
        '[sinks.archive]\ntype = "file"\npath = "out/merged.log"\nformat = "json"\n'
        'rotate = { max_bytes = "10KiB", keep = 3 }\nfsync = "always"\n'
    )
    # About 150 bytes a JSON record: 220 records need all four files, and fit in them.
    payload = b"".join(b"record %04d %s\n" % (n, b"x" * 40) for n in range(220))
    result = run("run", "-c", str(config), cwd=tmp_path, input=payload)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["merged.log", "merged.log.1", "merged.log.2", "merged.log.3"]
    seqs = []
    for file in files:
        assert file.stat().st_size <= 10 * 1024
        seqs += [orjson.loads(line)["seq"] for line in file.read_bytes().splitlines()]
    assert sorted(seqs) == list(range(1, 221))


async def test_sighup_reopens_the_output_file(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """After an external rotation and SIGHUP, new records go to a new file at the path, and no
    record is lost or written twice across the two files."""
    out, rotated = tmp_path / "out.log", tmp_path / "out.log.1"
    cli = await start_cli(
        "tail", "-", "-o", str(out), "--format", "raw", cwd=tmp_path, stdin=asyncio.subprocess.PIPE
    )
    cli_processes.append(cli)
    assert cli.proc.stdin is not None
    cli.proc.stdin.write(b"line 0\n")
    await cli.proc.stdin.drain()
    await wait_until(lambda: out.exists() and out.read_bytes() == b"line 0\n", "line 0 in out.log")
    out.rename(rotated)
    cli.proc.send_signal(signal.SIGHUP)
    sent = 1
    async with asyncio.timeout(DEADLINE):
        while not out.exists():  # the reopen happens at the first write after the signal
            cli.proc.stdin.write(b"line %d\n" % sent)
            await cli.proc.stdin.drain()
            sent += 1
            await cli.wait_for_out(f"line {sent - 1}")
    assert await cli.stop() == 0
    written = rotated.read_bytes() + out.read_bytes()
    assert written == b"".join(b"line %d\n" % n for n in range(sent))
    assert out.read_bytes() != b""


def test_terminal_gets_colours_and_escaped_controls(tmp_path: Path) -> None:
    """On a terminal: a colour per source; ANSI escapes in log lines are shown, not obeyed."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*AGGREGATOR, "tail", "-"],
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=terminal,
            stderr=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
        )
        os.close(terminal)
        proc.communicate(b"\x1b[31mred\x1b[0m and \x07bell\n", timeout=DEADLINE)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
    text = output.decode()
    assert proc.returncode == 0
    assert "\x1b[36mstdin\x1b[0m | " in text
    assert "\\x1b[31mred\\x1b[0m and \\x07bell" in text


def test_pipes_get_no_colour(tmp_path: Path) -> None:
    """In a pipe, text has no colour codes."""
    result = run("tail", "-", cwd=tmp_path, input=b"plain\n")
    assert result.stdout.endswith(b" stdin | plain\n")
    assert b"\x1b" not in result.stdout


async def test_debug_dumps_named_tasks(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """--debug: SIGUSR1 writes every task, by name, with its stack, to stderr."""
    cli = await start_cli("tail", "-", "--debug", cwd=tmp_path, stdin=asyncio.subprocess.PIPE)
    cli_processes.append(cli)
    assert cli.proc.stdin is not None
    cli.proc.stdin.write(b"ready\n")
    await cli.proc.stdin.drain()
    await cli.wait_for_out("ready")
    cli.proc.send_signal(signal.SIGUSR1)
    names = ("--- task source:stdin", "--- task merge", "--- task sink:stdout")
    await cli.wait_for(
        lambda: all(any(name in line for line in cli.err) for name in names), "the task dump"
    )
    assert await cli.stop() == 0


def test_a_command_s_parser_is_the_whole_parser_s_part() -> None:
    """The parser built for one command (only its options, at start-up) shows the same help
    and usage as the whole parser, for that command and at the top level."""
    import argparse

    from aggregator.arguments import COMMAND_OPTIONS, build_parser

    def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        action = next(
            action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
        )
        return action.choices

    whole = build_parser()
    for command in COMMAND_OPTIONS:
        part = build_parser(command)
        assert part.format_help() == whole.format_help()
        assert commands(part)[command].format_help() == commands(whole)[command].format_help()
        others = [sub for name, sub in commands(part).items() if name != command]
        assert all(len(sub._actions) == 1 for sub in others)  # -h only
