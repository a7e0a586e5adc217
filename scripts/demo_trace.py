"""`make demo`'s trace: while the Business Central part runs, every span goes to a JSON-lines file (as
`DUALSYNC_TELEMETRY__EXPORTER=file:PATH` would write it); after the first live edit the tree of that one change
is printed from the file — webhook, queue, processor, the reads and the write with their HTTP requests and
Table storage calls — and where its time went, so a newcomer sees it (docs/telemetry.md#reading-a-trace)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.demo_kit import DemoFailed, console
from shared.telemetry import setup
from shared.telemetry.exporters import JsonLinesSpanExporter, read_spans
from shared.telemetry.trace_view import find_span, render, trace_id

TRACE_FILE = Path(tempfile.gettempdir()) / "dualsync-demo-trace.jsonl"


@contextmanager
def recording(path: Path = TRACE_FILE) -> Iterator[Path]:
    """Spans to `path` (emptied first) for the block; telemetry off again after it."""
    path.unlink(missing_ok=True)
    setup.install(span_exporter=JsonLinesSpanExporter(path), batch=True)
    try:
        yield path
    finally:
        setup.reset()


def show(source_id: str, direction: str, path: Path = TRACE_FILE) -> None:
    """Print the trace of the last change of record `source_id` that the processor wrote (`direction`)."""
    setup.force_flush()
    spans = read_spans(path) if path.exists() else []
    process = find_span(spans, **{"dualsync.source_id": source_id, "dualsync.direction": direction,
                                  "dualsync.outcome": "modified"})
    if process is None:
        raise DemoFailed(f"no trace of the change of {source_id} was recorded")
    console.rule("one change, traced")
    for line in render(spans, trace_id(process), focus=process["context"]["span_id"]):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"every span of this run is in [bold]{path}[/] (JSON lines); set "
                  "DUALSYNC_TELEMETRY__EXPORTER=file:PATH to record your own")
