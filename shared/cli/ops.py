"""Operator commands: `dualsync mappings`, `couple` / `uncouple`, `jobs`, `errors …`, `reconcile`. Each
parses its arguments, gets the admin API's document (here, or from a deployed app with `--remote`) and
prints it as a table, or as is with `--json`. `errors retry` syncs records; `couple --match` runs a
coupling-only full sync."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from shared.cli import render
from shared.cli.app import app
from shared.cli.backend import Backend, Document, LocalBackend, call
from shared.cli.common import JsonOpt, direction_or_exit, fail, show, since_or_exit
from shared.cli.progress import RecordProgress, run_full
from shared.cli.sync import any_failures

MappingOpt = Annotated[str, typer.Option("--mapping", "-m", help="Mapping name, e.g. customers")]
FilterMappingOpt = Annotated[str | None, typer.Option("--mapping", "-m", help="Only this mapping")]


# ----- mappings
@app.command()
def mappings(as_json: JsonOpt = False) -> None:
    """The pack's mappings, dependencies first, with their last run and error counts."""
    doc = call(lambda backend: backend.mappings())
    show(doc, as_json, lambda: render.mappings(doc))


# ----- couple / uncouple
@app.command()
def couple(
    mapping: MappingOpt,
    erp_id: Annotated[str | None, typer.Argument(help="ERP record id")] = None,
    crm_id: Annotated[str | None, typer.Argument(help="CRM record id")] = None,
    match: Annotated[bool, typer.Option("--match", help="Couple every uncoupled record with its unique match "
                                                        "(the mapping's match fields)")] = False,
    create: Annotated[bool, typer.Option("--create", help="With --match: create the counterpart when "
                                                          "there is no match")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --match: only show what it would do")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Couple two existing records (ERP_ID CRM_ID), or match-couple a whole mapping with --match."""
    if match == (erp_id is not None):
        raise fail("give either ERP_ID and CRM_ID, or --match", 2)
    if not match and crm_id is None:
        raise fail("couple needs both ERP_ID and CRM_ID", 2)
    if (create or dry_run) and not match:
        raise fail("--create and --dry-run only go with --match", 2)
    if match:
        async def work(backend: Backend) -> tuple[Document, dict[Any, Any]]:
            async def one(name: str, extra: dict[str, Any]) -> Document:
                return await backend.match(name, create=create, dry_run=dry_run, **extra)  # type: ignore[call-arg]
            return await run_full(backend, [mapping], one, what="couple --match", dry_run=dry_run)

        doc, runs = call(work)
        show(doc, as_json, lambda: render.full_runs(doc, f"couple --match · {mapping}"
                                                      f"{' (dry run)' if dry_run else ''}", runs))
        if any_failures(doc):
            raise typer.Exit(1)
        return
    assert erp_id is not None and crm_id is not None
    doc = call(lambda backend: backend.couple(mapping, erp_id, crm_id))
    show(doc, as_json, lambda: render.say(f"coupled {doc['mapping']}: ERP {doc['erp_id']} ⇄ CRM {doc['crm_id']}"))


@app.command()
def uncouple(
    mapping: MappingOpt,
    erp_id: Annotated[str | None, typer.Option("--erp", help="ERP record id")] = None,
    crm_id: Annotated[str | None, typer.Option("--crm", help="CRM record id")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove the coupling of one record (the records themselves are left as they are)."""
    if (erp_id is None) == (crm_id is None):
        raise fail("give exactly one of --erp ID or --crm ID", 2)
    doc = call(lambda backend: backend.uncouple(mapping, erp_id=erp_id, crm_id=crm_id))
    show(doc, as_json, lambda: render.say(
        f"uncoupled {doc['mapping']}: ERP {doc['erp_id'] or '-'} ⇄ CRM {doc['crm_id'] or '-'}"))


# ----- jobs
@app.command()
def jobs(
    mapping: FilterMappingOpt = None,
    since: Annotated[str | None, typer.Option(help="Only jobs started since: 30m, 12h, 7d or an ISO time")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest N jobs")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List sync runs, newest first, with their counters."""
    start = since_or_exit(since)
    doc = call(lambda backend: backend.jobs(mapping, since=start, limit=limit))
    show(doc, as_json, lambda: render.jobs(doc))


# ----- errors
errors_app = typer.Typer(help="Records that failed to sync: list, retry, skip, restore.", no_args_is_help=True)
app.add_typer(errors_app, name="errors")

DirectionOpt = Annotated[str, typer.Option("--direction", "-d", help="to-crm or to-erp")]
SourceArg = Annotated[str, typer.Argument(metavar="SOURCE_ID", help="Id of the record that failed")]


@errors_app.command("list")
def errors_list(
    mapping: FilterMappingOpt = None,
    skipped: Annotated[bool | None, typer.Option("--skipped/--due", help="Only skipped / only those due "
                                                                         "for an automatic retry")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest N errors")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List failed records (newest first)."""
    doc = call(lambda backend: backend.errors(mapping, skipped=skipped, limit=limit))
    show(doc, as_json, lambda: render.errors(doc))


@errors_app.command("skip")
def errors_skip(source_id: SourceArg, mapping: MappingOpt, direction: DirectionOpt, as_json: JsonOpt = False) -> None:
    """Stop retrying a failed record until it is restored."""
    _set_skipped(mapping, direction, source_id, skip=True, as_json=as_json)


@errors_app.command("restore")
def errors_restore(source_id: SourceArg, mapping: MappingOpt, direction: DirectionOpt,
                   as_json: JsonOpt = False) -> None:
    """Make a skipped record due for automatic retries again."""
    _set_skipped(mapping, direction, source_id, skip=False, as_json=as_json)


def _set_skipped(mapping: str, direction: str, source_id: str, *, skip: bool, as_json: bool) -> None:
    flow = direction_or_exit(direction)
    assert flow is not None

    async def work(backend: Backend) -> Document:
        change = backend.skip if skip else backend.restore
        return await change(mapping, flow.value, source_id)

    doc = call(work)
    show(doc, as_json, lambda: render.say(f"{'skipped' if skip else 'restored'} {mapping} {flow.value} {source_id}"))


@errors_app.command("retry")
def errors_retry(
    source_id: Annotated[str | None, typer.Argument(metavar="[SOURCE_ID]", help="Id of the record")] = None,
    mapping: FilterMappingOpt = None,
    direction: Annotated[str | None, typer.Option("--direction", "-d", help="to-crm or to-erp")] = None,
    retry_all: Annotated[bool, typer.Option("--all", help="Retry every recorded error (of --mapping)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sync failed records again now, skipped ones included; a success clears the error. An operator's retry
    is "synchronise now": it creates a missing counterpart and goes past a skip or an echo guess."""
    flow = direction_or_exit(direction)
    if retry_all == (source_id is not None):
        raise fail("give either SOURCE_ID (with --mapping and --direction) or --all", 2)
    if source_id is not None and (mapping is None or flow is None):
        raise fail("retrying one record needs --mapping and --direction", 2)
    if retry_all:
        doc = call(lambda backend: backend.retry_all(mapping, flow.value if flow else None))
        show(doc, as_json, lambda: render.retried(doc))
        if doc["still_failing"]:
            raise typer.Exit(1)
        return
    assert mapping is not None and flow is not None and source_id is not None
    one = call(lambda backend: backend.retry(mapping, flow.value, source_id))
    show(one, as_json, lambda: render.results({"results": [one["result"]]}, f"errors retry · {mapping}"))
    if not one["ok"]:
        raise typer.Exit(1)


# ----- reconcile
@app.command()
def reconcile(
    mappings: Annotated[list[str] | None, typer.Option("--mapping", "-m", help="Mapping (repeatable); "
                                                                              "default: every enabled one")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare both systems through the mapping(s) and report drift; exit 1 when there is any."""
    async def work(backend: Backend) -> tuple[Document, dict[Any, Any]]:
        chosen = mappings or [m["name"] for m in (await backend.mappings())["mappings"]
                              if m["enabled"] and m["kind"] == "table"]
        merged: Document = {"reports": [], "clean": True}
        with RecordProgress() as shown:  # one mapping at a time, so each gets its line and its time
            step = None if isinstance(backend, LocalBackend) else shown.step("reconcile", len(chosen))
            for name in chosen:
                started = time.monotonic()
                if isinstance(backend, LocalBackend):
                    doc = await backend.reconcile([name], progress=shown.reconcile)
                    shown.finish(name)
                else:
                    doc = await backend.reconcile([name])
                    shown.display.advance(step)  # type: ignore[arg-type]
                    shown.timed((name, ""), sum(r["checked"].get(s, 0) for r in doc["reports"] for s in ("erp", "crm")),
                                time.monotonic() - started)
                merged = {"reports": merged["reports"] + doc["reports"], "clean": merged["clean"] and doc["clean"]}
        return merged, shown.runs

    doc, runs = call(work)
    show(doc, as_json, lambda: render.reconcile(doc, runs))
    if not doc["clean"]:
        raise typer.Exit(1)
