"""Pure: records as OTLP logs, in OTLP/HTTP's JSON encoding (the protobuf JSON mapping).

A record is one ``logRecord``: ``timeUnixNano`` its ``ts``, ``observedTimeUnixNano`` when the
sink took it, ``severityNumber``/``severityText`` its level, ``body`` its line, ``attributes``
its fields (with ``log.file.path`` for a file's records). Its resource is where it came from:
``host.name`` (the node), ``service.name`` (the sink's ``service_name``, else the record's
source) and the ``k8s.*`` and ``container.id`` fields, taken out of the attributes; records of
one resource share a ``resourceLogs`` entry. 64-bit integers are strings, as the mapping
writes them.

Each logRecord is encoded on its own (``LogEncoder.encode``), so that a batch is bounded by its
exact size in bytes, and a request is put together from them (``export_request``).
"""

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from aggregator.record.record import Record

SEVERITY: dict[str, tuple[int, str]] = {
    "trace": (1, "TRACE"),
    "debug": (5, "DEBUG"),
    "info": (9, "INFO"),
    "warn": (13, "WARN"),
    "error": (17, "ERROR"),
    "fatal": (21, "FATAL"),
}
"""Our levels as OpenTelemetry's severity numbers (the first of each range) and texts."""
RESOURCE_FIELDS = frozenset(
    {
        "service.name",
        "host.name",
        "k8s.namespace.name",
        "k8s.pod.name",
        "k8s.pod.uid",
        "k8s.container.name",
        "k8s.node.name",
        "container.id",
    }
)
"""Fields that say where a record came from: resource attributes, not the record's own."""
SCOPE = {"name": "aggregator"}
_INT64 = range(-(2**63), 2**63)

Resource = tuple[tuple[str, str], ...]
"""A resource's attributes, sorted: records of the same one go into one ``resourceLogs``."""


def any_value(value: Any) -> dict[str, Any]:
    """A field's value as an OTLP ``AnyValue``."""
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)} if value in _INT64 else {"stringValue": str(value)}
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {"stringValue": str(value)}  # JSON has no NaN: the mapping's text forms
        return {"doubleValue": value}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value.items())}}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if value is None:
        return {}
    return {"stringValue": str(value)}


def key_values(items: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"key": str(key), "value": any_value(value)} for key, value in items]


_SEVERITY_JSON = {
    level: f',"severityNumber":{number},"severityText":"{text}"'.encode()
    for level, (number, text) in SEVERITY.items()
}
_RESOURCE_ORDER = tuple(sorted(RESOURCE_FIELDS))


class LogEncoder:
    """Records → (resource, logRecord JSON) for one sink: its node and service name.

    The JSON is put together by hand around orjson's strings (a dict a record for orjson cost
    four times as much); a field's key is encoded once and kept, resources are kept by what
    makes them."""

    def __init__(self, host: str, service_name: str = "") -> None:
        """``service_name``: "" names each record's service after its source."""
        self.host = host
        self.service_name = service_name
        self._keys: dict[str, bytes] = {}
        self._resources: dict[tuple[object, ...], Resource] = {}

    def resource(self, record: Record) -> Resource:
        fields = record.fields
        found = tuple(fields.get(key) for key in _RESOURCE_ORDER) if fields else ()
        made_of = (record.source, record.node, found)
        resource = self._resources.get(made_of)
        if resource is None:
            attributes = {
                "host.name": record.node or self.host,
                "service.name": self.service_name or record.source,
            }
            for key, value in zip(_RESOURCE_ORDER, found, strict=False):
                if value is not None:
                    attributes[key] = str(value)
            resource = tuple(sorted(attributes.items()))
            if len(self._resources) > 10_000:  # bounded, whatever the fields say
                self._resources.clear()
            self._resources[made_of] = resource
        return resource

    def encode(self, record: Record, observed_ns: int) -> bytes:
        """One ``logRecord`` as JSON bytes."""
        parts = [
            b'{"timeUnixNano":"%d","observedTimeUnixNano":"%d"' % (record.ts * 1000, observed_ns)
        ]
        if record.level is not None:
            severity = _SEVERITY_JSON.get(record.level)
            if severity is not None:
                parts.append(severity)
        parts.append(b',"body":{"stringValue":')
        parts.append(orjson.dumps(record.line))
        parts.append(b"}")
        attributes = []
        if record.fields:
            keys = self._keys
            for key, value in record.fields.items():
                if key in RESOURCE_FIELDS:
                    continue
                head = keys.get(key)
                if head is None:
                    head = b'{"key":' + orjson.dumps(str(key)) + b',"value":'
                    if len(keys) < 10_000:
                        keys[key] = head
                if isinstance(value, str):
                    attributes.append(head + b'{"stringValue":' + orjson.dumps(value) + b"}}")
                else:
                    attributes.append(head + orjson.dumps(any_value(value)) + b"}")
        if record.origin.startswith("/"):
            attributes.append(
                b'{"key":"log.file.path","value":{"stringValue":'
                + orjson.dumps(record.origin)
                + b"}}"
            )
        if record.truncated:
            attributes.append(b'{"key":"aggregator.truncated","value":{"boolValue":true}}')
        if record.parse_error is not None:
            attributes.append(
                b'{"key":"aggregator.parse_error","value":{"stringValue":'
                + orjson.dumps(record.parse_error)
                + b"}}"
            )
        if attributes:
            parts.append(b',"attributes":[' + b",".join(attributes) + b"]")
        parts.append(b"}")
        return b"".join(parts)


def export_request(groups: Sequence[tuple[Resource, Sequence[bytes]]]) -> bytes:
    """An ``ExportLogsServiceRequest``: one ``resourceLogs`` per resource, its logRecords in
    the order given."""
    scope = orjson.dumps(SCOPE)
    parts = []
    for resource, records in groups:
        head = orjson.dumps({"attributes": key_values(resource)})
        parts.append(
            b'{"resource":'
            + head
            + b',"scopeLogs":[{"scope":'
            + scope
            + b',"logRecords":['
            + b",".join(records)
            + b"]}]}"
        )
    return b'{"resourceLogs":[' + b",".join(parts) + b"]}"


REQUEST_OVERHEAD = 64
"""Bytes of a request besides its logRecords, about: a resource's costs ``resource_bytes``."""


def resource_bytes(resource: Resource) -> int:
    """About what a resource's entry adds to a request, besides its logRecords."""
    return 80 + sum(len(key) + len(value) + 40 for key, value in resource)


def rejected_of(body: bytes) -> tuple[int, str]:
    """From a 2xx answer's body, ``partialSuccess``: (rejectedLogRecords, errorMessage); (0,
    "") when the receiver took everything or said nothing readable."""
    try:
        answer = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        return 0, ""
    partial = answer.get("partialSuccess") if isinstance(answer, dict) else None
    if not isinstance(partial, dict):
        return 0, ""
    rejected = partial.get("rejectedLogRecords", 0)
    try:
        count = int(rejected)
    except (TypeError, ValueError):
        count = 0
    message = partial.get("errorMessage", "")
    return max(0, count), message if isinstance(message, str) else ""
