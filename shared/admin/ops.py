"""What each admin route does, on a `SyncEngine` (or its state store), returning JSON-ready documents.

Unknown mappings are 404, records that are not coupled or have no error are 404, coupling an already coupled
record is 409, a paused mapping's full sync, match or modified sync is 409 (`shared.admin.pauses`), a mapping
that is disabled or does not sync a direction is 400, a source system that refuses a read is 502. Everything
else a caller gets wrong was refused earlier, in `shared.admin.params`.

Who asked is not a parameter: functions/admin.py runs each operation inside `jobs.acting_as(caller)`, so the
jobs it starts record their `started_by`, and the actions that start no sync write an audit row
(`JobStore.record_action`, trigger `operator`) after they succeed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from shared.admin import documents, pauses
from shared.admin.params import AdminError, bad_request
from shared.connectors import ConnectorError
from shared.connectors.base import NotFound as RecordMissing
from shared.maintenance import retry_failed
from shared.mapping import Direction, Side, TableMapping, UnknownMappingError, dependency_order
from shared.state import AlreadyCoupled, Coupling, NotFound
from shared.state.jobs import OPERATOR
from shared.sync import SyncEngine
from shared.sync import modified as modified_sync
from shared.sync.reconcile import reconcile as check_drift


@contextmanager
def translated() -> Iterator[None]:
    """Turn the core's exceptions into `AdminError`s with the right status."""
    try:
        yield
    except UnknownMappingError as exc:
        raise AdminError(404, "UnknownMapping", str(exc.args[0] if exc.args else exc)) from None
    except NotFound as exc:
        raise AdminError(404, "NotFound", str(exc)) from None
    except AlreadyCoupled as exc:
        raise AdminError(409, "AlreadyCoupled", f"{exc}; uncouple it first") from None
    except ConnectorError as exc:
        raise AdminError(502, "SourceSystemError", exc.message) from None


def table_mapping(engine: SyncEngine, name: str, *, flow: Direction | None = None) -> TableMapping:
    """The named mapping: 404 when unknown, 400 when disabled, not a table mapping or not syncing `flow`."""
    with translated():
        m = engine.mapping(name)
    if not m.enabled:
        raise bad_request(f"mapping '{m.name}' is disabled")
    if m.kind != "table":
        raise bad_request(f"mapping '{m.name}' is an option mapping; it is synced with its table mappings")
    if flow is not None and not m.direction.allows(flow):
        raise bad_request(f"mapping '{m.name}' is {m.direction.value}: it does not sync {flow.value}")
    return m


# ----- mappings and their status
async def mapping_status(engine: SyncEngine, m: TableMapping) -> dict[str, Any]:
    last = None
    async for j in engine.state.jobs.list_jobs(m.name):
        if j.trigger == OPERATOR:
            continue  # an audit row (who uncoupled what), not a sync run: the status is about syncing
        if last is None or j.started_at > last.started_at:
            last = j
    errors = skipped = 0
    async for e in engine.state.errors.list_errors(m.name):
        errors += 1
        skipped += e.skipped
    return {**documents.mapping(m, last_job=last, errors=errors, skipped=skipped),
            **pauses.status_fields(await engine.state.pauses.get(m.name))}


async def list_mappings(engine: SyncEngine) -> dict[str, Any]:
    ordered = dependency_order(engine.pack)
    rest = [m for m in engine.pack.mappings if m not in ordered]
    return {"pack": engine.pack.name, "version": engine.pack.version,
            "mappings": [await mapping_status(engine, m) for m in [*ordered, *rest]]}


async def get_mapping(engine: SyncEngine, name: str) -> dict[str, Any]:
    with translated():
        m = engine.mapping(name)
    return await mapping_status(engine, m)


# ----- couple / uncouple / match
async def couple(engine: SyncEngine, name: str, erp_id: str, crm_id: str) -> dict[str, Any]:
    """Couple two existing records (both are read first: a coupling to nothing would only fail later)."""
    m = table_mapping(engine, name)
    for side, record_id in ((Side.ERP, erp_id), (Side.CRM, crm_id)):
        try:
            await engine.connector(side).get(m.entity(side).entity, record_id)
        except ConnectorError as exc:
            missing = isinstance(exc, RecordMissing)
            raise AdminError(404 if missing else 502, "RecordNotFound" if missing else "SourceSystemError",
                             f"{side.value} {m.entity(side).entity} {record_id!r}: {exc.message}") from None
    with translated():
        await engine.state.couplings.create_coupling(Coupling(m.name, erp_id=erp_id, crm_id=crm_id))
    await engine.state.jobs.record_action(m.name, "couple", message=f"erp {erp_id!r} with crm {crm_id!r}",
                                          counts={"coupled": 1})
    return {"mapping": m.name, "erp_id": erp_id, "crm_id": crm_id, "coupled": True}


async def uncouple(engine: SyncEngine, name: str, side: Side, record_id: str) -> dict[str, Any]:
    with translated():
        m = engine.mapping(name)
        removed = await engine.state.couplings.uncouple(m.name, side, record_id)
    if removed is None:
        raise AdminError(404, "NotCoupled", f"{side.value} record {record_id!r} is not coupled in mapping {m.name!r}")
    await engine.state.jobs.record_action(m.name, "uncouple", message=f"erp {removed.erp_id!r} from crm "
                                          f"{removed.crm_id!r}", counts={"uncoupled": 1})
    return {"mapping": m.name, "erp_id": removed.erp_id, "crm_id": removed.crm_id, "uncoupled": True}


