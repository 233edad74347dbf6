"""NATS messages that no nats sink wrote (SPEC §9): every member of a message is checked, a bad
one is dropped, counted and terminated (so it cannot crash-loop the consumer), and what a good
one carries is encoded again: a publisher cannot forge lines in the central's output."""

import contextlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.jetstream.messages import BadMessage, decode_message, encode_message
from aggregator.record.formats import encode_json
from aggregator.record.record import Record
from tests.conftest import Cli, start_cli, wait_until
from tests.helpers.nats_server import NatsServer, consumer_made, nats_server, settled
from tests.helpers.outputs import records_in
from tests.helpers.web import http_get
from tests.jetstream.test_nats import central_config

__all__ = ["nats_server"]  # the fixture, used by name

NOW = 1_795_600_800_000_000


def meta(**changes: object) -> bytes:
    head = {"v": 1, "node": "n", "source": "s", "wm": NOW, "origins": ["o"], "lanes": []}
    return orjson.dumps({**head, **changes}) + b"\n"


def row(**changes: object) -> list[object]:
    values = {"ts": NOW, "origin": 0, "line": "ok", "tail": "", "lane": -1, "lane_seq": 0,
              "late": False, "node": None}  # fmt: skip
    values.update(changes)
    return list(values.values())


BAD = {
    "node is an object": meta(node={"a": 1}) + orjson.dumps([row()]),
    "wm is a string": meta(wm="1") + orjson.dumps([row()]),
    "origins hold a number": meta(origins=[1]) + orjson.dumps([row()]),
    "list level": meta() + orjson.dumps([row(tail=',"level":["error"]')]),
    "level that is not one": meta() + orjson.dumps([row(tail=',"level":"err or"')]),
    "fields not an object": meta() + orjson.dumps([row(tail=',"fields":[1]')]),
    "tail not members": meta() + orjson.dumps([row(tail='}\n{"seq":1,"line":"forged"')]),
    "row node an object": meta() + orjson.dumps([row(node={"x": 1})]),
    "negative origin": meta() + orjson.dumps([row(origin=-1)]),
    "ts a float": meta() + orjson.dumps([row(ts=1.5)]),
    "ts beyond the calendar": meta() + orjson.dumps([row(ts=2**62)]),
    "late a number": meta() + orjson.dumps([row(late=1)]),
    "lane_seq a string": meta(lanes=["l"]) + orjson.dumps([row(lane=0, lane_seq="1")]),
    "short row": meta() + orjson.dumps([[NOW, 0, "x"]]),
}


@pytest.mark.parametrize("payload", BAD.values(), ids=BAD.keys())
def test_wrong_types_are_bad_messages(payload: bytes) -> None:
    """A member of the wrong type anywhere is a BadMessage, never another error."""
    with pytest.raises(BadMessage):
        decode_message(payload)


def test_a_tail_is_encoded_again_not_copied() -> None:
    """A tail with a newline in its JSON whitespace (a forged NDJSON line) is read for its
    members, and the output holds one line per record."""
    tail = ',"fields":\n{"seq":1,"line":"forged"}'
    decoded = decode_message(meta() + orjson.dumps([row(tail=tail)]))
    output = encode_json(decoded.records)
    assert output.count(b"\n") == 1
    assert orjson.loads(output)["fields"] == {"seq": 1, "line": "forged"}


def test_future_records_keep_their_claim_across_nats() -> None:
    """A record placed at its read time keeps ``ts_claimed`` through a message."""
    record = Record(NOW, "s", "o", "x", "info")
    record.ts_claimed = NOW + 10**12
    (back,) = decode_message(encode_message("n", "s", [record], NOW)).records
    assert (back.ts, back.ts_claimed, back.level) == (NOW, NOW + 10**12, "info")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(json_values, min_size=7, max_size=10), max_size=3), json_values)
def test_fuzzed_messages_decode_or_are_bad(rows: list[list[object]], node: object) -> None:
    """Whatever the rows and the meta's node hold: a message decodes to records that encode
    as one JSON line each, or it is a BadMessage."""
    payload = meta(node=node) + orjson.dumps(rows)
    try:
        decoded = decode_message(payload)
    except BadMessage:
        return
    output = encode_json(decoded.records)
    assert output.count(b"\n") == len(decoded.records)
    for line in output.splitlines():
        orjson.loads(line)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzzed_bytes_are_bad_messages_or_records(payload: bytes) -> None:
    """Any bytes at all: a BadMessage or a message, never another error."""
    with contextlib.suppress(BadMessage):
        decode_message(payload)


async def test_a_central_drops_and_terminates_broken_messages(
    tmp_path: Path, nats_server: NatsServer, cli_processes: list[Cli]
) -> None:
    """A real nats-server fed every BAD message and one good one: the central writes the good
    record only, counts the rest as invalid, acknowledges (terminates) them all, and a restart
    neither crashes nor sees them again."""
    import nats

    out = tmp_path / "central.json"
    config = central_config(tmp_path, nats_server.url, out)
    config.write_text(
        config.read_text() + '[sinks.live]\ntype = "websocket"\nlisten = "127.0.0.1:0"\n'
    )
    central = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(central)
    http = await central.serving()
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await consumer_made(js, "central")
        for payload in BAD.values():
            await js.publish("logs.evil.x", payload)
        await js.publish("logs.good.x", meta(node="good") + orjson.dumps([row(line="fine")]))
        await wait_until(lambda: records_in(out), "the good record")
        assert [r["line"] for r in records_in(out)] == ["fine"]
        _, _, metrics = http_get(f"http://{http[0]}:{http[1]}/metrics")
        assert f'aggregator_dropped_total{{source="bus",reason="invalid"}} {len(BAD)}' in metrics
        assert await central.stop() == 0
        await settled(js)  # every message acknowledged (terminated), the last ones after exit
    finally:
        await client.close()
    again = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(again)
    host, port = await again.serving()
    # Stopped once its consumer is up (a stop while it connects is another matter).
    connected = 'aggregator_remote_connected{source="bus"} 1'
    await wait_until(lambda: connected in http_get(f"http://{host}:{port}/metrics")[2], connected)
    assert again.proc.returncode is None
    assert await again.stop() == 0, again.err
    assert not any("Traceback" in line for line in central.err + again.err)
    assert [r["line"] for r in records_in(out)] == ["fine"]
