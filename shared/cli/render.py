"""Rich tables and one-line messages for the admin API's documents (shared/admin/documents.py): what a
command prints without `--json`, the same whether the document came from here or from a deployed app.
Progress bars live here too (stderr, only on a terminal, so stdout stays clean for tables and JSON)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.cli.common import err, out

Document = dict[str, Any]
MAX_FAILURES = 5  # failures listed per run in a table; `dualsync errors list` has them all
MAX_VALUE_CHARS = 60  # a field value in a table cell


def progress_bar() -> Progress:
    """A progress display on stderr; silent when stderr is not a terminal."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)


def when(iso: str | None) -> str:
    """An API time (`2026-03-01T12:00:00Z`) as `2026-03-01 12:00:00` (UTC)."""
    if not iso:
        return ""
    moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def say(text: str) -> None:
    out.print(text, highlight=False, markup=False)


def _table(title: str, columns: Iterable[str], *, no_wrap: Iterable[str] = ()) -> Table:
    table = Table(title=title, title_justify="left")
    keep = set(no_wrap)
    for column in columns:
        table.add_column(column, no_wrap=column in keep, overflow="fold")
    return table


def _counts(counts: dict[str, int], empty: str) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v) or empty


def _failures(failures: list[Document]) -> str:
    text = "\n".join(f"{f['source_id']}: {f['message']}" for f in failures[:MAX_FAILURES])
    if len(failures) > MAX_FAILURES:
        text += f"\n… {len(failures) - MAX_FAILURES} more (dualsync errors list)"
    return text


def _of(shown: int, total: int) -> str:
    return str(shown) if total <= shown else f"{shown} of {total}; --limit for more"


def show(table: Table) -> None:
    out.print(table, highlight=False)


# ----- sync
def results(doc: Document, title: str) -> None:
    """`{"results": [result…]}` of sync-record (also one retried record, wrapped in a list)."""
    table = _table(title, ("source", "outcome", "destination", "writes", "message"))
    for r in doc["results"]:
        table.add_row(r["source_id"], r["outcome"], r["destination_id"] or "", str(r["writes"]), r["message"] or "")
    show(table)


def modified_runs(doc: Document, title: str = "sync modified") -> None:
    table = _table(title, ("mapping", "dir", "job", "counts", "failures"))
    for r in doc["runs"]:
        failures = _failures(r["failures"])
        if r.get("error"):
            failures = f"run failed: {r['error']}\n{failures}".strip()
        table.add_row(r["mapping"], r["direction"], r["job_id"] or "", _counts(r["counts"], "nothing changed"),
                      failures)
    show(table)


def number(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f} s" if value < 60 else str(dt.timedelta(seconds=round(value)))


def full_runs(doc: Document, title: str, timings: Mapping[tuple[str, str], Any] | None = None) -> None:
    """One row per mapping and direction; a dry run lists what it would do. `timings` (the CLI's progress
    runs, by mapping and direction) add each run's records, time and rate."""
    columns = ("mapping", "dir", "job", "pages", *(("records", "time", "rate") if timings is not None else ()),
               "counts", "failures")
    table = _table(title, columns, no_wrap=("mapping", "dir", "job", "pages", "records", "time", "rate"))
    for r in doc["runs"]:
        counts = r["planned"] if r["job_id"] is None else r["counts"]
        measured: tuple[str, ...] = ()
        if timings is not None:
            run = timings.get((r["mapping"], r["direction"]))
            records = run.records if run is not None else sum(counts.values())
            rate = run.rate if run is not None else None
            measured = (number(records), seconds(run.seconds if run else None),
                        f"{number(rate)}/s" if rate is not None else "")
        table.add_row(r["mapping"], r["direction"], r["job_id"] or "(dry run)", str(r["pages"]), *measured,
                      _counts(counts, "nothing to do"), _failures(r["failures"]))
    show(table)
    for r in doc["runs"]:
        for p in r["listed"]:
            target = f" → {p['target_id']}" if p["target_id"] else ""
            why = f" ({p['message']})" if p["message"] else ""
            say(f"  {r['mapping']} {r['direction']}: would {p['action']} {p['source_id']}{target}{why}")


# ----- operator views
def state(m: Document) -> str:
    """A mapping's state (running / paused / auto-paused), with since when and why when paused."""
    paused = m.get("paused")
    if not paused:
        return m.get("state") or "running"
    return f"{m['state']} since {when(paused['at'])}: {paused['reason']}"


def mappings(doc: Document) -> None:
    table = _table(f"mappings · {doc['pack']} {doc['version']}",
                   ("mapping", "state", "kind", "dir", "ERP", "CRM", "last run", "status", "errors", "skipped"))
    for m in doc["mappings"]:
        last = m["last_job"] or {}
        table.add_row(m["name"] + ("" if m["enabled"] else " (disabled)"), state(m), m["kind"], m["direction"],
                      m["erp_entity"], m["crm_entity"], when(last.get("started_at")), last.get("status", ""),
                      str(m["errors"]), str(m["skipped"]))
    show(table)


