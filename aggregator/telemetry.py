"""What /healthz and /metrics report: read from the counters the pipeline's parts keep.

Nothing here counts anything itself; it only looks. Each part keeps plain integers that cost
nothing per record, and a scrape reads them all.
"""

import time
from typing import TYPE_CHECKING

from aggregator.metrics import Family, Kind, render
from aggregator.web.sink import WebSocketSink

if TYPE_CHECKING:
    from aggregator.pipeline import Pipeline

SOURCE_COUNTERS: dict[str, tuple[str, Kind, str]] = {
    # counters() key: (metric name, type, help)
    "files_open": ("aggregator_files_open", "gauge", "Files open for reading, per source."),
    "rotations": (
        "aggregator_file_rotations_total",
        "counter",
        "Rotations seen (rename, copytruncate, recreate), per source.",
    ),
    "lines_truncated": (
        "aggregator_lines_truncated_total",
        "counter",
        "Lines cut at max_line_bytes, per source.",
    ),
    "connections": ("aggregator_connections", "gauge", "Open connections, per source."),
    "connections_refused": (
        "aggregator_connections_refused_total",
        "counter",
        "Connections refused at max_connections, per source.",
    ),
}


class PipelineTelemetry:
    """Health and metrics of one pipeline."""

    def __init__(self, pipeline: "Pipeline") -> None:
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
        return not failed, detail

    def metrics(self) -> str:
        return render(self.families())

    def families(self) -> list[Family]:
        pipeline = self.pipeline
        merge, core = pipeline.merge, pipeline.core
        names = [source.name for source in pipeline.sources]

        records_in = Family("aggregator_records_in_total", "counter", "Records read, per source.")
        late = Family(
            "aggregator_late_total", "counter", "Records that came after newer ones were sent."
        )
        dropped = Family(
            "aggregator_dropped_total",
            "counter",
            "What was dropped, by source or sink and reason (UDP: datagrams; else records).",
        )
        for index, name in enumerate(names):
            records_in.add(merge.records_in[index] if merge is not None else 0, source=name)
            late.add(core.stats.late.get(index, 0), source=name)
            dropped.add(core.stats.dropped_late.get(index, 0), source=name, reason="late")

        per_source: dict[str, Family] = {}
        unread = Family(
            "aggregator_unread_bytes", "gauge", "Bytes written to a file but not read yet."
        )
        for source in pipeline.sources:
            for key, value in source.counters().items():
                if key == "unread_bytes" and isinstance(value, dict):
                    for path, count in value.items():
                        unread.add(count, source=source.name, file=path)
                elif key == "dropped_full" and isinstance(value, int):
                    dropped.add(value, source=source.name, reason="pipeline_full")
                elif key in SOURCE_COUNTERS and isinstance(value, int):
                    metric, kind, text = SOURCE_COUNTERS[key]
                    family = per_source.get(key)
                    if family is None:
                        family = per_source[key] = Family(metric, kind, text)
                    family.add(value, source=source.name)

        records_out = Family(
            "aggregator_records_out_total", "counter", "Records written, per sink."
        )
        subscribers = Family(
            "aggregator_subscribers", "gauge", "WebSocket subscribers connected, per sink."
        )
        groups = Family(
            "aggregator_subscriber_groups",
            "gauge",
            "Distinct subscriber filters, per sink: each batch is filtered and encoded once each.",
        )
        for sink in pipeline.sinks:
            records_out.add(sink.records_out, sink=sink.name)
            if isinstance(sink, WebSocketSink):
                hub = sink.hub
                subscribers.add(len(hub.subscribers), sink=sink.name)
                groups.add(hub.groups, sink=sink.name)
                dropped.add(hub.dropped_total, sink=sink.name, reason="slow_subscriber")

        queue = Family(
            "aggregator_queue_depth", "gauge", "Items waiting in a queue between stages."
        )
        for source, channel in zip(pipeline.sources, pipeline.source_channels, strict=True):
            queue.add(len(channel), queue=f"source:{source.name}")
        for sink, inlet in zip(pipeline.sinks, pipeline.sink_channels, strict=True):
            queue.add(len(inlet), queue=f"sink:{sink.name}")

        held = Family("aggregator_merge_held", "gauge", "Records the merge holds for ordering.")
        held.add(core.held)
        delay = Family(
            "aggregator_merge_delay_seconds",
            "gauge",
            "How long the oldest record held by the merge has waited.",
        )
        delay.add(round(core.merge_delay(time.monotonic()), 6))
        workers = Family(
            "aggregator_parse_workers",
            "gauge",
            "Worker processes parsing large reads (started by the first such read).",
        )
        workers.add(len(pipeline.parse_pool.pids))
        return [
            workers,
            records_in,
            records_out,
            dropped,
            late,
            queue,
            held,
            delay,
            subscribers,
            groups,
            unread,
            *per_source.values(),
        ]
