"""One trace as a tree (shared.telemetry.trace_view), from spans as the JSON-lines file holds them."""

from __future__ import annotations

import re
from typing import Any

from shared.telemetry.trace_view import build, find_trace, render

T = "0x" + "ab" * 16


def span(name: str, sid: str, parent: str | None, start_ms: float, end_ms: float, trace: str = T,
         **attributes: Any) -> dict[str, Any]:
    def at(ms: float) -> str:
        return f"2025-03-01T12:00:{ms / 1000:09.6f}Z"
    return {"name": name, "context": {"trace_id": trace, "span_id": sid}, "parent_id": parent,
            "start_time": at(start_ms), "end_time": at(end_ms), "attributes": attributes}


SPANS = [
    span("process customers to_crm", "0x3", "0x2", 210.0, 290.0, **{"dualsync.outcome": "modified",
                                                                   "dualsync.lag_s": 1.25,
                                                                   "dualsync.queue_wait_s": 0.2}),
    span("webhook business_central/customers", "0x1", None, 0.0, 6.0),
    span("enqueue 1 message(s)", "0x2", "0x1", 2.0, 4.0),
    span("read erp customers (source)", "0x4", "0x3", 212.0, 232.0),
    span("GET", "0x5", "0x4", 213.0, 231.0, **{"dualsync.http.path": "/v2.0/customers(1)", "http.method": "GET",
                                              "http.status_code": 200}),
    span("write crm accounts (target)", "0x6", "0x3", 240.0, 280.0),
    span("TableClient.update_entity", "0x7", "0x3", 281.0, 289.0),
    span("GET", "0x9", None, 0.0, 1.0, trace="0x" + "cd" * 16, **{"dualsync.source_id": "other"}),
]


def test_the_tree_shows_each_span_under_its_parent_in_start_order_with_durations() -> None:
    lines = render(SPANS, T)
    assert lines[0] == f"trace {'ab' * 16} · 7 spans · 290.0 ms"
    names = [re.match(r"^(.*?)\s+[\d.]+ m?s\s", line).group(1) for line in lines[1:-1]]
    assert names == ["webhook business_central/customers", "└─ enqueue 1 message(s)",
                     "   └─ process customers to_crm", "      ├─ read erp customers (source)",
                     "      │  └─ GET /v2.0/customers(1) → 200", "      ├─ write crm accounts (target)",
                     "      └─ TableClient.update_entity"]
    process = next(line for line in lines if "process customers" in line)
    assert "80.0 ms" in process and "+210.0 ms" in process
    assert process.endswith("modified · lag 1.25 s · 200 ms in the queue")
    assert lines[-1] == ("where the time went: 210.0 ms from the webhook to the processor (mostly the queue), "
                         "then 80.0 ms processing: 20.0 ms reading, 40.0 ms writing, 8.0 ms keeping state, "
                         "12.0 ms the rest")


def test_with_two_changes_in_one_webhook_the_one_asked_for_is_marked_and_broken_down() -> None:
    other = [span("process customers to_crm", "0xa", "0x2", 5.0, 105.0, **{"dualsync.outcome": "unchanged"}),
             span("GET", "0xb", "0xa", 10.0, 40.0, **{"dualsync.http.path": "/v2.0/items", "http.method": "GET"}),
             span("PATCH", "0xc", "0xa", 50.0, 60.0, **{"dualsync.http.path": "/v2.0/items(1)",
                                                       "http.request.method": "PATCH"})]
    lines = render(SPANS + other, T, focus="0xa")
    marked = [line for line in lines if "◀ this change" in line]
    assert len(marked) == 1 and "unchanged" in marked[0] and "+5.0 ms" in marked[0]
    assert lines[-1] == ("where the time went: 5.0 ms from the webhook to the processor (mostly the queue), "
                         "then 100.0 ms processing: 30.0 ms reading, 10.0 ms writing, 0.0 ms keeping state, "
                         "60.0 ms the rest")


def test_a_trace_is_found_by_the_attributes_of_one_of_its_spans() -> None:
    assert find_trace(SPANS, **{"dualsync.outcome": "modified"}) == T
    assert find_trace(SPANS, **{"dualsync.source_id": "other"}) == "0x" + "cd" * 16
    assert find_trace(SPANS, **{"dualsync.outcome": "failed"}) is None
    assert render(SPANS, "0x00") == ["trace 0x00: no spans"]


def test_a_span_whose_parent_was_not_exported_becomes_a_root_of_its_own() -> None:
    orphan = [s for s in SPANS if s["context"]["span_id"] != "0x2"]
    roots = build(orphan, T)
    assert [r.name for r in roots] == ["webhook business_central/customers", "process customers to_crm"]
