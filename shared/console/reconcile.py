"""Reconcile: drift per mapping (`shared.admin.ops.reconcile`, the check an operator runs to trust the
integration). It reads every record of both systems in each mapping's scope, so it runs when asked (the Check
button), never on opening the page; each drifting record links to its record page."""

from __future__ import annotations

from typing import Any

from shared.admin import ops
from shared.admin import params as p
from shared.console.details import mapping_choice
from shared.console.layout import Context, Page, facts, segment, table
from shared.console.markup import Html, el
from shared.sync import SyncEngine

DRIFT_SHOWN = 200  # per mapping; the CLI and the admin API have the whole list


def _record_links(ctx: Context, mapping: str, d: dict[str, Any]) -> Html:
    """Links to the record pages of a drift's ids: a coupled pair (no side) by its ERP id; a `missing` coupling
    by the record that still exists (the drift's side is the one whose record is gone)."""
    if d["side"] is None:
        pairs = [("erp", d["ids"][0])]
    elif d["kind"] == "missing":
        pairs = [("crm" if d["side"] == "erp" else "erp", d["ids"][0])]
    else:
        pairs = [(d["side"], i) for i in d["ids"]]
    links = [el("a", i, href=ctx.url("records", mapping=mapping, side=s, id=i), class_="id") for s, i in pairs]
    return el("span", [(link, " ") for link in links])


def _report(ctx: Context, r: dict[str, Any]) -> Html:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()) if v) or "no drift"
    verdict = el("span", "clean", class_="good") if r["clean"] else el("span", "drift", class_="bad")
    rows = [[d["kind"], d["side"] or "both", _record_links(ctx, r["mapping"], d), ", ".join(d["fields"]),
             d["message"]] for d in r["drift"][:DRIFT_SHOWN]]
    more = (el("p", f"… and {len(r['drift']) - DRIFT_SHOWN} more (dualsync reconcile --json lists them all)",
               class_="muted") if len(r["drift"]) > DRIFT_SHOWN else None)
    return el("section", el("h2", el("a", r["mapping"], href=ctx.url(f"mappings/{segment(r['mapping'])}")), " · ",
                            verdict),
              facts([("Checked", f"ERP {r['checked'].get('erp', 0)} · CRM {r['checked'].get('crm', 0)} records"),
                     ("Drift", counts)]),
              table(["Kind", "Side", "Records", "Fields", "Message"], rows, empty="Both sides agree."), more,
              class_="report", data_mapping=r["mapping"])


async def reconcile_page(engine: SyncEngine, ctx: Context) -> Page:
    query = ctx.query
    name, run = p.text(query, "mapping", required=False), bool(p.flag(query, "run", False))
    form = el("form", mapping_choice(engine, name, blank="every enabled mapping"),
              el("input", type="hidden", name="run", value="true"),
              el("button", "Check", type="submit", class_="primary"),
              method="get", action=ctx.url("reconcile"), class_="bar")
    if not run:
        hint = el("p", "Reads every record in each mapping's scope on both sides and compares them through the "
                       "mapping: it takes a while on large tables.", class_="muted")
        return Page("Reconcile", el("div", form, hint), "reconcile")
    doc = await ops.reconcile(engine, [name] if name else None)
    verdict = (el("p", "Both systems agree on every mapping checked.", class_="notice ok") if doc["clean"]
               else el("p", "Drift found: see below.", class_="notice warn"))
    return Page("Reconcile", el("div", form, verdict, *(_report(ctx, r) for r in doc["reports"])), "reconcile")
