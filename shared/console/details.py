"""A mapping's page (what it syncs: entities, filters, policies, fields; its state and last jobs) and the jobs
page (every run and operator action, filtered). Data from `shared.admin.ops` (`get_mapping`, `list_jobs`): the
console is another face of the admin API, and a bad filter is the admin API's 400."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.admin import ops
from shared.admin import params as p
from shared.console.fmt import counts, duration_ms, parse, when
from shared.console.layout import Context, Page, facts, segment, table
from shared.console.markup import Html, el
from shared.console.overview import pause_buttons, state_badge
from shared.mapping import FieldMapping, TableMapping
from shared.sync import SyncEngine

JOBS_SHOWN = 20


def _field_notes(m: TableMapping, f: FieldMapping) -> str:
    notes = []
    if f.lookup is not None:
        notes.append(f"lookup through {f.lookup.mapping}" + (f" by {f.lookup.erp_by}" if f.lookup.erp_by else ""))
    if f.value_map is not None:
        notes.append("value map")
    notes += [t.type for t in f.transforms]
    if f.constant is not None:
        notes.append(f"constant {f.constant!r}")
    if f.default is not None:
        notes.append(f"default {f.default!r}")
    if f.not_null:
        notes.append("not null")
    if f.match is not None:
        notes.append(f"match (priority {f.match.priority})")
    return ", ".join(notes)


def fields_table(m: TableMapping) -> Html:
    rows = [[el("code", f.erp or "—"), m.field_direction(f).arrow, el("code", f.crm or "—"), _field_notes(m, f),
             "" if f.enabled else el("span", "disabled", class_="muted")] for f in m.fields]
    return table(["ERP field", "", "CRM field", "How", ""], rows, id="fields")


def jobs_table(ctx: Context, jobs: list[dict[str, Any]], now: dt.datetime, *, with_mapping: bool = True) -> Html:
    rows = []
    for j in jobs:
        started, finished = parse(j["started_at"]), parse(j.get("finished_at"))
        took = duration_ms((finished - started).total_seconds() * 1000) if started and finished else "—"
        failed = (j.get("counts") or {}).get("failed")
        status = el("span", j["status"], class_="bad" if j["status"] == "failed" or failed else None)
        row = [when(j["started_at"], now), el("a", j["mapping"], href=ctx.url(f"mappings/{segment(j['mapping'])}"))
               if with_mapping else None, j["direction"], j["trigger"], status, took, counts(j.get("counts")),
               j.get("started_by") or el("span", "—", class_="muted"), j.get("message") or ""]
        rows.append([c for i, c in enumerate(row) if with_mapping or i != 1])
    headers = ["Started", "Mapping", "Direction", "Trigger", "Status", "Took", "Counts", "Started by", "Message"]
    return table([h for i, h in enumerate(headers) if with_mapping or i != 1], rows, id="jobs",
                 empty="No jobs yet.")


async def mapping_page(engine: SyncEngine, ctx: Context, name: str) -> Page:
    doc = await ops.get_mapping(engine, name)  # 404 for an unknown mapping
    m = engine.mapping(name)
    now = dt.datetime.now(dt.UTC)
    jobs = (await ops.list_jobs(engine, m.name, since=None, limit=JOBS_SHOWN))["jobs"]
    paused = doc.get("paused") or {}
    about = facts([
        ("State", el("span", state_badge(doc), " ", pause_buttons(ctx, doc))),
        *([("Paused", el("span", "by ", paused.get("by") or "?", " ", when(paused.get("at"), now)))] if paused else []),
        ("Description", m.description or "—"),
        ("Syncs", el("span", el("code", m.erp.entity), f" {m.direction.arrow} ", el("code", m.crm.entity),
                     f" ({m.direction.value})")),
        ("ERP filter", el("code", m.filters.erp) if m.filters.erp else "none"),
        ("CRM filter", el("code", m.filters.crm) if m.filters.crm else "none"),
        ("Conflicts", m.conflict.value), ("Deletions", m.deletion.value),
        ("Depends on", ", ".join(m.depends_on) or "nothing"),
        ("Only coupled records", "yes" if m.only_coupled else "no"),
        ("Open errors", el("a", f"{doc['errors']} ({doc['skipped']} skipped)", href=ctx.url("errors", mapping=m.name))),
    ])
    body = el("div", about, el("h2", "Fields"), fields_table(m),
              el("h2", "Last jobs"), jobs_table(ctx, jobs, now, with_mapping=False),
              el("p", el("a", "All jobs of this mapping", href=ctx.url("jobs", mapping=m.name))))
    return Page(f"Mapping {m.name}", body, "overview")


def mapping_choice(engine: SyncEngine, chosen: str | None, *, label: str = "Mapping", blank: str = "all") -> Html:
    """A `<select name=mapping>` of the pack's mappings."""
    options = [el("option", blank, value="", selected=not chosen)] if blank else []
    options += [el("option", m.name, value=m.name, selected=m.name == chosen) for m in engine.pack.mappings]
    return el("label", label, el("select", options, name="mapping"))


async def jobs_page(engine: SyncEngine, ctx: Context) -> Page:
    query = ctx.query
    name, since, limit = p.text(query, "mapping", required=False), p.since(query), p.limit(query)
    doc = await ops.list_jobs(engine, name, since=since, limit=limit)
    now = dt.datetime.now(dt.UTC)
    form = el("form", mapping_choice(engine, name),
              el("label", "Since", el("input", name="since", value=query.get("since", ""),
                                      placeholder="24h, 7d, or a date", size=14)),
              el("label", "Show", el("input", name="limit", value=str(limit), size=4, inputmode="numeric")),
              el("button", "Show", type="submit"), method="get", action=ctx.url("jobs"), class_="bar")
    shown = len(doc["jobs"])
    note = el("p", f"{shown} of {doc['total']} jobs, newest first.", class_="muted")
    return Page("Jobs", el("div", form, note, jobs_table(ctx, doc["jobs"], now)), "jobs")
