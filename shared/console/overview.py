"""The overview: every mapping of the pack on one screen — running, paused or auto-paused (and why), how far
behind, how busy and how often failing over the last hour (with sparklines), its open errors and last job —
and the buttons to pause or resume it. The mappings come from `shared.admin.ops.list_mappings`, the same
document the admin API and the CLI show; the last hour from the activity rows (`shared.console.activity`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.admin import ops
from shared.console import activity as act
from shared.console.fmt import duration_ms, when
from shared.console.layout import Context, Page, action, segment, table
from shared.console.markup import Html, el
from shared.console.sparkline import sparkline
from shared.sync import SyncEngine

STATES = ("running", "paused", "auto-paused")


def state_of(doc: dict[str, Any]) -> str:
    """running / paused / auto-paused from the status document; disabled mappings are not run at all."""
    if not doc.get("enabled", True):
        return "disabled"
    state = doc.get("state") or "running"
    return state if state in STATES else "running"


def state_badge(doc: dict[str, Any]) -> Html:
    state = state_of(doc)
    paused = doc.get("paused") or {}
    why = " ".join(str(x) for x in (paused.get("reason"), paused.get("by") and f"— by {paused['by']}",
                                     paused.get("at") and f"since {paused['at']}") if x)
    badge = el("span", state, class_=f"state {state}", title=why or None)
    return el("span", badge, " ", el("span", paused.get("reason"), class_="muted")) if paused.get("reason") else badge


def pause_buttons(ctx: Context, doc: dict[str, Any]) -> Html:
    """Pause for a running table mapping, Resume for a paused one; nothing where pausing means nothing."""
    if doc.get("kind") != "table" or not doc.get("enabled", True):
        return Html("")
    if state_of(doc) == "running":
        return action(ctx, "pause", "Pause", fields={"mapping": doc["name"]}, busy=f"Pausing {doc['name']}…",
                      extra=el("input", name="reason", placeholder="reason (optional)", aria_label="reason",
                               size=14))
    return action(ctx, "resume", "Resume", fields={"mapping": doc["name"]}, kind="primary",
                  busy=f"Resuming {doc['name']}: applying the changes kept while paused…")


def _spark(values: list[Any], label: str, kind: str, shown: Any, *, alarm: bool = False) -> Html:
    return el("span", sparkline(values, label=label, kind=kind), " ", el("b", shown, class_="bad" if alarm else None),
              class_=f"spark-cell {kind}")


def _row(ctx: Context, doc: dict[str, Any], a: act.Activity, now: dt.datetime) -> list[Any]:
    name = doc["name"]
    flow = {"to_crm": "→", "to_erp": "←", "bidirectional": "⇄"}.get(doc["direction"], "?")
    job = doc.get("last_job")
    busy = _spark(a.changes, f"{name}: {a.total_changes} changes in the last hour, per minute", "changes",
                  a.total_changes)
    lag = _spark(a.lag_ms, f"{name}: end-to-end lag per minute over the last hour (max {duration_ms(a.lag_max_ms)})",
                 "lag", duration_ms(a.last_lag_ms))
    fails = _spark(a.failures, f"{name}: {a.total_failures} failures in the last hour, per minute", "failures",
                   a.total_failures, alarm=a.total_failures > 0)
    errors = doc.get("errors", 0)
    open_errors = el("a", f"{errors} ({doc.get('skipped', 0)} skipped)" if doc.get("skipped") else str(errors),
                     href=ctx.url("errors", mapping=name), class_="bad" if errors else None)
    last = (el("span", f"{job['trigger']} · {job['status']} · ", when(job.get("started_at"), now))
            if job else el("span", "none", class_="muted"))
    return [el("a", name, href=ctx.url(f"mappings/{segment(name)}")),
            el("span", doc["erp_entity"], f" {flow} ", doc["crm_entity"]),
            state_badge(doc), busy, lag, fails, open_errors, last, pause_buttons(ctx, doc)]


async def overview(engine: SyncEngine, ctx: Context) -> Page:
    now = dt.datetime.now(dt.UTC)
    listed = await ops.list_mappings(engine)
    hour = await act.last_hour(engine.state, now=now)
    docs = listed["mappings"]
    states = [state_of(d) for d in docs]
    cards = (("Mappings", f"{states.count('running')} running · {states.count('paused')} paused · "
                          f"{states.count('auto-paused')} auto-paused"),
             ("Changes, last hour", str(sum(a.total_changes for a in hour.values()))),
             ("Failures, last hour", str(sum(a.total_failures for a in hour.values()))),
             ("Open errors", str(sum(d.get("errors", 0) for d in docs))))
    totals = el("div", [el("div", el("h3", label), el("span", value, class_="big"), class_="card")
                        for label, value in cards], class_="cards")
    rows = [_row(ctx, d, hour.get(d["name"]) or act.empty(), now) for d in docs]
    body = el("div", totals, table(
        ["Mapping", "Entities", "State", "Changes (1 h)", "Lag", "Failures (1 h)", "Open errors", "Last job", ""],
        rows, id="mappings"))
    return Page(f"{listed['pack']} {listed['version']}", body, "overview")
