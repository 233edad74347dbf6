"""Reload by diff, end to end as a subprocess (SPEC §8, issue #28): SIGHUP and --watch-config
apply a new config part by part while writers append throughout, and an invalid one changes
nothing."""

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.conftest import Cli, start_cli, wait_until
from tests.helpers.web import Subscription, http_get

pytestmark = pytest.mark.slow


def config_text(tmp_path: Path, version: int) -> str:
    """v1: files keep, a, b; tcp net (max 1 connection); stdout with no filter; websocket live.
    v2: a changed (max_line_bytes), b removed, c added, net's max_connections 2 only, stdout's
    filter changed (info and above), live as it was."""

    def file_source(name: str, extra: str = "") -> str:
        return (
            f'[sources.{name}]\ntype = "file"\npaths = ["{tmp_path / name}.log"]\n'
            f'start_at = "beginning"\ncodec = "json"\n{extra}'
        )

    sources = [file_source("keep"), file_source("a", 'max_line_bytes = "2MiB"\n' * (version - 1))]
    sources.append(file_source("b") if version == 1 else file_source("c"))
    sources.append(
        '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "json"\n'
        f"max_connections = {version}\n"
    )
    stdout_filter = 'filter = { level = "info" }\n' if version == 2 else ""
    return (
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\norder_window = "100ms"\n'
        'idle_timeout = "200ms"\ncheckpoint_interval = "200ms"\n'
        + "".join(sources)
        + f'[sinks.out]\ntype = "stdout"\nformat = "json"\n{stdout_filter}'
        + '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\nreplay = 100000\n'
    )


def line(writer: str, n: int, level: str) -> str:
    return orjson.dumps({"ts": _now(), "level": level, "w": writer, "n": n}).decode()


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


class Writers:
    """Appends to files and a TCP connection every few ms: every 5th line debug, else info."""

    def __init__(self) -> None:
        self.written: dict[str, list[tuple[int, str]]] = {}
        self.stopped: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start_file(self, name: str, path: Path) -> None:
        def append(text: str) -> None:
            with path.open("a") as file:
                file.write(text + "\n")

        self._start(name, append)

    def start_tcp(self, name: str, writer: asyncio.StreamWriter) -> None:
        self._start(name, lambda text: writer.write(text.encode() + b"\n"))

    def _start(self, name: str, write: Callable[[str], None]) -> None:
        self.written[name] = []
        self._tasks[name] = asyncio.create_task(self._run(name, write), name=f"test:write:{name}")

    async def _run(self, name: str, write: Callable[[str], None]) -> None:
        n = 0
        while name not in self.stopped:
            level = "debug" if n % 5 == 4 else "info"
            write(line(name, n, level))
            self.written[name].append((n, level))
            n += 1
            await asyncio.sleep(0.005)

    async def stop(self, *names: str) -> None:
        """Stop the writers ``names`` (all by default) after the line they are writing."""
        names = names or tuple(self.written)
        self.stopped.update(names)
        await asyncio.gather(*(self._tasks[name] for name in names))


def numbers(records: list[dict[str, Any]], writer: str) -> list[int]:
    """The ``n`` of each record of ``writer``, in the order received."""
    found = []
    for record in records:
        fields = record.get("fields") or {}
        if fields.get("w") == writer:
            found.append(fields["n"])
    return found


def stdout_records(cli: Cli) -> list[dict[str, Any]]:
    return [orjson.loads(text) for text in cli.out if text.startswith("{")]


def metric(url: str, name: str) -> str:
    _, _, body = http_get(url)
    return "\n".join(text for text in body.splitlines() if text.startswith(name))


