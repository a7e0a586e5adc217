"""`DUALSYNC_TELEMETRY__EXPORTER=file:PATH`: spans and metrics appended to one file as JSON lines, for a local
run to be read afterwards (`scripts/demo.py` prints the tree of one change from it; `jq` reads it too).

A span line is the SDK's own JSON of the span (`name`, `context.trace_id`, `parent_id`, `start_time`,
`end_time`, `attributes`…); a metrics line is the SDK's JSON of one collection (`resource_metrics`). Appending
under a lock keeps lines whole when the batch processor and the metric reader write at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_locks: dict[Path, threading.Lock] = {}
_guard = threading.Lock()


def _append(path: Path, lines: Sequence[str]) -> None:
    with _guard:
        lock = _locks.setdefault(path, threading.Lock())
    with lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)


def _compact(text: str) -> str:
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            _append(self.path, [_compact(span.to_json(indent=None)) for span in spans])
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


class JsonLinesMetricExporter(MetricExporter):
    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object) -> MetricExportResult:
        try:
            _append(self.path, [_compact(metrics_data.to_json(indent=None))])
        except OSError:
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


def read_spans(path: str | Path) -> list[dict]:
    """The span lines of a file written by `JsonLinesSpanExporter` (metrics lines skipped)."""
    spans = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            if "context" in item and "name" in item:
                spans.append(item)
    return spans
