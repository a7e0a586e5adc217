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
        method = a.get("http.request.method") or a.get("http.method") or node.name
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


def render(spans: Sequence[dict[str, Any]], trace: str) -> list[str]:
    """The tree of trace `trace`, then the breakdown of where its time went."""
    roots = build(spans, trace)
    if not roots:
        return [f"trace {trace}: no spans"]
    origin = roots[0].start
    rows: list[tuple[str, str, str, str]] = []

    def visit(node: Node, prefix: str, last: bool, depth: int) -> None:
        branch = "" if depth == 0 else ("└─ " if last else "├─ ")
        offset = (node.start - origin).total_seconds() * 1000.0
        rows.append((prefix + branch + _label(node), _ms(node.ms), "+" + _ms(offset), _note(node)))
        below = prefix + ("" if depth == 0 else ("   " if last else "│  "))
        for i, child in enumerate(node.children):
            visit(child, below, i == len(node.children) - 1, depth + 1)

    for root in roots:
        visit(root, "", True, 0)
    width = min(90, max(len(r[0]) for r in rows) + 2)
    total = (max(n.end for r in roots for n in r.walk()) - origin).total_seconds() * 1000.0
    lines = [f"trace {trace.removeprefix('0x')} · {sum(1 for r in roots for _ in r.walk())} spans · {_ms(total)}"]
    lines += [f"{name:<{width}}{dur:>10}  {start:>11}  {note}".rstrip() for name, dur, start, note in rows]
    lines.append(breakdown(roots))
    return lines


def breakdown(roots: Sequence[Node]) -> str:
    """Where the time went: before the processor took the message (webhook and queue), then inside it, what its
    own reads and writes of the two systems took, and the rest (state in Table storage, mapping, our code)."""
    nodes = [n for r in roots for n in r.walk()]
    processes = [n for n in nodes if n.name.startswith("process ")]
    if not processes:
        return "where the time went: no processor span in this trace"
    origin = min(n.start for n in nodes)
    before = sum((p.start - origin).total_seconds() * 1000.0 for p in processes[:1])
    inside = sum(p.ms for p in processes)
    reads = sum(c.ms for p in processes for c in p.children if c.name.startswith("read "))
    writes = sum(c.ms for p in processes for c in p.children if c.name.startswith("write "))
    rest = max(0.0, inside - reads - writes)
    return (f"where the time went: {_ms(before)} from the webhook to the processor (mostly the queue), "
            f"{_ms(inside)} processing: {_ms(reads)} reading, {_ms(writes)} writing, {_ms(rest)} state and the rest")


def find_trace(spans: Sequence[dict[str, Any]], **attributes: Any) -> str | None:
    """The trace of the last span (by end time) whose attributes include all of `attributes`, e.g.
    `find_trace(spans, **{"dualsync.source_id": id, "dualsync.outcome": "modified"})`."""
    found = [s for s in spans if all((s.get("attributes") or {}).get(k) == v for k, v in attributes.items())]
    if not found:
        return None
    return trace_id(max(found, key=lambda s: s.get("end_time") or ""))
