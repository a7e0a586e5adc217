"""`POST /api/data/v9.2/BulkDelete` (Microsoft Learn: "BulkDelete Action", "BulkDeleteResponse ComplexType",
"Delete data in bulk", BulkDeleteRequest; "System Job (AsyncOperation)" and "BulkDeleteOperation" table
references): submits a system job that deletes, in the background, the records its QuerySet selects.

The request is checked whole before anything is written: every parameter, and every QueryExpression, converted
to FetchXml (query_expression.py) and read by fetchxml.py, so an unknown table, column, operator or value is the
request's error and never a job that deletes the wrong rows. Then an `asyncoperations` row (operationtype 13 "Bulk
Delete", Ready / Waiting For Resources) and its `bulkdeleteoperations` row (`_asyncoperationid_value`, counts 0) are
created as the caller, and the answer is `BulkDeleteResponse` whose `JobId` is the asyncoperationid (the SDK
sample: "the GUID that was returned was the asyncoperationid, not the bulkdeleteoperationid").

`settings.async_delay_ms` later (or at `StartDateTime`, if later) the job runs, as the asynchronous service does:
both rows go to Locked / In Progress with `startedon`; the records each query selects at that moment are the set
("It only deletes records that were created before the job starts to run"), read in pages of 1,000 ("creates a
new PagingInfo object to retrieve up to 1000 records at a time"), in the query's order. Each record is deleted by
a DELETE request run through `api.handle` as the caller, exactly as a client's DELETE: change tracking logs it
and Delete steps fire per record ("the bulk delete job triggers the plug-in … every time it deletes a record").
A delete that fails (the record is gone, or the table refuses deletes) counts in `failurecount`, a success in
`successcount`; nothing is rolled back ("If a bulk delete job fails … the operation doesn't roll back any deleted
records"). At the end both rows are Completed / Succeeded with `completedon` (Succeeded even with failures, as
the SDK sample reads the counts of a Succeeded job; unconfirmed). The job waits for the write lock between
records only, so other requests run meanwhile; per record it takes the injected `batch_op_latency_ms`.

Not emulated, refused at the request with 400 0x80040203 (wording unconfirmed): `SendEmailNotification` true (no
mail is sent here), a non-empty `RecurrencePattern` (recurring jobs), `SourceImportId` (no data imports),
`RunNow` true (undocumented), `Options.RunJobForSandbox` true (bypassing the plug-in pipeline). BulkDeleteFailure
rows are not kept (the counts are). `Options.CanRecoverDeletedRecords` is accepted: the environment has no
recycle bin, so records are deleted permanently either way."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from emulators.common import tasks
from emulators.common.store import Actor, utcnow
from emulators.dataverse import fetchxml, query_expression
from emulators.dataverse.annotations import ALL, Formatter
from emulators.dataverse.api import JSON_TYPE, ApiRequest, ApiResponse, handle, insert_row, update_row
from emulators.dataverse.core import Emulator
from emulators.dataverse.errors import BAD_PAYLOAD, BAD_PROPERTY, INVALID_ARGUMENT, DataverseError
from emulators.dataverse.payload import LOGICAL_ANNOTATION, format_datetime, load_json, parse_datetime
from emulators.dataverse.schema import TableDef

log = logging.getLogger(__name__)
ACTION = "BulkDelete"
BULK_DELETE = 13  # asyncoperation OperationType "Bulk Delete"
PAGE = 1000
# (statecode, statuscode) of both rows: Ready / Waiting For Resources, Suspended / Waiting (postponed to a later
# StartDateTime; unconfirmed), Locked / In Progress, Completed / Succeeded or Failed.
READY, POSTPONED, IN_PROGRESS, SUCCEEDED, FAILED = (0, 0), (1, 10), (2, 20), (3, 30), (3, 31)

# The action's parameters as "BulkDelete Action" lists them: (name, type, nullable). ToRecipients / CCRecipients
# are documented as Collection(activityparty); the emulator serves no activityparty table, so `$metadata`
# declares their base type.
PARAMETERS: tuple[tuple[str, str, bool], ...] = (
    ("QuerySet", "Collection(mscrm.QueryExpression)", False), ("JobName", "Edm.String", False),
    ("SendEmailNotification", "Edm.Boolean", False), ("ToRecipients", "Collection(mscrm.crmbaseentity)", False),
    ("CCRecipients", "Collection(mscrm.crmbaseentity)", False), ("RecurrencePattern", "Edm.String", False),
    ("StartDateTime", "Edm.DateTimeOffset", False), ("SourceImportId", "Edm.Guid", True),
    ("RunNow", "Edm.Boolean", True), ("Options", "mscrm.BulkDeleteOptions", True),
)
RESPONSE = "BulkDeleteResponse"
# The action's complex and enum types, for `$metadata` (csdl.py).
COMPLEX_TYPES: dict[str, tuple[str | None, dict[str, str]]] = {
    **query_expression.COMPLEX_TYPES,
    RESPONSE: (None, {"JobId": "Edm.Guid"}),
    "BulkDeleteOptions": (None, {"CanRecoverDeletedRecords": "Edm.Boolean", "RunJobForSandbox": "Edm.Boolean"}),
}
ENUM_TYPES = query_expression.ENUM_TYPES
_REQUIRED = [name for name, _, nullable in PARAMETERS if not nullable]
_WRITE_MESSAGES = {"POST": "Create", "PATCH": "Update", "PUT": "Update", "DELETE": "Delete"}


def not_emulated(what: str) -> DataverseError:
    return DataverseError(400, INVALID_ARGUMENT, f"The emulator does not support {what} in a BulkDelete request.")


# ---------------------------------------------------------------- the request
@dataclass
class Job:
    id: str  # the asyncoperationid, the answer's JobId
    operation_id: str  # the bulkdeleteoperationid
    queries: list[tuple[TableDef, str]]  # (table, FetchXml) per QueryExpression, in order
    actor: Actor
    base: str
    start: dt.datetime


async def submit(emu: Emulator, req: ApiRequest) -> ApiResponse:
    """Check the request whole, create the job's rows, schedule it, answer its JobId."""
    if req.method != "POST":
        raise DataverseError(405, BAD_PROPERTY, f"The HTTP method '{req.method}' is not allowed on this resource.")
    if req.query:  # an action takes no query options (as reads refuse an unknown one)
        raise DataverseError(400, BAD_PROPERTY, f"The query parameter {next(iter(req.query))} is not supported")
    params = _parameters(load_json(req.body))
    queries = [_query(emu, req, q) for q in params["QuerySet"]]
    start = parse_datetime(params["StartDateTime"]) or utcnow()
    job = Job(str(uuid.uuid4()), str(uuid.uuid4()), queries, req.actor, req.base, start)
    if req.in_changeset:  # the change set holds the write lock; rolled back, the job finds no rows and stops
        _create_rows(emu, req, job, params["JobName"])
    else:
        async with emu.write_lock:
            _create_rows(emu, req, job, params["JobName"])
    runner(emu).start(_run(emu, job))
    body = {"@odata.context": f"{req.base}/$metadata#Microsoft.Dynamics.CRM.{RESPONSE}", "JobId": job.id}
    return ApiResponse(200, {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}, body)


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    """The action's parameters, typed; the documented non-nullable ones required (wordings as bulk.py's)."""
    known = {name for name, _, _ in PARAMETERS}
    for name in body:
        if name not in known and not name.startswith("@"):
            raise DataverseError(400, BAD_PAYLOAD, f"The parameter '{name}' in the request payload is not a valid "
                                 f"parameter for the operation '{ACTION}'.")
    for name in _REQUIRED:
        if body.get(name) is None:
            raise DataverseError(400, INVALID_ARGUMENT, f"Required parameter '{name}' of operation '{ACTION}' is "
                                 "missing.")
    _typed(body, "JobName", str, "Edm.String")
    _typed(body, "RecurrencePattern", str, "Edm.String")
    for name in ("SendEmailNotification", "RunNow"):
        _typed(body, name, bool, "Edm.Boolean")
    for name in ("QuerySet", "ToRecipients", "CCRecipients"):
        _typed(body, name, list, "Collection")
    if not isinstance(body["StartDateTime"], str) or parse_datetime(body["StartDateTime"]) is None:
        raise query_expression.cannot_convert(body["StartDateTime"], "Edm.DateTimeOffset")
    if not body["QuerySet"]:
        # (unconfirmed wording) a job needs at least one query.
        raise DataverseError(400, INVALID_ARGUMENT, "The QuerySet parameter must contain at least one query.")
    for name in ("ToRecipients", "CCRecipients"):
        if not all(isinstance(r, dict) for r in body[name]):  # activityparty entities
            raise query_expression.cannot_convert(body[name], "Collection(Microsoft.Dynamics.CRM.activityparty)")
    _refuse_unsupported(body)
    return body