async def test_a_reload_changes_parts_by_name_and_loses_nothing(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """With writers appending throughout: a file source changed (replaced, resumed from its
    checkpoints), one removed, one added, a tcp source's max_connections changed in place (its
    connection kept), a stdout filter changed, a websocket subscriber untouched (no gap, seq
    goes on); every line once, in order; then an invalid config changes nothing."""
    for name in ("keep", "a", "b", "c"):
        (tmp_path / f"{name}.log").touch()
    config = tmp_path / "c.toml"
    config.write_text(config_text(tmp_path, 1))
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    tcp = await cli.listening("tcp")
    host, port = await cli.serving()
    metrics = f"http://{host}:{port}/metrics"
    writers = Writers()
    async with connect(f"ws://{host}:{port}/ws?replay=0") as connection:
        live = Subscription(connection)
        hello = orjson.loads(await connection.recv())
        assert "hello" in hello
        _, sender = await asyncio.open_connection(*tcp)
        for name in ("keep", "a", "b", "c"):
            writers.start_file(name, tmp_path / f"{name}.log")
        writers.start_tcp("net", sender)

        def seen(writer: str, count: int) -> Callable[[], bool]:
            return lambda: len(numbers(live.records, writer)) >= count

        for name in ("keep", "a", "b", "net"):
            await live.receive_until(seen(name, 20), f"20 lines of {name}")
        # max_connections = 1: a second sender is refused now.
        await _refused_or_accepted(tcp, cli, expect_refused=True)
        await writers.stop("b")  # b's last lines come before it is removed
        await live.receive_until(
            lambda: numbers(live.records, "b") == [n for n, _ in writers.written["b"]],
            "every line of b",
        )

        config.write_text(config_text(tmp_path, 2))
        cli.proc.send_signal(signal.SIGHUP)
        await cli.wait_for(lambda: any("reloaded:" in text for text in cli.err), "the reload")
        switched = {name: len(lines) for name, lines in writers.written.items()}
        [said] = [text for text in cli.err if "reloaded:" in text]
        assert "started source c" in said
        assert "replaced source a, sink out" in said
        assert "changed in place source net" in said
        assert "stopped source b" in said
        assert "keep" not in said and "live" not in said
        # After the reload: net takes a second connection now; more of every line comes.
        await _refused_or_accepted(tcp, cli, expect_refused=False)
        marks = {name: len(writers.written[name]) for name in ("keep", "a", "c", "net")}
        for name, count in marks.items():
            await live.receive_until(seen(name, count + 20), f"{name} going on after the reload")
        # The rates frames (the page's plot) follow the sources: c in, b out.
        since = len(live.rates)
        await live.receive_until(lambda: len(live.rates) > since + 1, "two rates frames")
        assert {"keep", "a", "c", "net"} == set(live.rates[-1]["rates"]), live.rates[-1]

        # An invalid config: refused with every error, nothing changes.
        config.write_text(config_text(tmp_path, 2).replace("max_connections", "max_conections"))
        cli.proc.send_signal(signal.SIGHUP)
        await cli.wait_for(lambda: any("reload refused" in text for text in cli.err), "refusal")
        assert any(
            "sources.net.max_conections: unknown key (did you mean max_connections?)" in text
            for text in cli.err
        )
        marks = {name: len(writers.written[name]) for name in ("keep", "a", "c", "net")}
        for name, count in marks.items():
            await live.receive_until(seen(name, count + 10), f"{name} going on after a refusal")
        await writers.stop()
        for name in ("keep", "a", "c", "net"):
            await live.receive_until(
                lambda name=name: (
                    numbers(live.records, name)  # type: ignore[misc]
                    == [n for n, _ in writers.written[name]]
                ),
                f"every line of {name}",
            )
        assert live.notices("gap") == [] and live.notices("dropped") == []
        seqs = [record["seq"] for record in live.records]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one subscriber, no gap
        reloads = metric(metrics, "aggregator_reloads_total")
        assert 'aggregator_reloads_total{result="ok"} 1' in reloads
        assert 'aggregator_reloads_total{result="refused"} 1' in reloads
        assert metric(metrics, "aggregator_last_reload_successful") == (
            "aggregator_last_reload_successful 0"
        )
        sender.close()
    assert await cli.stop() == 0
    # stdout: every line once, in order; after the reload (the new filter) no debug lines.
    out = stdout_records(cli)
    for name in ("keep", "a", "net"):
        got = numbers(out, name)
        assert got == sorted(set(got)), f"{name}: repeated or out of order"
        info = [n for n, level in writers.written[name] if level == "info"]
        assert set(info) <= set(got), f"{name}: lost {sorted(set(info) - set(got))[:5]}"
        debug_after = [n for n in got if n >= switched[name] and n % 5 == 4]
        assert debug_after == [], f"{name}: debug lines passed the new filter"
    assert numbers(out, "b") == [n for n, _ in writers.written["b"]]
    assert numbers(out, "c") == [n for n, level in writers.written["c"] if level == "info"]


async def _refused_or_accepted(tcp: tuple[str, int], cli: Cli, *, expect_refused: bool) -> None:
    """Connect a second sender: refused at max_connections (said on stderr), or kept open."""
    said = "sources.net: refused"
    before = sum(said in text for text in cli.err)
    reader, writer = await asyncio.open_connection(*tcp)
    try:
        if expect_refused:
            await cli.wait_for(lambda: sum(said in text for text in cli.err) > before, said)
            return
        try:
            async with asyncio.timeout(0.5):
                data: bytes | None = await reader.read(1)
        except TimeoutError:
            data = None  # still open: accepted
        assert data is None, "the second sender was refused after the reload"
        assert sum(said in text for text in cli.err) == before
    finally:
        writer.close()


async def test_watch_config_reloads_once_when_the_file_changes(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """--watch-config: an editor's save (write a new file, rename it over the old) reloads
    once, debounced; a save that leaves the content as it was does not reload."""
    log = tmp_path / "x.log"
    log.touch()
    config = tmp_path / "c.toml"
    body = (
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[sources.x]\ntype = "file"\npaths = ["{log}"]\n'
        '[sinks.out]\ntype = "stdout"\nformat = "json"\n'
    )
    config.write_text(body)
    cli = await start_cli("run", "-c", str(config), "--watch-config", cwd=tmp_path)
    cli_processes.append(cli)
    await cli.wait_for(lambda: any("watching" in text for text in cli.err), "the watch")
    saved = tmp_path / ".c.toml.swp"
    saved.write_text(body + '[sinks.more]\ntype = "file"\npath = "more.log"\n')
    saved.rename(config)
    await cli.wait_for(lambda: any("reloaded:" in text for text in cli.err), "the reload")
    assert [text for text in cli.err if "reloaded:" in text] == [
        "aggregator: INFO: reloaded: started sink more"
    ]
    log.write_text('{"ts": "2026-11-25T10:00:00Z", "msg": "after"}\n')
    await wait_until(lambda: b"after" in (tmp_path / "more.log").read_bytes(), "the new sink")
    config.write_text(config.read_text())  # the same content again: nothing to reload
    config.write_text(config.read_text().replace("more.log", "other.log"))
    await cli.wait_for(
        lambda: sum("reloaded:" in text for text in cli.err) == 2, "the second reload"
    )
    assert [text for text in cli.err if "reloaded:" in text][1].endswith("replaced sink more")
    assert await cli.stop() == 0
    assert sum("reloaded:" in text for text in cli.err) == 2


async def test_a_reload_that_cannot_apply_is_refused_and_changes_nothing(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """A new state_dir is refused naming the key; a new source whose port is taken is refused
    with the bind error (what run would say at start); the running pipeline goes on as it
    was, the same listener taking lines."""
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    busy = taken.sockets[0].getsockname()[1]
    config = tmp_path / "c.toml"
    body = (
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\n'
        '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:0"\ncodec = "raw"\n'
        '[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
    )
    config.write_text(body)
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    tcp = await cli.listening("tcp")
    _, sender = await asyncio.open_connection(*tcp)
    sender.write(b"before\n")
    await cli.wait_for_out("before")

    async def refused(text: str, reason: str) -> None:
        count = sum("reload refused" in line for line in cli.err)
        config.write_text(text)
        cli.proc.send_signal(signal.SIGHUP)
        await cli.wait_for(lambda: sum("reload refused" in t for t in cli.err) > count, reason)
        assert any(reason in line for line in cli.err), cli.err[-5:]

    await refused(
        body.replace(str(tmp_path / "state"), str(tmp_path / "elsewhere")),
        "aggregator.state_dir: cannot change while running",
    )
    await refused(
        body + f'[sources.more]\ntype = "tcp"\nlisten = "127.0.0.1:{busy}"\n',
        f"sources.more: cannot listen on 127.0.0.1:{busy}",
    )
    sender.write(b"after\n")  # the same connection, the same listener
    await cli.wait_for_out("after")
    assert not any("reloaded:" in line for line in cli.err)
    sender.close()
    taken.close()
    assert await cli.stop() == 0
    assert cli.out == ["before", "after"]
