"""Kubernetes end to end: a node's container log files read with the CLI as a DaemonSet reads
them (SPEC §3 "Kubernetes"): messages without the runtime's wrapper, partial lines joined,
the pod known from the path, a source's fields added."""

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import DEADLINE, Cli, start_cli

ID = "0123456789abcdef" * 4


def write_pod_log(root: Path, pod: str, namespace: str, container: str, lines: list[str]) -> Path:
    directory = root / "var/log/containers"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{pod}_{namespace}_{container}-{ID}.log"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def tail(*args: str, cwd: Path, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "tail", "--no-follow", "--format", "json", *args],
        cwd=cwd, capture_output=True, timeout=DEADLINE * 2, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def run_pods(root: Path, log: Path, settings: str, **env: str) -> list[dict[str, Any]]:
    """``aggregator run`` of one file source ``pods`` over ``log``'s directory, with
    ``settings`` (TOML lines) and ``env``, into a JSON file: its records."""
    out, config = root / "out.json", root / "c.toml"
    config.write_text(
        f'[aggregator]\nstate_dir = "{root / "state"}"\n'
        f'[sources.pods]\ntype = "file"\npaths = ["{log.parent}/*.log"]\n'
        f'start_at = "beginning"\nfollow = false\n{settings}'
        f'[sinks.out]\ntype = "file"\npath = "{out}"\nformat = "json"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "run", "-c", str(config)],
        cwd=root, capture_output=True, timeout=DEADLINE * 2, env={**os.environ, **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def test_cri_files_read_through_with_partials_joined(tmp_path: Path) -> None:
    """``tail --no-follow`` over CRI files: lines without the wrapper, partials joined, merged
    by the runtime's time across pods, levels and fields from JSON messages, pod fields."""
    write_pod_log(
        tmp_path, "web-1", "shop", "app",
        [
            "2026-12-05T10:00:00.100000000Z stdout F started",
            "2026-12-05T10:00:00.300000000Z stdout P a long ",
            "2026-12-05T10:00:00.300000001Z stdout P line in ",
            "2026-12-05T10:00:00.300000002Z stdout F three pieces",
            '2026-12-05T10:00:00.500000000Z stderr F {"level": "error", "msg": "boom", "code": 7}',
        ],
    )  # fmt: skip
    db = [
        "2026-12-05T10:00:00.200000000Z stdout F ready",
        "2026-12-05T10:00:00.400000000Z stdout P tail",
    ]
    write_pod_log(tmp_path, "db-0", "data", "postgres", db)
    records = tail("var/log/containers/*.log", cwd=tmp_path)
    assert [r["line"] for r in records] == [
        "started",
        "ready",
        "a long line in three pieces",  # at its first piece's time
        "tail",  # a partial at the end of the file, given as it is
        '{"level": "error", "msg": "boom", "code": 7}',
    ]
    assert [r["ts"] for r in records] == [f"2026-12-05T10:00:00.{n}00000Z" for n in range(1, 6)]
    error = records[4]
    assert error["level"] == "error"
    assert error["fields"] == {
        "msg": "boom",
        "code": 7,
        "stream": "stderr",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "web-1",
        "k8s.container.name": "app",
        "container.id": ID,
    }
    assert records[1]["fields"]["k8s.pod.name"] == "db-0"


def test_docker_json_files_with_a_config_and_fields(tmp_path: Path) -> None:
    """docker json-file logs through ``run`` with codec docker and ``fields`` from ``${VAR}``:
    each record has its message, stream, the file's pod and the source's fields."""
    log = tmp_path / "var/log/containers" / f"api-5_prod_server-{ID}.log"
    log.parent.mkdir(parents=True)
    entries = [
        {"log": "GET / 200\n", "stream": "stdout", "time": "2026-12-05T10:00:00.000001999Z"},
        {"log": "x" * 10, "stream": "stdout", "time": "2026-12-05T10:00:01Z"},
        {"log": "y" * 10 + "\n", "stream": "stdout", "time": "2026-12-05T10:00:02Z"},
    ]
    log.write_bytes(b"".join(orjson.dumps(entry) + b"\n" for entry in entries))
    records = run_pods(
        tmp_path,
        log,
        'codec = "docker"\nmax_line_bytes = 15\n'
        'fields = { node = "${NODE_NAME}", cluster = "eu-1" }\n',
        NODE_NAME="worker-3",
    )
    assert [r["line"] for r in records] == ["GET / 200", "x" * 10 + "y" * 5]
    assert records[0]["ts"] == "2026-12-05T10:00:00.000001Z"  # nanoseconds cut
    assert records[1].get("truncated") is True
    assert records[0]["fields"] == {
        "stream": "stdout",
        "k8s.namespace.name": "prod",
        "k8s.pod.name": "api-5",
        "k8s.container.name": "server",
        "container.id": ID,
        "node": "worker-3",
        "cluster": "eu-1",
    }


def test_a_java_stack_trace_in_cri_lines_is_one_record(tmp_path: Path) -> None:
    """``run`` over a CRI file with ``multiline`` configured (codec ``auto``): a stack trace
    the container wrote as several lines (one split by the runtime into P and F) is one
    record, at its first line's runtime time, with its level, stream and pod fields."""
    trace = [
        "2026-12-05 10:00:00.100 ERROR [main] c.s.Api - request failed",
        "java.lang.IllegalStateException: cart is empty",
        "\tat com.shop.Cart.checkout(Cart.java:42)",
        "\tat com.shop.Api.post(Api.java:7)",
    ]
    lines = [f"2026-12-05T10:00:00.{n}00000000Z stdout F {line}" for n, line in enumerate(trace)]
    lines[2:3] = [  # the runtime split this one
        "2026-12-05T10:00:00.200000000Z stdout P \tat com.shop.Cart",
        "2026-12-05T10:00:00.200000001Z stdout F .checkout(Cart.java:42)",
    ]
    lines.append("2026-12-05T10:00:01.000000000Z stdout F 2026-12-05 10:00:01.000 INFO [main] ok")
    log = write_pod_log(tmp_path, "shop-7", "prod", "api", lines)
    records = run_pods(tmp_path, log, "multiline = { start = '^\\d{4}-\\d\\d-\\d\\d ' }\n")
    assert [r["line"] for r in records] == [
        "\n".join(trace),
        "2026-12-05 10:00:01.000 INFO [main] ok",
    ]
    first = records[0]
    assert (first["ts"], first["level"]) == ("2026-12-05T10:00:00.000000Z", "error")
    assert first["fields"]["stream"] == "stdout"
    assert first["fields"]["k8s.pod.name"] == "shop-7"


async def test_kubelet_rotation_under_the_symlink(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """The kubelet's rotation: /var/log/containers/X.log links to pods/…/0.log, which is
    renamed to 0.log.TIMESTAMP and made anew. Followed through the symlink, every line of
    both files arrives once, in order, with the pod's fields from the link's name."""
    uid = "7d1c3c64-2b6f-4f0e-9b2e-1234567890ab"
    pod_dir = tmp_path / f"var/log/pods/shop_web-1_{uid}/app"
    pod_dir.mkdir(parents=True)
    current = pod_dir / "0.log"
    current.write_text("")
    link = tmp_path / "var/log/containers" / f"web-1_shop_app-{ID}.log"
    link.parent.mkdir(parents=True)
    link.symlink_to(current)

    def write(path: Path, start: int, count: int) -> None:
        with path.open("a") as file:
            for n in range(start, start + count):
                file.write(f"2026-12-05T10:00:{n // 100:02d}.{n % 100:02d}0000000Z stdout F m{n}\n")

    cli = await start_cli(
        "tail", "--format", "json", "-n", "0", "var/log/containers/*.log", cwd=tmp_path
    )
    cli_processes.append(cli)
    async with asyncio.timeout(DEADLINE):  # the tail starts at the end: write until it shows
        while not any('"sync"' in line for line in cli.out):
            with current.open("a") as file:
                file.write("2026-12-05T09:00:00.000000000Z stdout F sync\n")
            with contextlib.suppress(AssertionError, TimeoutError):
                async with asyncio.timeout(0.2):
                    await cli.wait_for_out('"sync"')
    write(current, 0, 50)
    await cli.wait_for_out('"m49"')
    current.rename(pod_dir / "0.log.20261205-100000")
    write(pod_dir / "0.log.20261205-100000", 50, 10)  # the runtime writes on until it reopens
    write(current, 60, 40)
    await cli.wait_for_out('"m99"')
    records = [orjson.loads(line) for line in cli.out]
    lines = [r["line"] for r in records if r["line"].startswith("m")]
    assert lines == [f"m{n}" for n in range(100)]
    assert all(r["fields"]["k8s.pod.name"] == "web-1" for r in records)
    assert await cli.stop() == 0
