"""`aggregator tail`'s options as a user types them, and `check` and `run` telling what they
will do (SPEC §2), run as subprocesses."""

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import DEADLINE, Cli, follow_synced, start_cli

AGGREGATOR = [sys.executable, "-m", "aggregator"]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGGREGATOR, *args], cwd=cwd, capture_output=True, text=True, timeout=DEADLINE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def numbered(path: Path, count: int, tenths: int) -> None:
    """``count`` lines, one a second from 10:00:01, at ``tenths`` of a second past it."""
    path.write_text(
        "".join(f"2026-01-01T10:00:{n:02d}.{tenths}Z {path.stem}{n}\n" for n in range(1, count + 1))
    )


def out_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line.rsplit(" ", 1)[-1] for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["-n", "2"], ["a14", "b14", "a15", "b15"]),
        (["--lines", "1"], ["a15", "b15"]),
        ([], [f"{name}{n}" for n in range(6, 16) for name in "ab"]),  # with --no-follow: whole
        (["--from-start", "-n", "1"], [f"{name}{n}" for n in range(1, 16) for name in "ab"]),
        (["-n", "0"], []),
    ],
)
def test_lines_are_the_last_of_each_file_merged_by_time(
    tmp_path: Path, options: list[str], expected: list[str]
) -> None:
    """-n N: the last N lines of each file, merged by time; --from-start wins over it."""
    numbered(tmp_path / "a.log", 15, 1)
    numbered(tmp_path / "b.log", 15, 5)
    if not options:  # no -n and --no-follow: whole files (SPEC §2)
        expected = [f"{name}{n}" for n in range(1, 16) for name in "ab"]
    result = run("tail", "--no-follow", *options, "a.log", "b.log", cwd=tmp_path)
    assert out_lines(result) == expected


