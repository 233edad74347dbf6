"""Records as OTLP logs: every request the mapping makes parses with the official classes,
and says what the record said."""

from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from aggregator.record.otlp import LogEncoder, export_request, rejected_of
from aggregator.record.record import Record

T0 = 1_796_464_800_000_000  # 2026-12-05T10:00:00Z, µs


def request_of(records: list[Record], encoder: LogEncoder) -> ExportLogsServiceRequest:
    groups: dict[Any, list[bytes]] = {}
    for record in records:
        groups.setdefault(encoder.resource(record), []).append(encoder.encode(record, 5))
    return json_format.Parse(export_request(list(groups.items())), ExportLogsServiceRequest())


def test_a_record_as_a_log_record() -> None:
    """Time in ns, severity, body, attributes of every JSON type, the file as log.file.path,
    flags as aggregator.* attributes; resource fields out of the attributes."""
    fields = {
        "user": "ann", "n": 7, "big": 2**70, "ratio": 0.5, "ok": True, "none": None,
        "tags": ["a", 1], "ctx": {"id": "x"}, "k8s.pod.name": "web-1", "stream": "stderr",
    }  # fmt: skip
    record = Record(T0 + 1, "app", "/var/log/a.log", "boom", "error", fields, True, "bad ts")
    request = request_of([record], LogEncoder("node-1"))
    resource = request.resource_logs[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes} == {
        "host.name": "node-1",
        "service.name": "app",
        "k8s.pod.name": "web-1",
    }
    log = request.resource_logs[0].scope_logs[0].log_records[0]
    assert log.time_unix_nano == (T0 + 1) * 1000
    assert log.observed_time_unix_nano == 5
    assert (log.severity_number, log.severity_text, log.body.string_value) == (17, "ERROR", "boom")
    attributes = {a.key: a.value for a in log.attributes}
    assert attributes["user"].string_value == "ann"
    assert attributes["n"].int_value == 7
    assert attributes["big"].string_value == str(2**70)
    assert attributes["ratio"].double_value == 0.5
    assert attributes["ok"].bool_value is True
    assert not attributes["none"].HasField("string_value")
    assert [v.string_value or v.int_value for v in attributes["tags"].array_value.values] == [
        "a",
        1,
    ]
    assert attributes["ctx"].kvlist_value.values[0].key == "id"
    assert attributes["log.file.path"].string_value == "/var/log/a.log"
    assert attributes["aggregator.truncated"].bool_value is True
    assert attributes["aggregator.parse_error"].string_value == "bad ts"
    assert "k8s.pod.name" not in attributes


def test_records_group_by_resource_in_order() -> None:
    """Records of one pod share a resourceLogs; the service name is the sink's if set."""
    records = [
        Record(T0, "pods", "p", f"line {n}", fields={"k8s.pod.name": f"pod-{n % 2}"})
        for n in range(4)
    ]
    request = request_of(records, LogEncoder("h", "shop"))
    assert len(request.resource_logs) == 2
    for resource_logs in request.resource_logs:
        attributes = {a.key: a.value.string_value for a in resource_logs.resource.attributes}
        assert attributes["service.name"] == "shop"
    bodies = [
        [log.body.string_value for log in r.scope_logs[0].log_records]
        for r in request.resource_logs
    ]
    assert bodies == [["line 0", "line 2"], ["line 1", "line 3"]]


@given(
    st.text(),
    st.sampled_from([None, "trace", "debug", "info", "warn", "error", "fatal"]),
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=6,
        ),
        max_size=5,
    ),
)
def test_any_record_makes_a_request_that_parses(
    line: str, level: str | None, fields: dict[str, Any]
) -> None:
    """Whatever a line and its fields hold (NaN, huge integers, nesting, odd text), the
    request parses as an ExportLogsServiceRequest and keeps the line."""
    record = Record(T0, "s", "o", line, level, fields or None)
    request = request_of([record], LogEncoder("h"))
    assert request.resource_logs[0].scope_logs[0].log_records[0].body.string_value == line


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{}", (0, "")),
        (b"", (0, "")),
        (b'{"partialSuccess": {}}', (0, "")),
        (b'{"partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "old"}}', (3, "old")),
        (b'{"partialSuccess": {"rejectedLogRecords": 2}}', (2, "")),
        (b"not json", (0, "")),
    ],
)
def test_rejected_of(body: bytes, expected: tuple[int, str]) -> None:
    """partialSuccess.rejectedLogRecords (an int64: a string or a number) and its message."""
    assert rejected_of(body) == expected
