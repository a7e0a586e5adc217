"""The error list, as Business Central's integration errors page: each failing record with its message and
detail, how often it failed, whether it is skipped; Retry (sync it now, past a skip), Skip (no automatic retries
until restored), Restore, and Retry all for what the filter shows. Data and actions are
`shared.admin.ops.list_errors` / `retry_error` / `set_skipped` / `retry_all`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.admin import ops
from shared.admin import params as p
from shared.console.details import mapping_choice
from shared.console.fmt import when
from shared.console.layout import Context, Page, action, segment, table
from shared.console.markup import Html, el
from shared.mapping import Direction
from shared.sync import SyncEngine

SKIPPED_CHOICES = (("", "all"), ("false", "due for retry"), ("true", "skipped"))


def error_actions(ctx: Context, e: dict[str, Any]) -> Html:
    one = {"mapping": e["mapping"], "direction": e["direction"], "source_id": e["source_id"]}
    toggle = (action(ctx, "restore", "Restore", fields=one, busy="Restoring…") if e["skipped"]
              else action(ctx, "skip", "Skip", fields=one, busy="Skipping…"))
    return el("span", action(ctx, "retry", "Retry", fields=one, kind="primary", busy=f"Retrying {e['source_id']}…"),
              " ", toggle, class_="buttons")


def _row(ctx: Context, e: dict[str, Any], now: dt.datetime) -> list[Any]:
    source = Direction(e["direction"]).source
    record = ctx.url("records", mapping=e["mapping"], side=source.value, id=e["source_id"])
    message = el("div", e["message"], el("details", el("summary", "detail"), el("pre", e["detail"], class_="detail"))
                 if e.get("detail") else None)
    state = el("span", "skipped", class_="warn") if e["skipped"] else el("span", "retrying", class_="muted")
    return [when(e["last_seen"], now), el("a", e["mapping"], href=ctx.url(f"mappings/{segment(e['mapping'])}")),
            e["direction"], el("a", e["source_id"], href=record, class_="id"),
            el("span", e.get("destination_id") or "—", class_="id"), message, e["attempts"], state,
            error_actions(ctx, e)]


async def errors_page(engine: SyncEngine, ctx: Context) -> Page:
    query = ctx.query
    name, skipped, limit = p.text(query, "mapping", required=False), p.flag(query, "skipped", None), p.limit(query)
    doc = await ops.list_errors(engine, name, skipped=skipped, limit=limit)
    now = dt.datetime.now(dt.UTC)
    chosen = "" if skipped is None else str(skipped).lower()
    form = el("form", mapping_choice(engine, name),
              el("label", "Which", el("select", [el("option", label, value=v, selected=v == chosen)
                                                 for v, label in SKIPPED_CHOICES], name="skipped")),
              el("label", "Show", el("input", name="limit", value=str(limit), size=4, inputmode="numeric")),
              el("button", "Filter", type="submit"), method="get", action=ctx.url("errors"), class_="bar")
    retry_all = action(ctx, "retry-all", f"Retry all{f' of {name}' if name else ''}", fields={"mapping": name},
                       busy="Retrying every failed record…") if doc["total"] else Html("")
    note = el("p", f"{len(doc['errors'])} of {doc['total']} errors, latest first. ", retry_all, class_="muted")
    rows = [_row(ctx, e, now) for e in doc["errors"]]
    body = el("div", form, note, table(
        ["Last seen", "Mapping", "Direction", "Source record", "Destination", "Message", "Attempts", "State", ""],
        rows, numeric=frozenset({6}), id="errors", empty="No errors: every record synced."))
    return Page("Errors", body, "errors")
