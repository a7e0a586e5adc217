"""`make demo`'s trace (scripts/demo_trace.py): spans recorded to the JSON-lines file while the block runs, the
change asked for found in it and printed as a tree; telemetry off again afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import demo_trace
from scripts.demo_kit import DemoFailed
from shared.telemetry import setup


def test_the_change_asked_for_is_printed_from_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text("stale line from an earlier run\n")
    with demo_trace.recording(path):
        tracer = setup.tracer()
        change = {"dualsync.source_id": "c-1", "dualsync.direction": "to_crm", "dualsync.outcome": "modified"}
        with tracer.start_as_current_span("webhook business_central/customers"), \
                tracer.start_as_current_span("enqueue 1 message(s)"), \
                tracer.start_as_current_span("process customers to_crm", attributes=change), \
                tracer.start_as_current_span("read erp customers (source)"):
            pass
        demo_trace.show("c-1", "to_crm", path)
        with pytest.raises(DemoFailed, match="no trace of the change of c-2"):
            demo_trace.show("c-2", "to_crm", path)
    out = capsys.readouterr().out
    assert "one change, traced" in out and "◀ this change" in out
    assert "webhook business_central/customers" in out and "└─ read erp customers (source)" in out
    assert "where the time went:" in out and str(path) in " ".join(out.split())
    assert setup.mode() == "none"
    with setup.tracer().start_as_current_span("after") as span:
        assert not span.is_recording()
