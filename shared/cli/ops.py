"""Operator commands: `dualsync couple` / `uncouple`, `dualsync jobs`, `dualsync errors …`, `dualsync reconcile`.
They read and change the sync state; `errors retry` syncs records, `couple --match` runs a coupling-only
full sync."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from shared.cli.app import app
from shared.cli.common import (
    JSON_HELP,
    direction_or_exit,
    emit_json,
    engine_session,
    fail,
    mapping_or_exit,
    out,
    run,
    settings_or_exit,
    since_or_exit,
    state_session,
    when,
)
from shared.cli.sync import full_document, print_full_runs
from shared.connectors import ConnectorError
from shared.mapping import Direction, Side
from shared.state import AlreadyCoupled, Coupling, ErrorRecord, Job, NotFound
from shared.sync.full import FullOptions, sync_full
from shared.sync.reconcile import reconcile as reconcile_mapping

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
MappingOpt = Annotated[str, typer.Option("--mapping", "-m", help="Mapping name, e.g. customers")]
FilterMappingOpt = Annotated[str | None, typer.Option("--mapping", "-m", help="Only this mapping")]


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
    as_json: JsonOpt = False,
) -> None:
    """Couple two existing records (ERP_ID CRM_ID), or match-couple a whole mapping with --match."""
    settings = settings_or_exit()
    if match == (erp_id is not None):
        raise fail("give either ERP_ID and CRM_ID, or --match", 2)
    if not match and crm_id is None:
        raise fail("couple needs both ERP_ID and CRM_ID", 2)
    if create and not match:
        raise fail("--create only goes with --match", 2)

    async def work() -> Any:
        async with engine_session(settings) as engine:
            m = mapping_or_exit(engine, mapping)
            if match:  # a full sync that couples by the match fields and (with --create) creates the rest
                return await sync_full(engine, [m.name], FullOptions(create=create))
            assert erp_id is not None and crm_id is not None
            for side, record_id in ((Side.ERP, erp_id), (Side.CRM, crm_id)):
                try:  # both records must exist: a coupling to nothing would only fail later, in the sync
                    await engine.connector(side).get(m.entity(side).entity, record_id)
                except ConnectorError as exc:
                    raise fail(f"{side.value} {m.entity(side).entity} {record_id!r}: {exc}") from None
            try:
                return await engine.state.couplings.create_coupling(Coupling(m.name, erp_id=erp_id, crm_id=crm_id))
            except AlreadyCoupled as exc:
                raise fail(f"{exc}; uncouple it first (dualsync uncouple)") from None

    result = run(work)
    if as_json:
        emit_json([full_document(r) for r in result] if match else
                  {"mapping": mapping, "erp_id": erp_id, "crm_id": crm_id})
    elif match:
        print_full_runs(result, f"couple --match · {mapping}")
    else:
        out.print(f"coupled {mapping}: ERP {erp_id} ⇄ CRM {crm_id}", highlight=False)


@app.command()
def uncouple(
    mapping: MappingOpt,
    erp_id: Annotated[str | None, typer.Option("--erp", help="ERP record id")] = None,
    crm_id: Annotated[str | None, typer.Option("--crm", help="CRM record id")] = None,
) -> None:
    """Remove the coupling of one record (the records themselves are left as they are)."""
    settings = settings_or_exit()
    if (erp_id is None) == (crm_id is None):
        raise fail("give exactly one of --erp ID or --crm ID", 2)
    side, record_id = (Side.ERP, erp_id) if erp_id is not None else (Side.CRM, crm_id)
    assert record_id is not None

    async def work() -> Coupling | None:
        async with state_session(settings) as state:
            return await state.couplings.uncouple(mapping, side, record_id)

    removed = run(work)
    if removed is None:
        raise fail(f"{side.value} record {record_id!r} is not coupled in mapping {mapping!r}")
    out.print(f"uncoupled {mapping}: ERP {removed.erp_id or '-'} ⇄ CRM {removed.crm_id or '-'}", highlight=False)


# ----- jobs
@app.command()
def jobs(
    mapping: FilterMappingOpt = None,
    since: Annotated[str | None, typer.Option(help="Only jobs started since: 30m, 12h, 7d or an ISO time")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest N jobs")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List sync runs, newest first, with their counters."""
    settings = settings_or_exit()
    start = since_or_exit(since)

    async def work() -> list[Job]:
        async with state_session(settings) as state:
            return [j async for j in state.jobs.list_jobs(mapping, since=start)]

    found = sorted(run(work), key=lambda j: j.started_at, reverse=True)[:limit]
    if as_json:
        emit_json(found)
        return
    table = Table(title=f"jobs ({len(found)})", title_justify="left")
    for column in ("started", "mapping", "dir", "trigger", "status", "job"):
        table.add_column(column, no_wrap=True)
    table.add_column("counts", overflow="fold")
    for j in found:
        counts = ", ".join(f"{k} {v}" for k, v in j.counts.items() if v) or "-"
        table.add_row(when(j.started_at), j.mapping, j.direction, j.trigger, j.status, j.job_id, counts)
    out.print(table, highlight=False)


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
    as_json: JsonOpt = False,
) -> None:
    """List failed records (newest first)."""
    settings = settings_or_exit()

    async def work() -> list[ErrorRecord]:
        async with state_session(settings) as state:
            return [e async for e in state.errors.list_errors(mapping, skipped=skipped)]

    found = sorted(run(work), key=lambda e: e.last_seen, reverse=True)
    if as_json:
        emit_json(found)
        return
    table = Table(title=f"errors ({len(found)})", title_justify="left")
    for column in ("last seen", "mapping", "dir", "source", "destination", "tries", "skipped"):
        table.add_column(column, no_wrap=True)
    table.add_column("message", overflow="fold")
    for e in found:
        table.add_row(when(e.last_seen), e.mapping, e.direction, e.source_id, e.destination_id or "",
                      str(e.attempts), "yes" if e.skipped else "", e.message)
    out.print(table, highlight=False)


