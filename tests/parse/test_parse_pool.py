"""Parsing in worker processes: the same records as parsing on the loop, in order, and
nothing lost when a worker dies or the user presses Ctrl-C."""

import asyncio
import fcntl
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import orjson
import pytest

from aggregator.config import LineSourceConfig
from aggregator.parse.decode import Decoding
from aggregator.parse.pool import JOBS_PER_WORKER, POOL_MIN_BYTES, ParsePool, worker_command
from aggregator.parse.worker import HEADER_BYTES, CodecSpec, answer_of, parse_region
from aggregator.record.formats import encode_json
from aggregator.record.record import Record
from tests.conftest import DEADLINE, follow_synced, start_cli, wait_until

SPEC = CodecSpec("auto", None, "auto", None, "everything")
YEAR_2001 = 978_307_200_000_000  # µs: every time in the test data is before it


def stamp_of(index: int) -> str:
    return f"2000-01-01T10:{index // 60 % 60:02d}:{index % 60:02d}.{index % 1000:03d}Z"


def mixed_region(count: int, seed: int = 0) -> bytes:
    """Whole lines (no final newline) of every kind a region can hold."""
    lines = []
    for index in range(seed, seed + count):
        stamp = stamp_of(index)
        lines += [
            orjson.dumps({"ts": stamp, "level": "warning", "n": index}),
            f"{stamp} ERROR text line {index}".encode(),
            f"no time, line {index}\r".encode(),
            b'{"ts": "broken',
            b"",
            "caf\u00e9 \xff".encode("latin-1"),  # invalid UTF-8
            b"x" * 300,  # over the limit below
        ]
    return b"\n".join(lines)


def timed_region(count: int, seed: int) -> bytes:
    """Whole lines that all carry their time, so that two runs give the same stream."""
    lines = []
    for index in range(seed, seed + count):
        stamp = stamp_of(index)
        lines += [
            orjson.dumps({"ts": stamp, "level": "warning", "n": index}),
            f"{stamp} ERROR text line {index}\r".encode(),
            f"ts={stamp} level=debug msg=logfmt".encode(),
            f"{stamp} caf\u00e9 ".encode("latin-1") + b"\xff",  # invalid UTF-8
            f"{stamp} {'x' * 300}".encode(),  # over the limit below
        ]
    return b"\n".join(lines)


def records_of(decoding: Decoding, records: list[Record]) -> list[tuple[object, ...]]:
    return [
        (r.ts, r.source, r.origin, r.line, r.level, r.fields, r.truncated, r.parse_error)
        for r in records
    ]


async def test_a_worker_parses_like_the_loop() -> None:
    """A region parsed in a worker gives the records parsing it on the loop gives."""
    config = LineSourceConfig(max_line_bytes=256)
    region = mixed_region(100)
    on_loop = Decoding("app", config)
    inline = on_loop.lane("a.log").feed(region + b"\n")
    pool = ParsePool(1)
    in_worker = Decoding("app", config, pool=pool)
    lane = in_worker.lane("a.log")
    try:
        await pool.start()
        parsed = await lane.decode(region + b"\n")
    finally:
        await pool.close()
    assert len(region) >= POOL_MIN_BYTES
    # Lines without a time of their own carry their read time: not compared.
    for record in inline + parsed:
        if record.ts >= YEAR_2001:
            record.ts = 0
    assert records_of(in_worker, parsed) == records_of(on_loop, inline)
    assert in_worker.truncated_lines == on_loop.truncated_lines == 100


@pytest.mark.parametrize("codec", ["auto", "json"])
def test_a_worker_s_json_tails_encode_as_a_full_parse(codec: str) -> None:
    """Asked for JSON only, a worker gives records that encode exactly as fully parsed
    ones: levels, fields, truncated lines, parse errors and late records included."""
    region = mixed_region(40)
    decoding = Decoding("app", LineSourceConfig(codec=codec))
    full, tails = (
        decoding.parsed_records("a.log", parse_region(spec, region, 256), 7)[0]
        for spec in (
            CodecSpec(codec, None, "auto", None),
            CodecSpec(codec, None, "auto", None, "json"),
        )
    )
    for seq, (parsed, tailed) in enumerate(zip(full, tails, strict=True)):
        parsed.seq = tailed.seq = seq
        parsed.late = tailed.late = seq % 3 == 0
    assert any(r.truncated for r in full) and any(r.parse_error for r in full) == (codec == "json")
    assert all(r.json_tail is not None for r in tails)
    assert encode_json(tails) == encode_json(full)