def test_a_follow_begins_with_the_last_ten_lines(tmp_path: Path) -> None:
    """Without -n, a follow shows each file's last 10 lines first, like tail; | head ends it."""
    numbered(tmp_path / "a.log", 15, 1)
    with subprocess.Popen(
        [*AGGREGATOR, "tail", "a.log"], cwd=tmp_path, stdout=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        first = [proc.stdout.readline().decode().split()[-1] for _ in range(10)]
        proc.stdout.close()
        assert proc.wait(timeout=DEADLINE) == 0
    assert first == [f"a{n}" for n in range(6, 16)]


async def test_what_files_hold_at_start_is_written_at_once(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """`tail -n 1 a.log b.log c.log`: the three last lines, merged by time, come together, not
    the second and third one idle_timeout (1 s) after the first, when the files went quiet."""
    for index, name in enumerate("cab"):  # c's line is the oldest, then a's, then b's
        (tmp_path / f"{name}.log").write_text(f"2020-01-01T10:00:0{index}.5Z {name}1\n")
    cli = await start_cli("tail", "-n", "1", "a.log", "b.log", "c.log", cwd=tmp_path)
    cli_processes.append(cli)
    clock = asyncio.get_running_loop().time
    await cli.wait_for(lambda: len(cli.out) >= 1, "a first line")
    first = clock()  # after the start-up, whose time (imports, a busy box) is not judged here
    await cli.wait_for(lambda: len(cli.out) >= 3, "three lines")
    assert clock() - first < 0.5  # generous: they are written together
    assert [line.split()[-1] for line in cli.out] == ["c1", "a1", "b1"]
    assert await cli.stop() == 0


def test_head_ends_a_quiet_follow_at_once(tmp_path: Path) -> None:
    """When stdout's reader goes away, a follow that gets no new line exits 0 at once."""
    (tmp_path / "quiet.log").write_text("2026-01-01T10:00:00Z only line\n")
    with subprocess.Popen(
        [*AGGREGATOR, "tail", "quiet.log"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        assert b"only line" in proc.stdout.readline()
        proc.stdout.close()  # as head does after its lines; the file stays quiet
        assert proc.wait(timeout=DEADLINE) == 0
        assert b"Traceback" not in proc.stderr.read()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--level", "warn"], ["warn", "error"]),
        (["--grep", "dis[ck]"], ["disk"]),
        (["--source-filter", "b*"], ["ok", "error"]),
        (["--source-filter", "x*,a*"], ["warn", "disk"]),
        (["--level", "error", "--source-filter", "a*"], []),
    ],
)
def test_filters(tmp_path: Path, options: list[str], expected: list[str]) -> None:
    """--level (a minimum), --grep (a regular expression) and --source-filter (globs)."""
    (tmp_path / "a.log").write_text(
        "2026-01-01T10:00:01Z WARN warn\n2026-01-01T10:00:03Z INFO disk\n"
    )
    (tmp_path / "b.log").write_text(
        "2026-01-01T10:00:02Z INFO ok\n2026-01-01T10:00:04Z ERROR error\n"
    )
    result = run("tail", "--no-follow", *options, "a.log", "b.log", cwd=tmp_path)
    assert out_lines(result) == expected


def test_filters_apply_to_the_output_file_too(tmp_path: Path) -> None:
    """-o FILE gets what stdout gets."""
    (tmp_path / "a.log").write_text("2026-01-01T10:00:01Z INFO a\n2026-01-01T10:00:02Z ERROR b\n")
    result = run(
        "tail", "--no-follow", "--level", "error", "--format", "json", "-o", "out.json",
        "a.log", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = (tmp_path / "out.json").read_text().splitlines()
    assert [orjson.loads(line)["line"] for line in saved] == ["2026-01-01T10:00:02Z ERROR b"]


@pytest.mark.parametrize(
    ("colour", "coloured"), [("always", True), ("never", False), ("auto", False)]
)
def test_color_option_in_a_pipe(tmp_path: Path, colour: str, coloured: bool) -> None:
    """--color always colours even a pipe (sources, and error lines red); never and auto
    (in a pipe) do not."""
    (tmp_path / "a.log").write_text("2026-01-01T10:00:01Z ERROR bad\n")
    result = run("tail", "--no-follow", "--color", colour, "a.log", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("\x1b[31m2026-01-01T10:00:01Z ERROR bad\x1b[0m" in result.stdout) is coloured
    assert ("\x1b[" in result.stdout) is coloured


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--order-window", "5x", "a.log"],
         'aggregator tail: --order-window: expected a duration such as "250ms", "1s" or "5m", '
         'got "5x"'),
        (["-n", "-1", "a.log"], "aggregator tail: -n/--lines: expected a number of lines"),
        (["--grep", "(", "a.log"], "aggregator tail: --grep: expected a regular expression"),
        (["--ws", "8765", "a.log"], "aggregator tail: --ws: expected HOST:PORT"),
        (["tcp://5170"], "aggregator tail: tcp://5170: expected tcp://HOST:PORT"),
        (["--source", "oops", "a.log"], "aggregator tail: --source: expected NAME=TARGET"),
        ([], "aggregator tail: no TARGET given"),
    ],
)  # fmt: skip
def test_errors_name_the_option(tmp_path: Path, args: list[str], message: str) -> None:
    """A bad option value is reported with the option's name, never a config key; exit 2."""
    result = run("tail", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert "aggregator.order_window" not in result.stderr


def test_a_public_ws_without_a_token_says_what_to_type(tmp_path: Path) -> None:
    """--ws 0.0.0.0:PORT with no token: exit 2, naming AGGREGATOR_TOKEN and the flag."""
    result = run("tail", "--ws", "0.0.0.0:8765", "a.log", cwd=tmp_path,
                 env={"AGGREGATOR_TOKEN": ""})  # fmt: skip
    assert result.returncode == 2
    assert "--ws 0.0.0.0:8765" in result.stderr
    assert "AGGREGATOR_TOKEN" in result.stderr and "--ws-allow-anonymous" in result.stderr
    assert "auth_token" not in result.stderr and "allow_anonymous =" not in result.stderr


def test_every_option_s_help_shows_its_default(tmp_path: Path) -> None:
    """tail --help: each option's help says its default."""
    result = run("tail", "--help", cwd=tmp_path)
    assert result.returncode == 0
    options = result.stdout.split("options:", 1)[1]
    entries = re.split(r"\n  (?=-)", options)[1:]
    assert len(entries) >= 16
    for entry in entries:
        if entry.startswith("-h"):
            continue
        assert "(default" in " ".join(entry.split()), entry


def test_check_finds_what_run_would_refuse(tmp_path: Path) -> None:
    """check names a missing TLS file and an unwritable state dir (exit 2), and says how many
    files each glob matches now."""
    (tmp_path / "logs").mkdir()
    for name in ("a.log", "b.log"):
        (tmp_path / "logs" / name).write_text("x\n")
    (tmp_path / "blocker").write_text("")
    config = tmp_path / "c.toml"
    config.write_text(
        '[aggregator]\nstate_dir = "blocker/state"\n'
        '[sources.app]\ntype = "file"\npaths = ["logs/*.log", "none/*.log"]\n'
        '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\n'
        'tls = { cert = "missing.pem", key = "missing.key" }\n'
        '[sinks.out]\ntype = "stdout"\n'
    )
    result = run("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "  logs/*.log: 2 files now" in result.stdout
    assert "  none/*.log: no file now (followed once one appears)" in result.stdout
    errors = result.stderr.splitlines()
    assert f"{config}: sources.net.tls.cert: cannot read missing.pem: no such file" in errors
    assert f"{config}: sources.net.tls.key: cannot read missing.key: no such file" in errors
    assert any(line.startswith(f"{config}: aggregator.state_dir: cannot write") for line in errors)


def test_run_says_what_it_follows_and_names_a_missing_certificate(tmp_path: Path) -> None:
    """run: the files of each source on stderr at start; a TLS file it cannot load named."""
    (tmp_path / "a.log").write_text("x\n")
    config = tmp_path / "c.toml"
    config.write_text(
        '[sources.app]\ntype = "file"\npaths = ["*.log"]\nfollow = false\n'
        '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\n'
        'tls = { cert = "missing.pem", key = "missing.key" }\n'
        '[sinks.out]\ntype = "stdout"\n'
    )
    result = run("run", "-c", str(config), cwd=tmp_path)
    assert "source app: following 1 file: a.log" in result.stderr
    assert result.returncode == 1
    assert "sources.net.tls: cannot load the certificate missing.pem" in result.stderr


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        (["--version"], ["pydantic", "websockets", "aggregator.config", "asyncio"]),
        (["tail", "--no-follow", "--from-start", "one.log"],
         ["pydantic", "websockets", "ctypes", "aggregator.sources.file.watch",
          "aggregator.sources.file.inotify", "aggregator.web.server", "tomllib", "re2",
          "httpx", "nats", "shutil", "difflib", "aggregator.reload", "orjson", "json",
          "datetime", "calendar", "hashlib"]),
        (["run", "-c", "one.toml"],
         ["websockets", "re2", "httpx", "nats", "aggregator.web.server",
          "aggregator.config.diff", "hashlib"]),
    ],
)  # fmt: skip
def test_a_command_imports_only_what_it_needs(
    tmp_path: Path, args: list[str], absent: list[str]
) -> None:
    """--version loads no config code; tail no pydantic, no websockets, no TOML, no JSON
    library for text lines; neither shutil (argparse's help width) nor what a sink or
    source not used needs; run no config differ until a reload (#17, #27)."""
    (tmp_path / "one.log").write_text("2026-01-01T10:00:00Z one\n")
    (tmp_path / "one.toml").write_text(
        '[sources.app]\ntype = "file"\npaths = ["one.log"]\nfollow = false\n'
        'start_at = "beginning"\n[sinks.out]\ntype = "stdout"\n'
    )
    # -S: no site, whose .pth hooks import what they like before the program's first line (a
    # machine's certifi hook imports shutil); the paths it would add are given instead.
    paths = [str(Path(__file__).parents[1]), *(path for path in sys.path if Path(path).is_dir())]
    result = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-m", "aggregator", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    for name in absent:
        assert not any(module == name or module.startswith(f"{name}.") for module in imported)


def test_a_trace_cut_by_n_keeps_its_error_s_time(tmp_path: Path) -> None:
    """-n 2 starting inside a trace: its lines take the time of the error before the start,
    not the time they were read."""
    (tmp_path / "app.log").write_text(
        "2026-01-01T10:00:00Z ERROR boom\nTraceback (most recent call last):\n"
        '  File "x.py", line 1\nValueError: boom\n'
    )
    result = run("tail", "--no-follow", "-n", "2", "--format", "json", "app.log", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stamps = [orjson.loads(line)["ts"] for line in result.stdout.splitlines()]
    assert stamps == ["2026-01-01T10:00:00.000000Z"] * 2


async def test_head_ends_a_quiet_connect_at_once(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """connect | head: once the reader has its line and goes, connect exits 0 at once, though
    no new record comes."""
    (tmp_path / "a.log").write_text("2026-01-01T10:00:00Z replayed\n")
    server = await start_cli("tail", "a.log", "--ws", "127.0.0.1:0", cwd=tmp_path)
    cli_processes.append(server)
    host, port = await server.serving()
    await server.wait_for_out("replayed")
    with subprocess.Popen(
        [*AGGREGATOR, "connect", f"http://{host}:{port}", "--replay", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert b"replayed" in line
        proc.stdout.close()
        assert await asyncio.to_thread(proc.wait, DEADLINE) == 0
    assert await server.stop() == 0


async def test_an_output_device_is_written_but_never_synced(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """-o /dev/null: a device cannot be fsynced (EINVAL); the file sink must not take that for
    a failed write and hold the pipeline, so a quiet stream still stops at once on SIGTERM."""
    log = tmp_path / "a.log"
    log.write_text("")
    cli = await start_cli("tail", "-n", "0", "-o", os.devnull, str(log), cwd=tmp_path)
    cli_processes.append(cli)
    await follow_synced(cli, log, "written")
    # The stream stays quiet past the sink's fsync interval: no complaint may come.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.5):
            await cli.wait_for(lambda: any(os.devnull in line for line in cli.err), "a complaint")
    assert await cli.stop() == 0, cli.err
    assert not any(os.devnull in line for line in cli.err), cli.err


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_times_beyond_the_calendar_are_written_not_fatal(tmp_path: Path, fmt: str) -> None:
    """Hostile lines whose ``ts`` lies far outside the years 1 to 9999 (SPEC §9) go out with
    the rest, each once; the command does not fail on them."""
    lines = ['{"ts":"0001-01-01T00:00:00Z","msg":"a"}', '{"ts":-9e18,"msg":"b"}',
             '{"ts":-1e30,"msg":"c"}', '{"ts":-70000000000,"msg":"d"}', "plain e"]  # fmt: skip
    (tmp_path / "a.log").write_text("".join(f"{line}\n" for line in lines))
    result = run("tail", "--no-follow", "--from-start", "--format", fmt, "a.log", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert len(out) == len(lines)
    if fmt == "json":
        assert sorted(orjson.loads(line)["line"] for line in out) == sorted(lines)
