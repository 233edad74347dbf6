"""What /healthz and /metrics report: read from the counters the pipeline's parts keep.

Nothing here counts anything itself; it only looks. Each part keeps plain integers that cost
nothing per record and hands them out by name (``counters()``); a scrape reads them all. This
module knows the parts only through ``PipelineView``: it imports neither the pipeline nor any
concrete source or sink.
"""

import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from aggregator.parts import Part
from aggregator.telemetry.metrics import Family, Kind, render

COUNTERS: dict[str, tuple[str, Kind, str]] = {
    "alerts": (
        "aggregator_alerts_total",
        "counter",
        "Alert notifications of an alert sink by result: sent, failed (dropped after its "
        "attempts), dropped (its queue full), suppressed (within the cooldown).",
    ),
    # counters() key: (metric name, type, help); labelled by the source's or sink's name
    "files_open": ("aggregator_files_open", "gauge", "Files open for reading, per source."),
    "rotations": (
        "aggregator_file_rotations_total",
        "counter",
        "Rotations seen (rename, copytruncate, recreate) by a source, or made by a file sink.",
    ),
    "lines_truncated": (
        "aggregator_lines_truncated_total",
        "counter",
        "Lines cut at max_line_bytes, per source.",
    ),
    "write_errors": (
        "aggregator_write_errors_total",
        "counter",
        "Writes that failed (a full disk, a directory gone), per sink; each is retried.",
    ),
    "files_lost": (
        "aggregator_files_lost_total",
        "counter",
        "Files rotated away and deleted before they could be read (slow sinks), per source.",
    ),
    "bytes_lost": (
        "aggregator_file_bytes_lost_total",
        "counter",
        "Bytes of the files in aggregator_files_lost_total (their size when last seen).",
    ),
    "connections": ("aggregator_connections", "gauge", "Open connections, per source."),
    "stalled": (
        "aggregator_source_stalled",
        "gauge",
        "1 while a source has unread input and its reader has not moved for stall_after.",
    ),
    "connections_refused": (
        "aggregator_connections_refused_total",
        "counter",
        "Connections refused at max_connections, per source.",
    ),
    "unread_bytes": (
        "aggregator_unread_bytes",
        "gauge",
        "Bytes written to a file but not read yet.",
    ),
    "subscribers": (
        "aggregator_subscribers",
        "gauge",
        "WebSocket subscribers connected, per sink.",
    ),
    "connected": (
        "aggregator_remote_connected",
        "gauge",
        "1 while a remote part (a nats source or sink, a tcp sink) is connected (an otlp sink: "
        "its receiver answered last time), else 0.",
    ),
    "reconnects": (
        "aggregator_reconnects_total",
        "counter",
        "Connections a sink made again after losing one.",
    ),
    "nats_published": (
        "aggregator_nats_published_total",
        "counter",
        "Messages a nats sink published that JetStream acknowledged.",
    ),
    "nats_records_acknowledged": (
        "aggregator_nats_records_acknowledged_total",
        "counter",
        "Records in messages JetStream acknowledged, per nats sink.",
    ),
    "nats_pending": (
        "aggregator_nats_pending_records",
        "gauge",
        "Records a nats sink holds that JetStream has not acknowledged yet.",
    ),
    "nats_retries": (
        "aggregator_nats_publish_retries_total",
        "counter",
        "Publishes tried again (no acknowledgement in time, server away).",
    ),
    "nats_duplicates": (
        "aggregator_nats_duplicate_publishes_total",
        "counter",
        "Messages the server already had (same Nats-Msg-Id): a retry after a lost ack.",
    ),
    "nats_messages": (
        "aggregator_nats_messages_total",
        "counter",
        "Messages a nats source took from the stream.",
    ),
    "nats_acknowledged": (
        "aggregator_nats_acknowledged_total",
        "counter",
        "Messages a nats source acknowledged (after every local sink wrote their records).",
    ),
    "nats_redelivered": (
        "aggregator_nats_redelivered_total",
        "counter",
        "Messages the server delivered again to a nats source.",
    ),
    "nats_duplicates_dropped": (
        "aggregator_nats_duplicates_dropped_total",
        "counter",
        "Records a nats source dropped because it had them already (a sidecar re-sending).",
    ),
    "nats_consumer_lag": (
        "aggregator_nats_consumer_lag",
        "gauge",
        "Messages in the stream the consumer has not been delivered yet.",
    ),
    "nats_node_last_seen": (
        "aggregator_nats_node_last_seen_seconds",
        "gauge",
        "Per sidecar node: seconds since the central last took a message of it.",
    ),
    "nats_node_lag": (
        "aggregator_nats_node_lag_seconds",
        "gauge",
        "Per sidecar node: the central's clock when it took the node's last message less the "
        "node's clock when it sent it (how far behind the central is; clock skew included).",
    ),
    "nats_clock_skew": (
        "aggregator_nats_clock_skew_seconds",
        "gauge",
        "Per sidecar node: the server's store time of its last message less the node's clock "
        "when it sent it (transit included; large when the node's clock is off).",
    ),
    "otlp_requests": (
        "aggregator_otlp_requests_total",
        "counter",
        "Requests an otlp sink delivered (answered 2xx).",
    ),
    "otlp_request_bytes": (
        "aggregator_otlp_request_bytes_total",
        "counter",
        "Bytes of the delivered requests' bodies, as sent (compressed), per otlp sink.",
    ),
    "otlp_records_sent": (
        "aggregator_otlp_records_sent_total",
        "counter",
        "Records an otlp sink's receiver took.",
    ),
    "otlp_records_rejected": (
        "aggregator_otlp_records_rejected_total",
        "counter",
        "Records the receiver refused (a 4xx or 5xx other than 429/502/503/504, not sent "
        "again) or counted in partialSuccess.rejectedLogRecords.",
    ),
    "otlp_retries": (
        "aggregator_otlp_retries_total",
        "counter",
        "Requests sent again (no answer, or 429/502/503/504).",
    ),
    "otlp_pending": (
        "aggregator_otlp_pending_records",
        "gauge",
        "Records an otlp sink holds that no receiver has taken yet.",
    ),
    "subscriber_groups": (
        "aggregator_subscriber_groups",
        "gauge",
        "Distinct subscriber filters, per sink: each batch is filtered and encoded once each.",
    ),
}
DROPPED = "dropped_"
"""A counter named ``dropped_REASON`` is ``aggregator_dropped_total{reason=REASON}``."""
PER_LABEL = {
    "unread_bytes": "file",
    "nats_clock_skew": "node",
    "nats_node_last_seen": "node",
    "nats_node_lag": "node",
    "alerts": "result",
}
"""Counters that are numbers by a label (a dict), and the label's name."""


