"""`dualsync sync record|modified|full`: synchronise now, from the command line (connection settings from
the environment, see docs/cli.md). Exit 1 when any record failed, 2 on bad arguments or settings."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.cli.app import app
from shared.cli.common import (
    JSON_HELP,
    direction_or_exit,
    emit_json,
    engine_session,
    err,
    fail,
    mapping_or_exit,
    out,
    run,
    settings_or_exit,
)
from shared.mapping import Side, TableMapping, dependency_order
from shared.sync import ModifiedRun, SyncEngine, SyncResult
from shared.sync import modified as modified_sync
from shared.sync.full import FullOptions, FullRun, sync_full

sync_app = typer.Typer(help="Synchronise records now.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")

MappingOpt = Annotated[str, typer.Option("--mapping", "-m", help="Mapping name, e.g. customers")]
MappingsOpt = Annotated[list[str] | None, typer.Option(
    "--mapping", "-m", help="Mapping (repeatable); default: every enabled mapping, in dependency order")]
DirectionOpt = Annotated[str | None, typer.Option("--direction", "-d", help="to-crm or to-erp")]
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def progress_bar() -> Progress:
    """A progress display on stderr (stdout stays clean for tables and JSON); silent when not a terminal."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)


def selected(engine: SyncEngine, names: list[str] | None) -> list[TableMapping]:
    """The named mappings (each must exist and be enabled) in dependency order; all enabled ones by default."""
    ordered = [m for m in dependency_order(engine.pack) if m.enabled]
    if not names:
        return ordered
    for name in names:
        if not mapping_or_exit(engine, name).enabled:
            raise fail(f"mapping '{name}' is disabled in {engine.pack.name}", 2)
    return [m for m in ordered if m.name in names]


def _result_row(r: SyncResult) -> list[str]:
    return [r.source_id, r.outcome.value, r.destination_id or "", str(r.writes), r.message or ""]


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
    settings = settings_or_exit()
    flow = direction_or_exit(direction)

    async def work() -> list[SyncResult]:
        async with engine_session(settings) as engine:
            m = mapping_or_exit(engine, mapping)
            if not m.enabled or not m.direction.allows(flow):
                raise fail(f"mapping '{m.name}' ({m.direction.value}{', disabled' if not m.enabled else ''}) "
                           f"does not sync {flow.value}", 2)
            results = []
            with progress_bar() as bar:
                task = bar.add_task(f"{m.name} {flow.value}", total=len(ids))
                for source_id in ids:
                    results.append(await engine.sync_record(m, flow, source_id, trigger="manual",
                                                            create=create, force=force))
                    bar.advance(task)
            return results

    results = run(work)
    if as_json:
        emit_json([{"source_id": r.source_id, "outcome": r.outcome, "destination_id": r.destination_id,
                    "writes": r.writes, "message": r.message, "retryable": r.retryable} for r in results])
    else:
        table = Table(title=f"sync record · {mapping} · {flow.value}", title_justify="left")
        for column in ("source", "outcome", "destination", "writes", "message"):
            table.add_column(column, overflow="fold")
        for r in results:
            table.add_row(*_result_row(r))
        out.print(table, highlight=False)
    if any(not r.ok for r in results):
        raise typer.Exit(1)


def _run_document(r: ModifiedRun) -> dict[str, Any]:
    return {"mapping": r.mapping, "direction": r.direction, "job_id": r.job_id, "since": r.since,
            "watermark": r.reached, "counts": r.counts,
            "failures": [{"source_id": f.source_id, "message": f.message} for f in r.failures]}


