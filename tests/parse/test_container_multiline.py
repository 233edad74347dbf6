"""Multiline joining of a container's messages (SPEC §3 "Kubernetes"): a stack trace a program
writes as several lines, each wrapped by the runtime, is joined after the wrapper is taken off
and partial lines are joined, as a plain file's lines would be."""

import re

import pytest

from aggregator.config import FileSourceConfig
from aggregator.config.schema import MultilineSpec
from aggregator.parse.container import Messages
from aggregator.parse.decode import Decoding
from aggregator.parse.multiline import MessageJoiner, MultilineJoiner
from aggregator.parse.pool import ParsePool

T0 = 1_796_464_800_000_000  # 2026-12-05T10:00:00Z
START = r"^\d{4}-"

TRACE = [
    "2026-12-05T10:00:00.000Z ERROR request failed",
    "java.lang.IllegalStateException: boom",
    "\tat com.shop.Cart.add(Cart.java:42)",
    "\tat com.shop.Api.post(Api.java:7)",
]


def cri(n: int, message: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"2026-12-05T10:00:{n:02d}.000000000Z {stream} {tag} {message}\n"


def config(
    codec: str = "cri", max_line_bytes: int = 65536, **multiline: object
) -> FileSourceConfig:
    spec = MultilineSpec(start=START, **multiline)  # type: ignore[arg-type]
    return FileSourceConfig(
        type="file", paths=["x"], codec=codec, multiline=spec, max_line_bytes=max_line_bytes
    )  # type: ignore[arg-type]


def test_a_stack_trace_written_as_cri_lines_is_one_record() -> None:
    """The trace's lines, each its own CRI ``F`` line, make one record: the messages joined
    with newlines, at the first line's runtime time, its level, its stream and pod fields."""
    lane = Decoding("k8s", config()).lane(f"/var/log/containers/web_shop_app-{'0' * 64}.log")
    data = "".join(cri(n, line) for n, line in enumerate(TRACE)) + cri(
        9, "2026-12-05T10:00:09Z INFO ok"
    )
    records = lane.feed(data.encode())
    assert [r.line for r in records] == ["\n".join(TRACE)]
    (trace,) = records
    assert (trace.ts, trace.level) == (T0, "error")
    assert trace.fields is not None and trace.fields["stream"] == "stdout"
    assert trace.fields["k8s.pod.name"] == "web"
    assert lane.holds_record  # the INFO line waits for its continuation
    (last,) = lane.flush()
    assert (last.line, last.ts) == ("2026-12-05T10:00:09Z INFO ok", T0 + 9_000_000)


def test_partial_lines_are_joined_before_the_trace_is() -> None:
    """A trace line the runtime split (``P`` then ``F``) is one line of the trace."""
    lane = Decoding("k8s", config()).lane("x")
    data = (
        cri(0, TRACE[0])
        + cri(1, "java.lang.IllegalState", tag="P")
        + cri(1, "Exception: boom")
        + cri(2, TRACE[2])
    )
    records = lane.feed(data.encode()) + lane.flush()
    assert [r.line for r in records] == ["\n".join(TRACE[:3])]


def test_a_line_of_the_other_stream_is_not_joined_to_a_trace() -> None:
    """An indented stderr line between a stdout trace's lines stands alone: a trace is joined
    within its stream."""
    lane = Decoding("k8s", config()).lane("x")
    data = cri(0, TRACE[0]) + cri(1, "  warning: x", "stderr") + cri(2, TRACE[2])
    records = lane.feed(data.encode()) + lane.flush()
    assert [(r.line, r.fields and r.fields["stream"]) for r in records] == [
        (TRACE[0], "stdout"),
        ("  warning: x", "stderr"),
        (TRACE[2], "stdout"),  # a continuation with no start before it in its run
    ]


def test_docker_lines_and_max_lines() -> None:
    """docker json-file lines join as CRI ones do; a record stops at ``max_lines``."""
    import orjson

    def docker(n: int, log: str) -> str:
        time = f"2026-12-05T10:00:{n:02d}.000000000Z"
        return orjson.dumps({"log": log + "\n", "stream": "stdout", "time": time}).decode() + "\n"

    lane = Decoding("k8s", config("docker", max_lines=3)).lane("x")
    records = lane.feed("".join(docker(n, line) for n, line in enumerate(TRACE)).encode())
    records += lane.flush()
    assert [r.line for r in records] == ["\n".join(TRACE[:3]), TRACE[3]]
    assert [r.ts for r in records] == [T0, T0 + 3_000_000]


def test_the_held_trace_goes_out_after_its_timeout() -> None:
    """Live: the trace's last record waits for more lines at most ``timeout``."""
    joiner = MessageJoiner(MultilineJoiner(re.compile(START), 100, 1000, timeout=1.0))
    messages = Messages()
    for n, line in enumerate(TRACE):
        messages.add(line, T0 + n, "stdout", None, False)
    assert joiner.feed(messages, now=5.0).texts == []
    assert joiner.deadline == 6.0
    assert joiner.expire(5.5).texts == []
    out = joiner.expire(6.0)
    assert (out.texts, out.stamps, out.streams) == (["\n".join(TRACE)], [T0], ["stdout"])
    assert joiner.deadline is None


def test_a_lane_s_held_trace_expires() -> None:
    """A container lane's ``deadline`` and ``expire`` give the held trace out after its
    timeout (the file source asks for it)."""
    lane = Decoding("k8s", config(timeout=0.0)).lane("x")
    assert lane.feed("".join(cri(n, line) for n, line in enumerate(TRACE)).encode()) == []
    assert lane.deadline is not None and lane.holds_record
    assert [r.line for r in lane.expire()] == ["\n".join(TRACE)]
    assert lane.deadline is None


def test_a_joined_trace_is_bounded_and_flagged() -> None:
    """A trace past ``max_line_bytes`` is cut and flagged truncated."""
    lane = Decoding("k8s", config(max_line_bytes=60)).lane("x")
    records = lane.feed("".join(cri(n, line) for n, line in enumerate(TRACE)).encode())
    (trace,) = records + lane.flush()
    assert trace.truncated and len(trace.line.encode()) <= 60
    assert trace.line.startswith(TRACE[0] + "\n")


@pytest.mark.parametrize("codec", ["cri", "auto"])
async def test_with_a_parse_worker_the_trace_is_joined_too(codec: str) -> None:
    """A large read of a container lane with multiline gives the same records with a parse
    worker as without (the joiner, like a plain lane's, runs on the loop)."""
    data = "".join(
        cri(n % 60, line) for n in range(400) for line in TRACE
    ).encode()  # 1,600 lines, ~80 KiB: large enough for the pool
    pool = ParsePool(1)
    try:
        lane = Decoding("k8s", config(codec), "everything", pool).lane("x")
        records = await lane.decode(data) + lane.flush()
    finally:
        await pool.close()
    assert len(records) == 400
    assert {r.line for r in records} == {"\n".join(TRACE)}