def _typed(body: dict[str, Any], name: str, kind: type, edm: str) -> None:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise query_expression.cannot_convert(value, edm)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if body["SendEmailNotification"]:
        raise not_emulated("email notifications (SendEmailNotification true)")
    if body["RecurrencePattern"].strip():
        raise not_emulated("recurring jobs (a RecurrencePattern other than empty)")
    if body.get("SourceImportId") is not None:
        raise not_emulated("SourceImportId (deleting what a data import created)")
    if body.get("RunNow"):
        raise not_emulated("RunNow true")
    options = body.get("Options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise query_expression.cannot_convert(options, "Microsoft.Dynamics.CRM.BulkDeleteOptions")
    for name, value in options.items():
        if "@" in name:
            continue
        if name not in COMPLEX_TYPES["BulkDeleteOptions"][1]:
            raise DataverseError(400, BAD_PROPERTY, f"The property '{name}' does not exist on type "
                                 "'Microsoft.Dynamics.CRM.BulkDeleteOptions'. Make sure to only use property names "
                                 "that are defined by the type.")
        if value is not None and not isinstance(value, bool):
            raise query_expression.cannot_convert(value, "Edm.Boolean")
    if options.get("RunJobForSandbox"):
        raise not_emulated("sandbox fast delete (Options.RunJobForSandbox true)")


def _query(emu: Emulator, req: ApiRequest, query: Any) -> tuple[TableDef, str]:
    """(table, FetchXml) of one QueryExpression, read now through fetchxml.parse so every error is the request's."""
    table, xml = query_expression.to_fetch_xml(query, emu.logical)
    fetchxml.parse(xml, table, emu.logical, req.actor.user_id)
    return table, xml


def _create_rows(emu: Emulator, req: ApiRequest, job: Job, name: str) -> None:
    state, status = POSTPONED if job.start > utcnow() else READY
    insert_row(emu, req, emu.tables["asyncoperations"], {
        "asyncoperationid": job.id, "name": name, "operationtype": BULK_DELETE, "messagename": ACTION,
        "postponeuntil": format_datetime(job.start) if (state, status) == POSTPONED else None,
        "recurrencepattern": "", "depth": 1, "correlationid": str(uuid.uuid4()), "retrycount": 0,
        "statecode": state, "statuscode": status})
    insert_row(emu, req, emu.tables["bulkdeleteoperations"], {
        "bulkdeleteoperationid": job.operation_id, "name": name, "_asyncoperationid_value": job.id,
        f"_asyncoperationid_value{LOGICAL_ANNOTATION}": "asyncoperation", "successcount": 0, "failurecount": 0,
        "isrecurring": False, "processingqeindex": 0, "orderedquerysetxml": "".join(x for _, x in job.queries),
        "statecode": state, "statuscode": status})


# ---------------------------------------------------------------- the job
async def _run(emu: Emulator, job: Job) -> None:
    wait = max(emu.settings.async_delay_ms / 1000, (job.start - utcnow()).total_seconds())
    await asyncio.sleep(wait)
    try:
        async with emu.write_lock:  # waits for a change set that submitted the job to commit or roll back
            if not _update(emu, job, IN_PROGRESS, startedon=format_datetime(utcnow())):
                return  # the submitting change set rolled back, or the environment was reset
            selected = [(table, _selected(emu, job, table, xml)) for table, xml in job.queries]
        succeeded = failed = 0
        for index, (table, ids) in enumerate(selected):
            if index:
                async with emu.write_lock:
                    if not _update(emu, job, None, processingqeindex=index):
                        return
            for rid in ids:
                await emu.faults.batch_op_delay()
                deleted = await handle(emu, _request(job, "DELETE", f"{table.entity_set}({rid})"))
                if deleted.status == 204:
                    succeeded += 1
                else:
                    failed += 1
                async with emu.write_lock:
                    if not _update(emu, job, None, successcount=succeeded, failurecount=failed):
                        return
        async with emu.write_lock:
            _update(emu, job, SUCCEEDED, completedon=format_datetime(utcnow()))
    except Exception as exc:  # the job fails, as a system job does; the request was answered long ago
        log.exception("bulk delete job %s failed", job.id)
        async with emu.write_lock:
            _update(emu, job, FAILED, completedon=format_datetime(utcnow()), message=str(exc))


def _request(job: Job, method: str, path: str) -> ApiRequest:
    return ApiRequest(method=method, path=path, query={}, headers={}, body=b"", actor=job.actor, base=job.base)


def _selected(emu: Emulator, job: Job, table: TableDef, xml: str) -> list[str]:
    """Ids of the records the query selects now, page by page in the query's order. The ColumnSet and Distinct
    shape what a query returns, not which records match, so every matching record is selected."""
    fetch = fetchxml.parse(xml, table, emu.logical, job.actor.user_id)
    fetch.fields, fetch.distinct, fetch.count = None, False, PAGE
    rows = list(emu.store.table(table.entity_set).all())
    fmt = Formatter(emu, ALL)  # choice and lookup orders compare labels and names
    ids: list[str] = []
    page = 1
    while True:
        fetch.page = page
        result = fetchxml.run(fetch, rows, fmt)
        ids += [row[table.key] for row in result.rows]
        if not result.more:
            return ids
        page += 1


def _update(emu: Emulator, job: Job, state: tuple[int, int] | None, **columns: Any) -> bool:
    """Write both rows (the state to both, the other columns where they exist); False when they are gone."""
    req = _request(job, "PATCH", "")
    found = False
    for entity_set, rid in (("asyncoperations", job.id), ("bulkdeleteoperations", job.operation_id)):
        table = emu.tables[entity_set]
        row = emu.store.table(entity_set).find(rid)
        if row is None:
            continue
        found = True
        changes = {k: v for k, v in columns.items() if k in table.attrs}
        if state is not None:
            changes.update(statecode=state[0], statuscode=state[1])
        if changes:
            update_row(emu, req, table, row, changes)
    return found


# ---------------------------------------------------------------- the tables and the tasks
def refuse_platform_writes(emu: Emulator, req: ApiRequest) -> None:
    """Writes to the system job tables (`api_read_only` in the schema), bulk actions included, are refused: only
    the platform writes them here. (The service also lets a client delete jobs and update an asyncoperation, e.g.
    to cancel it; not emulated. The refusal is the platform's text for a message a table lacks; unconfirmed.)"""
    if req.method == "GET":
        return
    table = emu.tables.get(req.path.split("/", 1)[0].split("(", 1)[0])
    if table is None or not table.api_read_only:
        return
    message = req.path.partition("/Microsoft.Dynamics.CRM.")[2] or _WRITE_MESSAGES.get(req.method, req.method)
    raise DataverseError(400, INVALID_ARGUMENT, f"The '{message}' method does not support entities of type "
                         f"'{table.logical}'.")


class JobRunner:
    """The running jobs of one environment, so tests and shutdown can wait for them or stop them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every started job has finished."""
        await tasks.drain(self.tasks, timeout)

    async def aclose(self) -> None:
        await tasks.cancel(self.tasks)


_RUNNER_KEY = "bulk_delete_jobs"


def runner(emu: Emulator) -> JobRunner:
    """The environment's job runner (kept on the Emulator, created on first use)."""
    jobs: JobRunner | None = getattr(emu, _RUNNER_KEY, None)
    if jobs is None:
        jobs = JobRunner()
        setattr(emu, _RUNNER_KEY, jobs)
    return jobs
