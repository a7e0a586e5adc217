"""`dualsync sync record|modified|full`: synchronise now, here (connection settings from the environment, see
docs/cli.md) or in a deployed app (`--remote`). `--json` prints the admin API's documents: `sync-record`,
`sync` and `full-sync` (several mappings are several calls, their runs concatenated in order). Exit 1 when
any record failed, 2 on bad arguments or settings."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli import render
from shared.cli.app import app
from shared.cli.backend import Backend, Document, LocalBackend, call
from shared.cli.common import JsonOpt, direction_or_exit, err, fail, show
from shared.cli.progress import run_full

sync_app = typer.Typer(help="Synchronise records now.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")

MappingOpt = Annotated[str, typer.Option("--mapping", "-m", help="Mapping name, e.g. customers")]
MappingsOpt = Annotated[list[str] | None, typer.Option(
    "--mapping", "-m", help="Mapping (repeatable); default: every enabled mapping, in dependency order")]
DirectionOpt = Annotated[str | None, typer.Option("--direction", "-d", help="to-crm or to-erp")]

# Records per admin call when remote: each call stays well inside the 230 s Azure allows a request.
REMOTE_CHUNK = 20


async def selected(backend: Backend, names: list[str] | None) -> list[Document]:
    """The named mappings (each must exist, be enabled and be a table mapping) in dependency order; every
    enabled table mapping by default. The order is the admin API's `mappings` (dependencies first)."""
    listed = (await backend.mappings())["mappings"]
    usable = [m for m in listed if m["enabled"] and m["kind"] == "table"]
    if not names:
        return usable
    known = {m["name"]: m for m in listed}
    for name in names:
        if name not in known:
            raise fail(f"unknown mapping '{name}'; the pack has: {', '.join(known)}", 2)
        if not known[name]["enabled"]:
            raise fail(f"mapping '{name}' is disabled", 2)
        if known[name]["kind"] != "table":
            raise fail(f"mapping '{name}' is an option mapping; it is synced with its table mappings", 2)
    return [m for m in usable if m["name"] in names]


def not_paused(chosen: list[Document]) -> list[Document]:
    """Every enabled mapping but the paused ones (each named on stderr): what a run of "every mapping" syncs.
    A paused mapping named with --mapping is left in, for the app to refuse with its reason."""
    for m in chosen:
        if m.get("paused"):
            err.print(f"{m['name']} skipped: {render.state(m)} (dualsync resume {m['name']})", markup=False,
                      highlight=False)
    return [m for m in chosen if not m.get("paused")]


def allows(m: Document, flow: str) -> bool:
    return m["direction"] in ("bidirectional", flow)


@sync_app.command("record")
def record(
    ids: Annotated[list[str], typer.Argument(metavar="SOURCE_ID...", help="Id(s) of the source record(s)")],
    mapping: MappingOpt,
    direction: Annotated[str, typer.Option("--direction", "-d", help="to-crm (ERP record) or to-erp (CRM record)")],
    create: Annotated[bool | None, typer.Option(
        "--create/--no-create", help="Create the counterpart when uncoupled (default: the mapping's only_coupled)")
    ] = None,
    force: Annotated[bool, typer.Option(help="Sync even a skipped record or an apparent echo")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sync one or more records now, reading each source record as it is."""
    flow = direction_or_exit(direction)
    assert flow is not None

    async def work(backend: Backend) -> Document:
        with render.progress_bar() as bar:
            task = bar.add_task(f"{mapping} {flow.value}", total=len(ids))
            if isinstance(backend, LocalBackend):
                return await backend.sync_record(mapping, flow.value, ids, create=create, force=force,
                                                 progress=lambda: bar.advance(task))
            merged: Document = {"results": [], "ok": True}
            for start in range(0, len(ids), REMOTE_CHUNK):
                chunk = ids[start:start + REMOTE_CHUNK]
                doc = await backend.sync_record(mapping, flow.value, chunk, create=create, force=force)
                merged = {"results": merged["results"] + doc["results"], "ok": merged["ok"] and doc["ok"]}
                bar.advance(task, len(chunk))
            return merged

    doc = call(work)
    show(doc, as_json, lambda: render.results(doc, f"sync record · {mapping} · {flow.value}"))
    if not doc["ok"]:
        raise typer.Exit(1)


@sync_app.command("modified")
def modified(mappings: MappingsOpt = None, direction: DirectionOpt = None, as_json: JsonOpt = False) -> None:
    """Sync the records changed since the last run (per mapping and direction), and retry failed ones."""
    flow = direction_or_exit(direction)

    async def work(backend: Backend) -> Document:
        chosen = await selected(backend, mappings)
        if not mappings:
            chosen = not_paused(chosen)
        if flow is not None:
            chosen = [m for m in chosen if allows(m, flow.value)]
            if not chosen:
                raise fail(f"no selected mapping syncs {flow.value}", 2)
        merged: Document = {"runs": [], "ok": True}
        with render.progress_bar() as bar:
            task = bar.add_task("modified records", total=len(chosen))
            for m in chosen:  # one admin call per mapping, so the bar moves
                bar.update(task, description=m["name"])
                doc = await backend.sync_mapping(m["name"], flow.value if flow else None)
                merged = {"runs": merged["runs"] + doc["runs"], "ok": merged["ok"] and doc["ok"]}
                bar.advance(task)
        return merged

    doc = call(work)
    show(doc, as_json, lambda: render.modified_runs(doc))
    if not doc["ok"]:
        raise typer.Exit(1)


def any_failures(doc: Document) -> bool:
    return any(r["failures"] for r in doc["runs"])


@sync_app.command("full")
def full(mappings: MappingsOpt = None, direction: DirectionOpt = None,
         dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be created, "
                                                                 "updated or coupled")] = False,
         create: Annotated[bool | None, typer.Option("--create/--couple-only", help="Create counterparts "
                                                     "of unmatched records (default: the mapping's setting)")] = None,
         restart: Annotated[bool, typer.Option("--restart", help="Ignore a checkpoint left by an "
                                                                 "interrupted run")] = False,
         as_json: JsonOpt = False) -> None:
    """Full sync: couple by natural key / match fields, create the rest, in dependency order (resumable)."""
    flow = direction_or_exit(direction)

    async def work(backend: Backend) -> tuple[Document, dict[Any, Any]]:
        listed = await selected(backend, mappings)
        if not mappings and not dry_run:  # a dry run writes nothing: it runs on a paused mapping too
            listed = not_paused(listed)

        async def one(name: str, extra: dict[str, Any]) -> Document:
            return await backend.full_sync([name], dry_run=dry_run, create=create,  # type: ignore[call-arg]
                                           direction=flow.value if flow else None, restart=restart, **extra)
        return await run_full(backend, [m["name"] for m in listed], one, what="full sync", dry_run=dry_run)

    doc, runs = call(work)
    show(doc, as_json, lambda: render.full_runs(doc, "sync full (dry run)" if dry_run else "sync full", runs))
    if any_failures(doc):
        raise typer.Exit(1)