class Sink(Part, Protocol):
    records_out: int


class PipelineView(Protocol):
    """What telemetry reads of a running pipeline."""

    @property
    def sources(self) -> Sequence[Part]: ...

    @property
    def sinks(self) -> Sequence[Sink]: ...

    @property
    def failed(self) -> dict[str, str]:
        """Parts that stopped on an error, by name ("source app"), with the reason."""

    def flow_counters(self) -> "FlowCounters": ...


class ReloadCounts:
    """Reloads of the config (SIGHUP, ``--watch-config``): applied, refused, and when the last
    applied one was (Unix time)."""

    __slots__ = ("last", "last_ok", "ok", "refused")

    def __init__(self) -> None:
        self.ok = 0
        self.refused = 0
        self.last: float | None = None
        self.last_ok = True


class FlowCounters(NamedTuple):
    """What the merge, its queues and the parse pool count, read at one scrape."""

    records_in: Mapping[str, int]
    """Records read, by source name."""
    late: Mapping[str, int]
    future: Mapping[str, int]
    """Records placed at the time they were read (stamped too far ahead), by source name."""
    dropped_late: Mapping[str, int]
    queue_depths: dict[str, int]
    held: int
    merge_delay: float
    parse_workers: int
    reloads: ReloadCounts


class PipelineTelemetry:
    """Health and metrics of one pipeline."""

    def __init__(self, pipeline: PipelineView) -> None:
        self.pipeline = pipeline
        self.started = time.monotonic()

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy while no part has failed and the merge runs. Names only: no paths, no keys."""
        pipeline = self.pipeline
        failed = sorted(pipeline.failed)
        detail: dict[str, object] = {
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "sources": len(pipeline.sources),
            "sinks": len(pipeline.sinks),
        }
        if failed:
            detail["failed"] = failed
        # A remote part that is away (nats-server down, a tcp peer gone) is not a failure: it
        # retries and the pipeline waits. It is shown, so that an operator sees why.
        down = [
            f"{kind} {part.name}"
            for kind, parts in (("source", pipeline.sources), ("sink", pipeline.sinks))
            for part in parts
            if part.counters().get("connected") == 0
        ]
        if down:
            detail["disconnected"] = sorted(down)
        # A stall is not a failure either (still 200): it says where to look.
        stalled = [f"source {part.name}" for part in pipeline.sources
                   if part.counters().get("stalled")]  # fmt: skip
        if stalled:
            detail["stalled"] = sorted(stalled)
        return not failed, detail

    def metrics(self) -> str:
        return render(self.families())

    def families(self) -> list[Family]:
        pipeline = self.pipeline
        flow = pipeline.flow_counters()

        records_in = Family("aggregator_records_in_total", "counter", "Records read, per source.")
        late = Family(
            "aggregator_late_total", "counter", "Records that came after newer ones were sent."
        )
        dropped = Family(
            "aggregator_dropped_total",
            "counter",
            "What was dropped, by source or sink and reason (UDP: datagrams; else records).",
        )
        future = Family(
            "aggregator_future_total",
            "counter",
            "Records stamped further ahead than future_grace: placed at the time they were read.",
        )
        for source in pipeline.sources:
            name = source.name
            records_in.add(flow.records_in.get(name, 0), source=name)
            late.add(flow.late.get(name, 0), source=name)
            future.add(flow.future.get(name, 0), source=name)
            dropped.add(flow.dropped_late.get(name, 0), source=name, reason="late")

        records_out = Family(
            "aggregator_records_out_total", "counter", "Records written, per sink."
        )
        for sink in pipeline.sinks:
            records_out.add(sink.records_out, sink=sink.name)

        named = {key: Family(*spec) for key, spec in COUNTERS.items()}
        for kind, parts in (("source", pipeline.sources), ("sink", pipeline.sinks)):
            for part in parts:
                for key, value in part.counters().items():
                    labels = {kind: part.name}
                    if key.startswith(DROPPED) and isinstance(value, int):
                        dropped.add(value, **labels, reason=key.removeprefix(DROPPED))
                    elif isinstance(value, Mapping):
                        for label, count in value.items():
                            named[key].add(count, **labels, **{PER_LABEL[key]: label})
                    else:
                        named[key].add(value, **labels)

        queue = Family(
            "aggregator_queue_depth", "gauge", "Items waiting in a queue between stages."
        )
        for name, depth in flow.queue_depths.items():
            queue.add(depth, queue=name)
        held = Family("aggregator_merge_held", "gauge", "Records the merge holds for ordering.")
        held.add(flow.held)
        delay = Family(
            "aggregator_merge_delay_seconds",
            "gauge",
            "How long the oldest record held by the merge has waited.",
        )
        delay.add(round(flow.merge_delay, 6))
        workers = Family(
            "aggregator_parse_workers",
            "gauge",
            "Worker processes parsing large reads (started by the first such read).",
        )
        workers.add(flow.parse_workers)
        reloads = Family(
            "aggregator_reloads_total",
            "counter",
            "Reloads of the config (SIGHUP, --watch-config), applied or refused.",
        )
        reloads.add(flow.reloads.ok, result="ok")
        reloads.add(flow.reloads.refused, result="refused")
        last_ok = Family(
            "aggregator_last_reload_successful",
            "gauge",
            "1 if the last reload tried was applied (or none was tried), 0 if it was refused.",
        )
        last_ok.add(int(flow.reloads.last_ok))
        families = [reloads, last_ok]
        if flow.reloads.last is not None:
            last = Family(
                "aggregator_last_reload_timestamp_seconds",
                "gauge",
                "When the last reload was applied (Unix time).",
            )
            last.add(round(flow.reloads.last, 3))
            families.append(last)
        return [
            *families,
            workers,
            records_in,
            records_out,
            dropped,
            late,
            future,
            queue,
            held,
            delay,
            *named.values(),
        ]