async def test_replies_come_back_to_the_region_that_asked() -> None:
    """Many regions in flight at once, each answered with what its own lines say."""
    pool = ParsePool(2)
    regions = [mixed_region(20, seed=100 * index) for index in range(12)]
    try:
        await pool.start()
        replies = await asyncio.gather(*(pool.parse(SPEC, region, 256) for region in regions))
    finally:
        await pool.close()
    assert replies == [parse_region(SPEC, region, 256) for region in regions]


async def test_a_dead_worker_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Killed with regions on their way and more waiting for room, a worker's regions are
    parsed on the loop, and the failure is reported once."""
    pool = ParsePool(1)
    region = mixed_region(40)
    try:
        await pool.start()
        pending = [
            asyncio.create_task(pool.parse(SPEC, region, 256)) for _ in range(JOBS_PER_WORKER + 4)
        ]
        os.kill(pool.pids[0], signal.SIGKILL)
        replies = await asyncio.gather(*pending, pool.parse(SPEC, region, 256))
    finally:
        await pool.close()
    expected = parse_region(SPEC, region, 256)
    assert all(reply == expected for reply in replies)
    assert pool.broken
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "parse worker failed" in failures[0].getMessage()


UNREADABLE_WORKER = """
import os
os.read(0, 1 << 16)  # a request
os.write(1, b"\\x00\\x00\\x00\\x04Rjunk" + b"more" * (1 << 18))  # and what no pickle reads
while os.read(0, 1 << 16):  # until the pool closes the pipe
    pass
"""


async def test_a_worker_that_cannot_be_read_is_left_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker whose replies cannot be read (another version of the package, say) fails
    over to the loop, and the pool still closes: the rest of what it writes is read unused,
    so that it can exit (the pool's close waited forever on its full pipe)."""
    pool = ParsePool(1, [sys.executable, "-c", UNREADABLE_WORKER])
    region = mixed_region(40)
    try:
        await pool.start()
        reply = await pool.parse(SPEC, region, 256)
    finally:
        async with asyncio.timeout(DEADLINE):
            await pool.close()
    assert reply == parse_region(SPEC, region, 256)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "UnpicklingError" in failures[0].getMessage()