def jobs(doc: Document) -> None:
    shown = doc["jobs"]
    title = f"jobs ({_of(len(shown), doc['total'])})"
    table = _table(title, ("started", "mapping", "dir", "trigger", "status", "job", "counts"),
                   no_wrap=("started", "mapping", "dir", "trigger", "status", "job"))
    for j in shown:
        table.add_row(when(j["started_at"]), j["mapping"], j["direction"], j["trigger"], j["status"], j["job_id"],
                      _counts(j["counts"], "-"))
    show(table)


def errors(doc: Document) -> None:
    shown = doc["errors"]
    title = f"errors ({_of(len(shown), doc['total'])})"
    table = _table(title, ("last seen", "mapping", "dir", "source", "destination", "tries", "skipped", "message"),
                   no_wrap=("last seen", "mapping", "dir", "source", "destination", "tries", "skipped"))
    for e in shown:
        table.add_row(when(e["last_seen"]), e["mapping"], e["direction"], e["source_id"], e["destination_id"] or "",
                      str(e["attempts"]), "yes" if e["skipped"] else "", e["message"])
    show(table)


def retried(doc: Document) -> None:
    """`errors retry --all`: one row per record retried."""
    table = _table(f"errors retry ({doc['retried']})", ("mapping", "dir", "source", "outcome", "destination",
                                                        "message"))
    for r in doc["results"]:
        table.add_row(r["mapping"], r["direction"], r["source_id"], r["outcome"], r["destination_id"] or "",
                      r["message"] or "")
    show(table)


def reconcile(doc: Document, timings: Mapping[tuple[str, str], Any] | None = None) -> None:
    """One row per drift line; the checked column also gives each mapping's counts per drift kind (and, with
    `timings` from the CLI's progress, the time it took and the rate)."""
    table = _table("reconcile", ("mapping", "checked", "drift", "side", "ids", "fields", "message"))
    for r in doc["reports"]:
        checked = f"ERP {r['checked'].get('erp', 0)} · CRM {r['checked'].get('crm', 0)}"
        run = (timings or {}).get((r["mapping"], ""))
        if run is not None and run.seconds is not None:
            checked += f"\nin {seconds(run.seconds)}" + (f", {number(run.rate)}/s" if run.rate is not None else "")
        counts = r.get("counts") or {}
        if counts:
            checked += "\n" + _counts(counts, "")
        if not r["drift"]:
            table.add_row(r["mapping"], checked, "none", "", "", "", "")
        for d in r["drift"]:
            table.add_row(r["mapping"], checked, d["kind"], d["side"] or "", "\n".join(d["ids"]),
                          ", ".join(d["fields"]), d["message"])
    show(table)


def _value(value: Any) -> str:
    """A stored field value, short enough for a table cell (`--json` has it whole)."""
    text = repr(value) if value is not None else "(empty)"
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


def conflicts(doc: Document) -> None:
    shown = doc["conflicts"]
    table = _table(f"conflicts ({_of(len(shown), doc['total'])})",
                   ("id", "at", "mapping", "ERP / CRM id", "field", "ERP value", "CRM value", "last synced",
                    "winner", "policy", "state"), no_wrap=("id", "at", "mapping", "winner", "policy"))
    for c in shown:
        if c["kind"] != "update":
            state = "coupling removed"
        elif c["reversed_at"]:
            state = f"reversed {when(c['reversed_at'])}"
        else:
            state = "reversible" if c["reversible"] else "not reversible (redacted value)"
        table.add_row(c["id"], when(c["at"]), c["mapping"], f"{c['erp_id'] or '-'}\n{c['crm_id'] or '-'}",
                      c["field"] or f"(deleted on {'crm' if c['winner'] == 'erp' else 'erp'})",
                      _value(c["erp_value"]) if c["field"] else "", _value(c["crm_value"]) if c["field"] else "",
                      _value(c["base_value"]) if c["field"] else "", c["winner"] or "", c["policy"], state)
    show(table)


def reversed_conflict(doc: Document) -> None:
    c, r = doc["conflict"], doc["result"]
    loser = "crm" if c["winner"] == "erp" else "erp"
    value = _value(c[f"{loser}_value"])
    if doc["ok"]:
        say(f"reversed {c['id']}: {c['mapping']} {c['field']!r} is {value} (the {loser.upper()} value) on both "
            f"sides ({r['outcome']}, {r['writes']} write(s))")
    else:
        say(f"reversed {c['id']}: {c['mapping']} {c['field']!r} is {value} on the {c['winner'].upper()} side; the "
            f"pair's sync failed ({r['message']}), the next sync carries it over")
