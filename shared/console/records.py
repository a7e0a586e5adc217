"""One record pair: look up a coupling by either side's id and see both records as they are now, side by side
with the coupling's snapshot (the values last synced, the base of the three-way merge), its last result per
direction and any error recorded for either side. A value that moved since the last sync is marked: that is
what the next sync will carry over (or settle as a conflict).

`lookup` is an operation like those of `shared.admin.ops` (an engine in, a JSON-ready document out, the same
status codes); the page renders its document.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.admin import documents, ops
from shared.admin import params as p
from shared.connectors import ConnectorError
from shared.connectors.base import NotFound as RecordMissing
from shared.console.errors import error_actions
from shared.console.fmt import value, when
from shared.console.layout import Context, Page, facts, segment, table
from shared.console.markup import Html, el
from shared.mapping import Direction, Side, field_key, field_values, same
from shared.sync import SyncEngine


async def _read(engine: SyncEngine, entity: str, side: Side, record_id: str | None) -> dict[str, Any]:
    if record_id is None:
        return {"id": None, "found": False, "values": None, "message": "no counterpart: not coupled"}
    try:
        record = await engine.connector(side).get(entity, record_id)
    except RecordMissing:
        return {"id": record_id, "found": False, "values": None, "message": "not found (deleted?)"}
    except ConnectorError as exc:
        return {"id": record_id, "found": False, "values": None, "message": exc.message}
    return {"id": record_id, "found": True, "values": dict(record.values),
            "modified_on": documents.when(record.modified_on), "etag": record.etag}


async def lookup(engine: SyncEngine, name: str, side: Side, record_id: str) -> dict[str, Any]:
    """The coupling of `side` record `record_id` in mapping `name`, both records now and the errors of both
    directions (404 for an unknown mapping; a record that is not coupled is shown on its own)."""
    with ops.translated():
        m = engine.mapping(name)
    if m.kind != "table":
        raise p.bad_request(f"mapping '{m.name}' is an option mapping: it has no records of its own")
    coupling = await engine.state.couplings.find_coupling(m.name, side, record_id)
    ids = {side: record_id, side.other: coupling.id_of(side.other) if coupling else None}
    records = {s: await _read(engine, m.entity(s).entity, s, ids[s]) for s in Side}
    errors = []
    for flow in (Direction.TO_CRM, Direction.TO_ERP):
        source_id = ids[flow.source]
        if m.direction.allows(flow) and source_id is not None:
            found = await engine.state.errors.find_error(m.name, flow.value, source_id)
            if found is not None:
                errors.append(documents.error(found))
    c = None if coupling is None else {
        "erp_id": coupling.erp_id, "crm_id": coupling.crm_id, "pending": coupling.pending,
        "synced_at": documents.when(coupling.synced_at), "result_to_crm": coupling.result_to_crm,
        "result_to_erp": coupling.result_to_erp, "skipped": coupling.skipped, "attempts": coupling.attempts,
        "last_job_id": coupling.last_job_id, "snapshot": coupling.snapshot}
    return {"mapping": m.name, "side": side.value, "id": record_id, "coupling": c,
            "erp": records[Side.ERP], "crm": records[Side.CRM], "errors": errors}


def _cell(now: Any, base: Any, known: bool) -> Html:
    changed = known and not same(now, base)
    return el("td", value(now), class_="value changed" if changed else "value",
              title="changed since the last sync" if changed else None)


def _fields(engine: SyncEngine, doc: dict[str, Any]) -> Html:
    m = engine.mapping(doc["mapping"])
    snapshot = (doc["coupling"] or {}).get("snapshot") or {}
    now = {s: field_values(m, doc[s.value]["values"], s) if doc[s.value]["found"] else None for s in Side}
    head = el("tr", *(el("th", h) for h in ("Field", f"ERP now ({m.erp.entity})", "ERP at last sync",
                                             "CRM at last sync", f"CRM now ({m.crm.entity})")))
    rows = []
    for f in m.fields:
        if not f.enabled or f.sourceless:
            continue
        key = field_key(f)
        base = {s: snapshot.get(s.value, {}).get(key) for s in Side}
        known = {s: now[s] is not None and s.value in snapshot for s in Side}
        rows.append(el("tr", el("th", key),
                       _cell(now[Side.ERP] and now[Side.ERP].get(key), base[Side.ERP], known[Side.ERP]),
                       el("td", value(base[Side.ERP]) if snapshot else "—", class_="value muted"),
                       el("td", value(base[Side.CRM]) if snapshot else "—", class_="value muted"),
                       _cell(now[Side.CRM] and now[Side.CRM].get(key), base[Side.CRM], known[Side.CRM])))
    return el("table", el("thead", head), el("tbody", rows), class_="side-by-side", id="fields")


def _side(r: dict[str, Any]) -> Html:
    if r["id"] is None:
        return el("span", r["message"], class_="muted")
    state = (el("span", "found", class_="good") if r["found"] else el("span", r["message"], class_="bad"))
    return el("span", el("code", r["id"]), " · ", state)


def _result(engine: SyncEngine, doc: dict[str, Any], ctx: Context, now: dt.datetime) -> Html:
    c = doc["coupling"]
    if c is None:
        summary = el("p", f"The {doc['side'].upper()} record {doc['id']!r} is not coupled in {doc['mapping']}.",
                     class_="notice warn")
    else:
        summary = facts([
            ("ERP record", _side(doc["erp"])), ("CRM record", _side(doc["crm"])),
            ("Last synced", when(c["synced_at"], now)),
            ("Last result → CRM", c["result_to_crm"] or "—"), ("Last result → ERP", c["result_to_erp"] or "—"),
            ("State", "pending creation" if c["pending"] else "skipped" if c["skipped"] else "coupled"),
            ("Last job", c["last_job_id"] or "—")])
    errors = [[e["direction"], e["message"], e["attempts"], "skipped" if e["skipped"] else "retrying",
               error_actions(ctx, e)] for e in doc["errors"]]
    return el("div", summary, el("h2", "Fields"), _fields(engine, doc),
              el("h2", "Errors"), table(["Direction", "Message", "Attempts", "State", ""], errors, id="record-errors",
                                        empty="No error recorded for this pair."),
              el("p", el("a", f"Mapping {doc['mapping']}", href=ctx.url(f"mappings/{segment(doc['mapping'])}"))))


async def records_page(engine: SyncEngine, ctx: Context) -> Page:
    query = ctx.query
    name, record_id = p.text(query, "mapping", required=False), p.text(query, "id", required=False)
    side_text = p.text(query, "side", required=False) or "erp"
    if side_text not in ("erp", "crm"):
        raise p.bad_request(f"'side' must be erp or crm, got {side_text!r}")
    side = Side(side_text)
    tables = [m for m in engine.pack.mappings if m.kind == "table"]
    form = el("form",
              el("label", "Mapping", el("select", [el("option", m.name, value=m.name, selected=m.name == name)
                                                   for m in tables], name="mapping")),
              el("label", "Side", el("select", [el("option", s.value.upper(), value=s.value, selected=s is side)
                                                for s in Side], name="side")),
              el("label", "Record id", el("input", name="id", value=record_id or "", size=40, required=True)),
              el("button", "Look up", type="submit", class_="primary"),
              method="get", action=ctx.url("records"), class_="bar")
    if not name or not record_id:
        hint = el("p", "Give either side's id: the ERP record's (a BC id, an F&O key) or the CRM record's.",
                  class_="muted")
        return Page("Record", el("div", form, hint), "records")
    doc = await lookup(engine, name, side, record_id)
    return Page(f"Record {record_id}", el("div", form, _result(engine, doc, ctx, dt.datetime.now(dt.UTC))), "records")