@errors_app.command("skip")
def errors_skip(source_id: SourceArg, mapping: MappingOpt, direction: DirectionOpt) -> None:
    """Stop retrying a failed record until it is restored."""
    _set_skipped(mapping, direction, source_id, skip=True)


@errors_app.command("restore")
def errors_restore(source_id: SourceArg, mapping: MappingOpt, direction: DirectionOpt) -> None:
    """Make a skipped record due for automatic retries again."""
    _set_skipped(mapping, direction, source_id, skip=False)


def _set_skipped(mapping: str, direction: str, source_id: str, *, skip: bool) -> None:
    settings = settings_or_exit()
    flow = direction_or_exit(direction)
    assert flow is not None

    async def work() -> None:
        async with state_session(settings) as state:
            change = state.errors.skip_error if skip else state.errors.restore_error
            try:
                await change(mapping, flow.value, source_id)
            except NotFound as exc:
                raise fail(str(exc)) from None

    run(work)
    out.print(f"{'skipped' if skip else 'restored'} {mapping} {flow.value} {source_id}", highlight=False)


@errors_app.command("retry")
def errors_retry(
    source_id: Annotated[str | None, typer.Argument(metavar="[SOURCE_ID]", help="Id of the record")] = None,
    mapping: FilterMappingOpt = None,
    direction: Annotated[str | None, typer.Option("--direction", "-d", help="to-crm or to-erp")] = None,
    retry_all: Annotated[bool, typer.Option("--all", help="Retry every recorded error (of --mapping)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sync failed records again now, skipped ones included; a success clears the error."""
    settings = settings_or_exit()
    flow = direction_or_exit(direction)
    if retry_all == (source_id is not None):
        raise fail("give either SOURCE_ID (with --mapping and --direction) or --all", 2)
    if source_id is not None and (mapping is None or flow is None):
        raise fail("retrying one record needs --mapping and --direction", 2)

    async def work() -> list[dict[str, Any]]:
        async with engine_session(settings) as engine:
            if source_id is not None:
                assert mapping is not None and flow is not None
                if await engine.state.errors.find_error(mapping, flow.value, source_id) is None:
                    raise fail(f"no error recorded for {source_id!r} ({flow.value}) in mapping {mapping!r}")
                todo = [(mapping, flow, source_id)]
            else:
                todo = [(e.mapping, Direction.parse(e.direction), e.source_id)
                        async for e in engine.state.errors.list_errors(mapping)
                        if flow is None or e.direction == flow.value]
            done = []
            for name, way, record_id in todo:
                # An operator's retry is "synchronise now": create a missing counterpart, past a skip or an echo guess.
                result = await engine.sync_record(name, way, record_id, trigger="manual", create=True, force=True)
                done.append({"mapping": name, "direction": way, "source_id": record_id, "outcome": result.outcome,
                             "destination_id": result.destination_id, "message": result.message})
            return done

    done = run(work)
    if as_json:
        emit_json(done)
    else:
        table = Table(title=f"errors retry ({len(done)})", title_justify="left")
        for column in ("mapping", "dir", "source", "outcome", "destination", "message"):
            table.add_column(column, overflow="fold")
        for d in done:
            table.add_row(d["mapping"], d["direction"].value, d["source_id"], d["outcome"].value,
                          d["destination_id"] or "", d["message"] or "")
        out.print(table, highlight=False)
    if any(d["outcome"].value in ("failed", "skipped") for d in done):
        raise typer.Exit(1)


# ----- reconcile
@app.command()
def reconcile(
    mappings: Annotated[list[str] | None, typer.Option("--mapping", "-m", help="Mapping (repeatable); "
                                                                              "default: every enabled one")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare both systems through the mapping(s) and report drift; exit 1 when there is any."""
    settings = settings_or_exit()

    async def work() -> list[Any]:
        async with engine_session(settings) as engine:
            names = mappings or [m.name for m in engine.pack.mappings if m.enabled]
            for name in names:
                mapping_or_exit(engine, name)
            return [await reconcile_mapping(engine, name) for name in names]

    reports = run(work)
    if as_json:
        emit_json([{"mapping": r.mapping, "checked": r.checked, "clean": r.clean, "drift": r.drift}
                   for r in reports])
    else:
        table = Table(title="reconcile", title_justify="left")
        for column in ("mapping", "checked", "drift", "side", "ids", "fields"):
            table.add_column(column, overflow="fold")
        table.add_column("message", overflow="fold")
        for r in reports:
            checked = f"ERP {r.checked.get('erp', 0)} · CRM {r.checked.get('crm', 0)}"
            if r.clean:
                table.add_row(r.mapping, checked, "none", "", "", "", "")
            for d in r.drift:
                table.add_row(r.mapping, checked, d.kind, d.side.value if d.side else "", "\n".join(d.ids),
                              ", ".join(d.fields), d.message)
        out.print(table, highlight=False)
    if not all(r.clean for r in reports):
        raise typer.Exit(1)