async def full_sync(engine: SyncEngine, names: Sequence[str] | None, *, dry_run: bool,
                    create: bool | None = None, flow: Direction | None = None,
                    restart: bool = False, progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Full sync of the named mappings (default every enabled one), dependencies first; only `flow` when
    given; `restart` ignores a checkpoint an interrupted run left (default: resume from it); `progress` (the
    CLI's display) hears of every page (`shared.sync.full.Progress`)."""
    for name in names or ():
        table_mapping(engine, name)
    if not dry_run:
        await pauses.refuse_if_paused(engine, names)
    options: dict[str, Any] = {} if create is None else {"create": create}
    if flow is not None:
        options["directions"] = frozenset({flow})
    if restart:
        options["resume"] = False
    if progress is not None:
        options["progress"] = progress
    with translated():
        runs = await engine.sync_full(list(names) if names else None, dry_run=dry_run, **options)
    return {"dry_run": dry_run, "runs": [documents.full_run(r) for r in runs]}


async def match(engine: SyncEngine, name: str, *, create: bool, dry_run: bool,
                progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Match-based coupling of one mapping: a full sync of that mapping which couples each uncoupled record
    to its unique match (the mapping's match fields) and creates the rest only when `create`."""
    table_mapping(engine, name)
    return await full_sync(engine, [name], dry_run=dry_run, create=create, progress=progress)


# ----- sync now
async def sync_record(engine: SyncEngine, name: str, flow: Direction, source_ids: Sequence[str], *,
                      create: bool | None, force: bool,
                      progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """Sync each record now; `progress` (the CLI's bar) is called after each one."""
    m = table_mapping(engine, name, flow=flow)
    results = []
    for source_id in source_ids:
        results.append(await engine.sync_record(m, flow, source_id, trigger="manual", create=create, force=force))
        if progress is not None:
            progress()
    return {"results": [documents.result(r) for r in results], "ok": all(r.ok for r in results)}


async def sync_mapping(engine: SyncEngine, name: str, flow: Direction | None) -> dict[str, Any]:
    """The modified-records sync of one mapping now (one direction, or every direction it syncs)."""
    m = table_mapping(engine, name, flow=flow)
    await pauses.refuse_if_paused(engine, [m.name])
    with translated():
        if flow is None:
            runs = await engine.sync_modified(m, trigger="manual")
        else:
            runs = [await modified_sync.sync_direction(engine, m, flow.source, trigger="manual",
                                                       run_start=engine.options.clock())]
    return {"runs": [documents.modified_run(r) for r in runs],
            "ok": not any(r.error or r.failures for r in runs)}


# ----- jobs and errors
async def list_jobs(engine: SyncEngine, name: str | None, *, since: dt.datetime | None, limit: int) -> dict[str, Any]:
    found = [j async for j in engine.state.jobs.list_jobs(name, since=since)]
    found.sort(key=lambda j: j.started_at, reverse=True)
    return {"jobs": [documents.job(j) for j in found[:limit]], "total": len(found)}


async def get_job(engine: SyncEngine, name: str, job_id: str) -> dict[str, Any]:
    with translated():
        return documents.job(await engine.state.jobs.get_job(name, job_id))


async def list_errors(engine: SyncEngine, name: str | None, *, skipped: bool | None, limit: int) -> dict[str, Any]:
    found = [e async for e in engine.state.errors.list_errors(name, skipped=skipped)]
    found.sort(key=lambda e: e.last_seen, reverse=True)
    return {"errors": [documents.error(e) for e in found[:limit]], "total": len(found)}


async def retry_error(engine: SyncEngine, name: str, flow: Direction, source_id: str) -> dict[str, Any]:
    """An operator's retry: synchronise now, creating a missing counterpart, past a skip or an echo guess."""
    m = table_mapping(engine, name, flow=flow)
    with translated():
        await engine.state.errors.get_error(m.name, flow.value, source_id)
    r = await engine.sync_record(m, flow, source_id, trigger="manual", create=True, force=True)
    return {"result": documents.result(r), "ok": r.ok}


async def retry_all(engine: SyncEngine, name: str | None, flow: Direction | None) -> dict[str, Any]:
    if name is not None:
        with translated():
            engine.mapping(name)
    report = await retry_failed(engine, mapping=name, direction=flow.value if flow else None,
                                include_skipped=True, force=True, trigger="manual")
    return {"results": [documents.retried(r) for r in report.results], "retried": len(report.results),
            "still_failing": report.still_failing}


async def set_skipped(engine: SyncEngine, name: str, flow: Direction, source_id: str, *, skip: bool) -> dict[str, Any]:
    change = engine.state.errors.skip_error if skip else engine.state.errors.restore_error
    with translated():
        record = await change(name, flow.value, source_id)
    await engine.state.jobs.record_action(record.mapping, "skip" if skip else "restore", direction=flow.value,
                                          message=f"error of {flow.source.value} record {source_id!r}")
    return documents.error(record)


# ----- reconcile
async def reconcile(engine: SyncEngine, names: Sequence[str] | None, *,
                    progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Drift per mapping; `progress` (the CLI's display) hears (mapping, records checked) per page."""
    chosen = [table_mapping(engine, n) for n in names] if names else [
        m for m in dependency_order(engine.pack) if m.enabled and m.kind == "table"]
    with translated():
        reports = [await check_drift(engine, m, progress=progress) for m in chosen]
    # Counts per drift kind next to the list: what an operator reads first.
    docs = [{**documents.reconcile_report(r), "counts": r.counts()} for r in reports]
    return {"reports": docs, "clean": all(d["clean"] for d in docs)}