@sync_app.command("modified")
def modified(mappings: MappingsOpt = None, direction: DirectionOpt = None, as_json: JsonOpt = False) -> None:
    """Sync the records changed since the last run (per mapping and direction), and retry failed ones."""
    settings = settings_or_exit()
    flow = direction_or_exit(direction)

    async def work() -> list[ModifiedRun]:
        async with engine_session(settings) as engine:
            chosen = selected(engine, mappings)
            if flow is not None:
                chosen = [m for m in chosen if m.direction.allows(flow)]
                if not chosen:
                    raise fail(f"no selected mapping syncs {flow.value}", 2)
            runs: list[ModifiedRun] = []
            with progress_bar() as bar:
                task = bar.add_task("modified records", total=len(chosen))
                for m in chosen:
                    bar.update(task, description=f"{m.name}")
                    if flow is None:
                        runs += await engine.sync_modified(m, trigger="manual")
                    else:  # one direction of a (possibly bidirectional) mapping
                        runs.append(await modified_sync.sync_direction(
                            engine, m, Side(flow.source), trigger="manual", run_start=engine.options.clock()))
                    bar.advance(task)
            return runs

    runs = run(work)
    if as_json:
        emit_json([_run_document(r) for r in runs])
    else:
        table = Table(title="sync modified", title_justify="left")
        for column in ("mapping", "dir", "job", "counts", "failures"):
            table.add_column(column, overflow="fold")
        for r in runs:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(r.counts.items())) or "nothing changed"
            failures = "\n".join(f"{f.source_id}: {f.message}" for f in r.failures[:5])
            if len(r.failures) > 5:
                failures += f"\n… {len(r.failures) - 5} more (dualsync errors list)"
            table.add_row(r.mapping, r.direction.value, r.job_id, counts, failures)
        out.print(table, highlight=False)
    if any(r.failures for r in runs):
        raise typer.Exit(1)


def print_full_runs(runs: list[FullRun], title: str) -> None:
    """One row per mapping and direction; a dry run lists what it would do."""
    table = Table(title=title, title_justify="left")
    for column in ("mapping", "dir", "job", "pages"):
        table.add_column(column, no_wrap=True)
    table.add_column("counts", overflow="fold")
    table.add_column("failures", overflow="fold")
    for r in runs:
        counts = r.planned if r.job_id is None else r.counts
        text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v) or "nothing to do"
        failures = "\n".join(f"{f.source_id}: {f.message}" for f in r.failures[:5])
        table.add_row(r.mapping, r.direction.value, r.job_id or "(dry run)", str(r.pages), text, failures)
    out.print(table, highlight=False)
    for r in runs:
        for p in r.listed:
            out.print(f"  {r.mapping} {r.direction.value}: would {p.action} {p.source_id}"
                      f"{' → ' + p.target_id if p.target_id else ''}{' (' + p.message + ')' if p.message else ''}",
                      highlight=False, markup=False)


def full_document(r: FullRun) -> dict[str, Any]:
    return {"mapping": r.mapping, "direction": r.direction, "job_id": r.job_id, "resumed_after": r.resumed_after,
            "pages": r.pages, "counts": r.counts, "planned": dict(r.planned),
            "listed": [vars(p) for p in r.listed],
            "failures": [{"source_id": f.source_id, "message": f.message} for f in r.failures]}


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
    settings = settings_or_exit()
    flow = direction_or_exit(direction)
    options = FullOptions(dry_run=dry_run, create=create, resume=not restart,
                          directions=None if flow is None else frozenset({flow}))

    async def work() -> list[FullRun]:
        async with engine_session(settings) as engine:
            chosen = [m.name for m in selected(engine, mappings)]
            with progress_bar() as bar:
                task = bar.add_task("full sync", total=len(chosen))
                runs: list[FullRun] = []
                for name in chosen:  # one mapping at a time, so the bar moves; sync_full keeps the order
                    bar.update(task, description=name)
                    runs += await sync_full(engine, [name], options)
                    bar.advance(task)
            return runs

    runs = run(work)
    if as_json:
        emit_json([full_document(r) for r in runs])
    else:
        print_full_runs(runs, "sync full (dry run)" if dry_run else "sync full")
    if any(r.failures for r in runs):
        raise typer.Exit(1)
