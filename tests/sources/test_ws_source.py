"""The websocket source: another aggregator's stream, followed across the upstream's restart."""

from pathlib import Path

from tests.conftest import Cli, start_cli, wait_until
from tests.helpers.outputs import records_in


def upstream_config(tmp_path: Path, port: int, logs: Path) -> Path:
    path = tmp_path / "upstream.toml"
    path.write_text(
        f"""
[aggregator]
state_dir = "{tmp_path / "state-upstream"}"
checkpoint_interval = "100ms"

[sources.app]
type = "file"
paths = ["{logs}"]
start_at = "beginning"

[sinks.live]
type = "websocket"
listen = "127.0.0.1:{port}"
"""
    )
    return path


def central_config(tmp_path: Path, port: int, out: Path) -> Path:
    path = tmp_path / "central.toml"
    path.write_text(
        f"""
[aggregator]
state_dir = "{tmp_path / "state-central"}"

[sources.upstream]
type = "websocket"
url = "ws://127.0.0.1:{port}/ws?level=info"
node = "web-1"

[sinks.out]
type = "file"
path = "{out}"
format = "json"
fsync = "never"
"""
    )
    return path


def append(path: Path, start: int, count: int) -> None:
    with path.open("a") as file:
        file.writelines(f'{{"level":"info","msg":"m {n}"}}\n' for n in range(start, start + count))


async def test_websocket_source_follows_across_an_upstream_restart(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Records of an upstream reach the central with node, source and origin kept, and after
    the upstream restarts the central resumes with what the new run sends: nothing twice."""
    logs = tmp_path / "a.log"
    out = tmp_path / "central.json"
    # A port of the upstream's own (one chosen before it binds may be taken meanwhile); its
    # restart takes the same one, which the central follows.
    upstream = await start_cli("run", "-c", str(upstream_config(tmp_path, 0, logs)), cwd=tmp_path)
    cli_processes.append(upstream)
    _, port = await upstream.serving()
    central = await start_cli("run", "-c", str(central_config(tmp_path, port, out)), cwd=tmp_path)
    cli_processes.append(central)
    await central.wait_for(lambda: any("connected" in line for line in central.err), "connected")
    append(logs, 0, 50)
    await wait_until(lambda: len(records_in(out)) >= 50, "50 records at the central")
    assert await upstream.stop() == 0
    append(logs, 50, 50)  # written while the upstream is down: read from its checkpoint
    upstream = await start_cli(
        "run", "-c", str(upstream_config(tmp_path, port, logs)), cwd=tmp_path
    )
    cli_processes.append(upstream)
    await wait_until(lambda: len(records_in(out)) >= 100, "100 records at the central")
    append(logs, 100, 10)
    await wait_until(lambda: len(records_in(out)) >= 110, "110 records at the central")
    got = records_in(out)
    assert [r["fields"] for r in got] == [{"msg": f"m {n}"} for n in range(110)]
    assert {(r["node"], r["source"], r["origin"]) for r in got} == {("web-1", "app", str(logs))}
    assert any("the server restarted" in line for line in central.err)
    assert await central.stop() == 0
    assert await upstream.stop() == 0
