"""One trace as a tree a newcomer can read: each span with its duration and when it started after the first one,
then where the time went (in the queue, reading, writing, keeping state). Pure: it takes spans as the SDK's JSON
(`span.to_json()`, the lines of a `file:` export) and returns text lines.

    webhook business_central/customers               4.2 ms  +0 ms
    └─ enqueue 1 message(s)                          0.6 ms  +3.1 ms
       └─ process customers to_crm                  62.0 ms  +205.4 ms  modified · lag 1.24 s
          ├─ read erp customers (source)             9.8 ms  +207.0 ms
          │  └─ GET /v2.0/…/customers(…) → 200       8.9 ms  +207.4 ms
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    span: dict[str, Any]
    start: dt.datetime
    end: dt.datetime
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.span.get("name", "?"))

    @property
    def attributes(self) -> dict[str, Any]:
        return self.span.get("attributes") or {}

    @property
    def ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000.0

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


def as_dicts(spans: Iterable[Any]) -> list[dict[str, Any]]:
    """SDK `ReadableSpan`s (or dicts already) as the JSON dicts the rest of this module reads."""
    return [s if isinstance(s, dict) else json.loads(s.to_json(indent=None)) for s in spans]


def trace_id(span: dict[str, Any]) -> str:
    return str(span["context"]["trace_id"])


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def build(spans: Sequence[dict[str, Any]], trace: str) -> list[Node]:
    """The roots of trace `trace` (one, unless a parent was not exported), children in start order."""
    nodes = {s["context"]["span_id"]: Node(s, _time(s["start_time"]), _time(s["end_time"]))
             for s in spans if trace_id(s) == trace and s.get("start_time") and s.get("end_time")}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.span.get("parent_id") or "")
        (parent.children if parent else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: n.start)
    return sorted(roots, key=lambda n: n.start)


def _label(node: Node) -> str:
    a = node.attributes
    if (path := a.get("dualsync.http.path")) is not None:  # an httpx client span
        method = _method(node)
        status = a.get("http.response.status_code") or a.get("http.status_code")
        return f"{method} {_short(str(path))}" + (f" → {status}" if status else "")
    return node.name


def _short(path: str, width: int = 48) -> str:
    return path if len(path) <= width else path[:20] + "…" + path[-(width - 21):]


def _note(node: Node) -> str:
    a = node.attributes
    notes = []
    if (outcome := a.get("dualsync.outcome")) is not None:
        notes.append(str(outcome))
    if (lag := a.get("dualsync.lag_s")) is not None:
        notes.append(f"lag {float(lag):.2f} s")
    if (wait := a.get("dualsync.queue_wait_s")) is not None:
        notes.append(f"{float(wait) * 1000:.0f} ms in the queue")
    if (error := a.get("dualsync.error")) is not None:
        notes.append(str(error))
    return " · ".join(notes)


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def render(spans: Sequence[dict[str, Any]], trace: str, focus: str | None = None) -> list[str]:
    """The tree of trace `trace`, then the breakdown of where its time went; `focus` (a span id) marks the
    processor span of the change a reader is after, when the webhook carried several."""
    roots = build(spans, trace)
    if not roots:
        return [f"trace {trace}: no spans"]
    origin = roots[0].start
    rows: list[tuple[str, str, str, str]] = []

    def visit(node: Node, prefix: str, last: bool, depth: int) -> None:
        branch = "" if depth == 0 else ("└─ " if last else "├─ ")
        offset = (node.start - origin).total_seconds() * 1000.0
        note = _note(node) + (" ◀ this change" if node.span["context"]["span_id"] == focus else "")
        rows.append((prefix + branch + _label(node), _ms(node.ms), "+" + _ms(offset), note))
        below = prefix + ("" if depth == 0 else ("   " if last else "│  "))
        for i, child in enumerate(node.children):
            visit(child, below, i == len(node.children) - 1, depth + 1)

    for root in roots:
        visit(root, "", True, 0)
    width = min(90, max(len(r[0]) for r in rows) + 2)
    total = (max(n.end for r in roots for n in r.walk()) - origin).total_seconds() * 1000.0
    lines = [f"trace {trace.removeprefix('0x')} · {sum(1 for r in roots for _ in r.walk())} spans · {_ms(total)}"]
    lines += [f"{name:<{width}}{dur:>10}  {start:>11}  {note}".rstrip() for name, dur, start, note in rows]
    lines.append(breakdown(roots, focus))
    return lines


STATE_CLIENTS = ("TableClient.", "TableServiceClient.", "ServiceBusSender.")  # the Azure SDKs' span names


def breakdown(roots: Sequence[Node], focus: str | None = None) -> str:
    """Where the time of one change went: from the webhook to the processor taking it (mostly the queue), then
    inside the processor: reading and writing the two systems (our read / write spans, and requests made
    directly, such as a lookup's query), keeping state (Table storage, Service Bus), and the rest (our code)."""
    nodes = [n for r in roots for n in r.walk()]
    processes = [n for n in nodes if n.name.startswith("process ")]
    chosen = [n for n in processes if n.span["context"]["span_id"] == focus] or processes[:1]
    if not chosen:
        return "where the time went: no processor span in this trace"
    [process] = chosen
    before = (process.start - min(n.start for n in nodes)).total_seconds() * 1000.0
    parts = {"reading": 0.0, "writing": 0.0, "state": 0.0}
    for child in process.children:
        if child.name.startswith(STATE_CLIENTS):
            parts["state"] += child.ms
        elif child.name.startswith("read ") or (_is_request(child) and _method(child) == "GET"):
            parts["reading"] += child.ms
        elif child.name.startswith("write ") or _is_request(child):
            parts["writing"] += child.ms
    rest = max(0.0, process.ms - sum(parts.values()))
    return (f"where the time went: {_ms(before)} from the webhook to the processor (mostly the queue), then "
            f"{_ms(process.ms)} processing: {_ms(parts['reading'])} reading, {_ms(parts['writing'])} writing, "
            f"{_ms(parts['state'])} keeping state, {_ms(rest)} the rest")


def _is_request(node: Node) -> bool:
    return "dualsync.http.path" in node.attributes


def _method(node: Node) -> str:
    return str(node.attributes.get("http.request.method") or node.attributes.get("http.method") or node.name)


def find_span(spans: Sequence[dict[str, Any]], **attributes: Any) -> dict[str, Any] | None:
    """The last span (by end time) whose attributes include all of `attributes`, e.g.
    `find_span(spans, **{"dualsync.source_id": id, "dualsync.outcome": "modified"})`."""
    found = [s for s in spans if all((s.get("attributes") or {}).get(k) == v for k, v in attributes.items())]
    return max(found, key=lambda s: s.get("end_time") or "") if found else None


def find_trace(spans: Sequence[dict[str, Any]], **attributes: Any) -> str | None:
    """The trace of `find_span(spans, **attributes)`."""
    span = find_span(spans, **attributes)
    return None if span is None else trace_id(span)