async def test_a_worker_that_cannot_start_leaves_parsing_to_the_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No worker program (a broken install): the regions are parsed on the loop, once said."""
    pool = ParsePool(1, [str(tmp_path / "no-such-python")])
    region = mixed_region(40)
    try:
        replies = await asyncio.gather(*(pool.parse(SPEC, region, 256) for _ in range(3)))
    finally:
        await pool.close()
    assert replies == [parse_region(SPEC, region, 256)] * 3 and pool.broken
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "no-such-python" in failures[0].getMessage()


async def test_a_worker_runs_this_very_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another ``aggregator`` in the working directory and first on PYTHONPATH (a checkout,
    a version installed since) is not what a worker runs: its replies could not be read."""
    other = tmp_path / "aggregator"
    (other / "parse").mkdir(parents=True)
    (other / "__init__.py").write_text("")
    (other / "parse" / "__init__.py").write_text("")
    (other / "parse" / "worker.py").write_text(f"def serve(*_):\n    exec({UNREADABLE_WORKER!r})\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    pool = ParsePool(1)
    region = mixed_region(40)
    try:
        await pool.start()
        reply = await pool.parse(SPEC, region, 256)
    finally:
        await pool.close()
    assert reply == parse_region(SPEC, region, 256)
    assert not pool.broken and not [r for r in caplog.records if r.levelno == logging.ERROR]


def test_a_worker_imports_no_asyncio() -> None:
    """A worker loads only what parsing needs (no asyncio, config or websockets): it starts
    fast and stays small."""
    command = worker_command()
    check = command[-2].replace("serve(0, 1)", "print(sorted(set(sys.modules) & BIG))")
    big = "BIG = {'asyncio', 'pydantic', 'websockets', 'aggregator.config'}; "
    result = subprocess.run(
        [*command[:-2], big + check, command[-1]], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_tail_gives_the_same_stream_with_and_without_workers(tmp_path: Path) -> None:
    """The whole program, with ``parse_workers = 0`` and with workers: the same bytes."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.log").write_bytes(timed_region(600, seed=ord(name)) + b"\n")
    outputs = []
    for workers in (0, 2):
        config = tmp_path / f"workers-{workers}.toml"
        config.write_text(
            f'[aggregator]\nparse_workers = {workers}\nstate_dir = "state-{workers}"\n'
            '[sources.app]\ntype = "file"\npaths = ["*.log"]\nstart_at = "beginning"\n'
            "follow = false\nmax_line_bytes = 256\n"
            '[sinks.out]\ntype = "stdout"\nformat = "json"\n'
        )
        result = subprocess.run(
            [sys.executable, "-m", "aggregator", "run", "-c", config.name],
            cwd=tmp_path,
            capture_output=True,
            timeout=DEADLINE * 2,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert len(outputs[0].splitlines()) == 2 * 5 * 600
    assert outputs[0] == outputs[1]


def worker_pids(pid: int) -> list[int]:
    """The parse workers among the children of process ``pid``."""
    workers = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"aggregator.parse.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(int(child))
        except OSError:
            continue  # ended meanwhile
    return workers


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


CHILDREN_LISTED = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


@pytest.mark.skipif(not CHILDREN_LISTED, reason="finds the workers in /proc/PID/task/PID/children")
async def test_ctrl_c_stops_the_workers_quietly(tmp_path: Path) -> None:
    """Ctrl-C at a terminal signals the whole foreground process group; the workers are in
    a session of their own, and the main process stops them: no traceback, none left."""
    big = tmp_path / "big.log"
    big.write_bytes((mixed_region(3000) + b"\n") * 4)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aggregator", "tail", "--from-start", str(big),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        await wait_until(lambda: worker_pids(proc.pid), "a parse worker to start")
        workers = worker_pids(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.stderr is not None
        async with asyncio.timeout(DEADLINE):
            stderr = (await proc.stderr.read()).decode()
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    await wait_until(lambda: not any(map(alive, workers)), "the workers to end")


@pytest.mark.skipif(not CHILDREN_LISTED, reason="finds the workers in /proc/PID/task/PID/children")
async def test_a_live_only_run_starts_no_worker(tmp_path: Path) -> None:
    """Small reads are parsed on the loop: following a quiet file starts no process."""
    log = tmp_path / "app.log"
    log.write_text("")
    cli = await start_cli("tail", str(log), cwd=tmp_path)
    try:
        await follow_synced(cli, log, "hello")
        children = Path(f"/proc/{cli.proc.pid}/task/{cli.proc.pid}/children")
        assert children.read_text().split() == []
    finally:
        await cli.stop()


def unread_bytes(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
async def test_a_worker_stopped_mid_reply_loses_nothing() -> None:
    """Stopped and continued while blocked writing a reply (``kill -STOP``, a debugger or a
    profiler attaching, a frozen container), a worker's write returns short: every reply
    must still arrive whole (Python's buffered writer dropped the rest of it)."""
    region = mixed_region(400)
    count = 12
    request = pickle.dumps((SPEC, region, 256, "a.log"), protocol=5)
    requests = (len(request).to_bytes(4, "big") + request) * count
    expected = answer_of(parse_region(SPEC, region, 256))
    with subprocess.Popen(
        worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as worker:
        assert worker.stdin is not None and worker.stdout is not None
        sending = asyncio.create_task(asyncio.to_thread(worker.stdin.write, requests))
        try:
            replies = worker.stdout.fileno()
            for _ in range(3):
                await wait_until(
                    lambda: unread_bytes(replies) and process_state(worker.pid) == "S",
                    "the worker to block on its full pipe",
                )
                os.kill(worker.pid, signal.SIGSTOP)
                await wait_until(lambda: process_state(worker.pid) == "T", "the worker to stop")
                os.kill(worker.pid, signal.SIGCONT)
            for _ in range(count):
                header = worker.stdout.read(HEADER_BYTES)
                payload = worker.stdout.read(int.from_bytes(header[:4], "big"))
                assert header[4:] == b"R" and pickle.loads(payload) == expected
            await sending
        finally:
            worker.kill()
