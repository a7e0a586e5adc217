"""Bulk operation messages (Microsoft Learn, "Use bulk operation messages", "CreateMultiple Action",
"UpdateMultiple Action", "UpsertMultiple Action"): `POST {entityset}/Microsoft.Dynamics.CRM.CreateMultiple`
(`…UpdateMultiple`, `…UpsertMultiple`) with `{"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.<table>", …}]}`.

Every target goes through the code a single create / update / upsert runs (`api.insert_row`, `api.update_row`):
payload validation, `@odata.bind`, state pairs, unique alternate keys, the change log, the caller as modifier.
The emulator's tables are standard tables, so a request is all-or-nothing: it runs under the write lock, taken
once, in one store transaction; a failing target leaves nothing written, no webhook fires, and the answer is
that target's own error. After the commit the Create / Update steps fire once per record (the documented
"merged pipelines"). One bulk request counts as one request for service protection; its execution time grows
with its records (the injected `batch_op_latency_ms` applies per record, as per `$batch` operation)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from emulators.dataverse.api import (
    JSON_TYPE,
    ApiRequest,
    ApiResponse,
    _missing,
    _resolver,
    insert_row,
    keyed,
    update_row,
)
from emulators.dataverse.core import API_PREFIX, Emulator
from emulators.dataverse.errors import BAD_PAYLOAD, BAD_PROPERTY, INVALID_ARGUMENT, DataverseError, bad_property
from emulators.dataverse.keys import split_path
from emulators.dataverse.payload import load_json, parse_payload
from emulators.dataverse.schema import TableDef

NAMESPACE = "Microsoft.Dynamics.CRM."
Row = dict[str, Any]
Run = Callable[[Emulator, ApiRequest, TableDef, list[Row]], Awaitable[ApiResponse]]


async def bound_action(emu: Emulator, req: ApiRequest, bound: str, action: str) -> ApiResponse:
    """`{bound}/Microsoft.Dynamics.CRM.{action}`: the bulk actions of a table's collection. Any other action is
    a resource this environment does not have, refused as the Web API refuses an unknown segment."""
    set_name, key = split_path(bound)
    table = emu.tables.get(set_name)
    if table is None:
        raise DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{set_name}'.")
    if key is not None or (action not in RUNS and action != "DeleteMultiple"):
        # The bulk actions bind to the collection (crmbaseentity, binding type collection), not to a record.
        raise DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{NAMESPACE}{action}'.")
    if req.method != "POST":
        raise DataverseError(405, BAD_PROPERTY, f"The HTTP method '{req.method}' is not allowed on this resource.")
    if action == "DeleteMultiple":
        # Microsoft Learn: DeleteMultiple on a standard table fails with this message (status and code
        # unconfirmed); every table the emulator serves is a standard table.
        raise DataverseError(400, INVALID_ARGUMENT, "DeleteMultiple has not yet been implemented.")
    targets = _targets(load_json(req.body), action)
    run = RUNS[action]
    if req.in_changeset:  # the change set holds the write lock and its own transaction
        return await run(emu, req, table, targets)
    async with emu.write_lock:
        with emu.store.transaction():
            return await run(emu, req, table, targets)


def _targets(body: dict[str, Any], action: str) -> list[Row]:
    """The `Targets` parameter: a non-empty collection of entities. (Wordings unconfirmed except where noted;
    there is no documented limit on the number of records, only on message size and time.)"""
    for name in body:
        if name != "Targets" and not name.startswith("@"):
            raise DataverseError(400, BAD_PAYLOAD, f"The parameter '{name}' in the request payload is not a valid "
                                 f"parameter for the operation '{action}'.")
    targets = body.get("Targets")
    if targets is None:
        raise DataverseError(400, INVALID_ARGUMENT, f"Required parameter 'Targets' of operation '{action}' is "
                             "missing.")
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        raise DataverseError(400, BAD_PAYLOAD, "Error in request body: the parameter 'Targets' must be a "
                             "collection of entities (JSON objects).")
    if not targets:
        raise DataverseError(400, INVALID_ARGUMENT, "The Targets parameter must contain at least one record.")
    return targets


def _check_type(emu: Emulator, table: TableDef, target: Row) -> None:
    """Microsoft Learn: "You must set the `@odata.type` property for each item in the Targets parameter"."""
    odata_type = target.get("@odata.type")
    if odata_type is None:
        # Read as the declared item type, crmbaseentity, which has no properties (unconfirmed, OData reader).
        named = next((k.split("@", 1)[0] for k in target if not k.startswith("@")), None)
        if named is None:
            raise DataverseError(400, INVALID_ARGUMENT, "The @odata.type annotation is required for every record "
                                 "in the Targets parameter.")
        raise bad_property(named, "crmbaseentity")
    name = str(odata_type).removeprefix("#")
    other = emu.logical.get(name.removeprefix(NAMESPACE)) if name.startswith(NAMESPACE) else None
    if other is None:
        raise DataverseError(400, BAD_PAYLOAD, f"A type named '{odata_type}' could not be resolved by the model. "
                             "When a model is available, each type name must resolve to a valid type.")
    if other is not table:
        # InvalidArgument, as the SDK's CreateMultiple answers a record of another table (wording unconfirmed).
        raise DataverseError(400, INVALID_ARGUMENT, f"The Targets parameter holds a '{other.logical}' record; "
                             f"every record must be of the entity type '{table.logical}' of '{table.entity_set}'.")


def _changes(emu: Emulator, req: ApiRequest, table: TableDef, target: Row) -> dict[str, Any]:
    _check_type(emu, table, target)
    return parse_payload(target, table, _resolver(emu, req))


def _key_segment(table: TableDef, ref: Any) -> str:
    """The key of an `@odata.id` (Microsoft Learn, "UpsertMultiple Action": a relative URL such as
    `accounts(accountnumber='A-1')`; absolute and rooted URLs name the same resource)."""
    path = unquote(urlsplit(ref).path if "://" in ref else ref) if isinstance(ref, str) else ""
    if API_PREFIX in path:
        path = path.split(API_PREFIX, 1)[1]
    set_name, key = split_path(path.strip("/")) if path else ("", None)
    if set_name != table.entity_set or key is None:
        raise DataverseError(400, BAD_PAYLOAD, f"The @odata.id value '{ref}' does not identify a record of the "
                             f"entity set '{table.entity_set}'.")
    return key


def _locate(emu: Emulator, table: TableDef, target: Row,
            changes: dict[str, Any]) -> tuple[Row | None, str | dict[str, Any] | None]:
    """(record, parsed key) the target names by `@odata.id` or by its primary key column; (None, None) when it
    names none."""
    if "@odata.id" in target:
        return emu.locate(table, _key_segment(table, target["@odata.id"]))
    rid = changes.get(table.key)
    if rid is None:
        return None, None
    return emu.store.table(table.entity_set).find(rid), rid


def _once(seen: set[str], table: TableDef, row: Row) -> None:
    """One record, one target: a second target naming a record this request already wrote is refused
    (Dataverse writes the set at once; the error wording is unconfirmed)."""
    if row[table.key] in seen:
        raise DataverseError(400, INVALID_ARGUMENT, f"The Targets parameter names the {table.logical} record with "
                             f"Id = {row[table.key]} more than once.")


async def create_multiple(emu: Emulator, req: ApiRequest, table: TableDef, targets: list[Row]) -> ApiResponse:
    ids = []
    for target in targets:
        await emu.faults.batch_op_delay()
        ids.append(insert_row(emu, req, table, _changes(emu, req, table, target))[table.key])
    body = {"@odata.context": f"{req.base}/$metadata#{NAMESPACE}CreateMultipleResponse", "Ids": ids}
    return ApiResponse(200, {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}, body)


async def update_multiple(emu: Emulator, req: ApiRequest, table: TableDef, targets: list[Row]) -> ApiResponse:
    seen: set[str] = set()
    for target in targets:
        await emu.faults.batch_op_delay()
        changes = _changes(emu, req, table, target)
        row, parsed = _locate(emu, table, target, changes)
        if parsed is None:  # the documented message of an update without a primary key value
            raise DataverseError(400, INVALID_ARGUMENT, "Entity Id must be specified for Update")
        if row is None:
            raise _missing(table, parsed)
        _once(seen, table, row)
        seen.add(update_row(emu, req, table, row, changes)[table.key])
    return ApiResponse(204, {"OData-Version": "4.0"})


async def upsert_multiple(emu: Emulator, req: ApiRequest, table: TableDef, targets: list[Row]) -> ApiResponse:
    """Microsoft Learn, "UpsertMultiple Action": answers 204 No Content (no UpsertMultipleResponse). A target
    without `@odata.id` or primary key is created; one naming a missing record is created with that key."""
    seen: set[str] = set()
    for target in targets:
        await emu.faults.batch_op_delay()
        changes = _changes(emu, req, table, target)
        row, parsed = _locate(emu, table, target, changes)
        if row is None:
            written = insert_row(emu, req, table, changes if parsed is None else keyed(table, parsed, changes))
        else:
            _once(seen, table, row)
            written = update_row(emu, req, table, row, changes)
        seen.add(written[table.key])
    return ApiResponse(204, {"OData-Version": "4.0"})


RUNS: dict[str, Run] = {"CreateMultiple": create_multiple, "UpdateMultiple": update_multiple,
                        "UpsertMultiple": upsert_multiple}
