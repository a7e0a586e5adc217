"""Entity routes of the Web API: one transport-neutral handler (`handle`) that both the HTTP routes and each
`$batch` operation call, so a batch runs exactly the code a single request runs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from emulators.common.store import Actor, RecordExists
from emulators.dataverse import annotations, reads
from emulators.dataverse.core import Emulator
from emulators.dataverse.errors import (
    BAD_PROPERTY,
    CONCURRENCY,
    DUPLICATE,
    DUPLICATE_KEY,
    DataverseError,
    not_found,
)
from emulators.dataverse.keys import key_changes, key_fields, key_not_found, split_path
from emulators.dataverse.payload import load_json, parse_payload
from emulators.dataverse.schema import TableDef

JSON_TYPE = "application/json; odata.metadata=minimal"


@dataclass
class ApiRequest:
    method: str
    path: str  # below /api/data/v9.2/, e.g. "accounts(…)"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    actor: Actor
    base: str  # absolute service root, e.g. http://127.0.0.1:8082/api/data/v9.2
    refs: dict[str, str] | None = None  # `$n` → entity URL, inside a change set
    in_changeset: bool = False


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def content(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()


def parse_prefer(headers: dict[str, str]) -> dict[str, str | None]:
    """`Prefer: odata.maxpagesize=10, return=representation` → {"odata.maxpagesize": "10", "return": …}."""
    out: dict[str, str | None] = {}
    for part in re.findall(r'(?:[^,"]|"[^"]*")+', headers.get("prefer", "")):
        name, eq, value = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip() if eq else None
    return out


async def handle(emu: Emulator, req: ApiRequest) -> ApiResponse:
    try:
        from emulators.dataverse import metadata  # table definitions, $metadata, functions (metadata.py)

        if (served := metadata.route(emu, req)) is not None:
            return served
        from emulators.dataverse import bulk_delete  # the BulkDelete action and its system job tables

        if req.path == bulk_delete.ACTION:
            return await bulk_delete.submit(emu, req)
        bulk_delete.refuse_platform_writes(emu, req)
        bound, sep, action = req.path.partition("/Microsoft.Dynamics.CRM.")
        if sep:  # a bound action, `{entityset}/Microsoft.Dynamics.CRM.CreateMultiple` (bulk.py)
            from emulators.dataverse import bulk  # bulk builds on this module's writes

            return await bulk.bound_action(emu, req, bound, action)
        if req.method == "GET" and (related := reads.related_path(emu, req.path)):  # `accounts(<id>)/<nav>`
            return reads.read_related(emu, req, related, parse_prefer(req.headers))
        set_name, key = split_path(req.path)
        table = emu.tables.get(set_name)
        if table is None:
            raise DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{set_name}'.")
        prefs = parse_prefer(req.headers)
        if key is None:
            if req.method == "GET":
                return reads.read_collection(emu, req, table, prefs)
            if req.method == "POST":
                return await _writing(emu, req, lambda: _create(emu, req, table, prefs))
        else:
            if req.method == "GET":
                return reads.read_one(emu, req, table, key, prefs)
            if req.method == "PATCH":
                return await _writing(emu, req, lambda: _upsert(emu, req, table, key, prefs))
            if req.method == "DELETE":
                return await _writing(emu, req, lambda: _delete(emu, req, table, key))
        raise DataverseError(405, BAD_PROPERTY, f"The HTTP method '{req.method}' is not allowed on this resource.")
    except DataverseError as exc:
        return error_response(exc)


def error_response(exc: DataverseError) -> ApiResponse:
    return ApiResponse(exc.status, {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}, exc.body())


async def _writing(emu: Emulator, req: ApiRequest, op: Any) -> ApiResponse:
    if req.in_changeset:  # the change set already holds the write lock
        return op()
    async with emu.write_lock:
        return op()


def _resolver(emu: Emulator, req: ApiRequest) -> Any:
    return lambda value, target: emu.resolve_bind(value, target, req.refs)


def _check_unique(emu: Emulator, table: TableDef, merged: dict[str, Any], rid: str | None) -> None:
    """Alternate keys are unique indexes: a second record with the same key values is refused."""
    for key in emu.settings.alternate_keys.get(table.entity_set, []):
        values = {k: merged.get(k) for k in key_fields(table, key)}
        if any(v is None for v in values.values()):
            continue
        for row in emu.store.table(table.entity_set).lookup(tuple(values), tuple(values.values())):
            if row[table.key] != rid:
                raise DataverseError(412, DUPLICATE_KEY, f"A record that has the attribute values "
                                     f"{', '.join(key)} already exists. The entity key requires that this set of "
                                     "attributes contains unique values. Select unique values and try again.")



def _written(emu: Emulator, req: ApiRequest, table: TableDef, row: dict[str, Any], prefs: dict[str, str | None],
             created: bool) -> ApiResponse:
    url = emu.entity_url(req.base, table, row[table.key])
    headers = {"OData-Version": "4.0", "OData-EntityId": url}
    if prefs.get("return") == "representation":
        select = reads.select_of(req, table)
        body = {"@odata.context": reads.context(req, table, select, "/$entity"),
                **emu.render(table, row, select, reads.wants_annotations(prefs))}
        applied = ["return=representation", *annotations.applied(reads.wants_annotations(prefs))]
        headers.update({"Content-Type": JSON_TYPE, "Preference-Applied": ",".join(applied), "ETag": emu.etag(row)})
        return ApiResponse(201 if created else 200, headers, body)
    return ApiResponse(204, headers)


def _create(emu: Emulator, req: ApiRequest, table: TableDef, prefs: dict[str, str | None]) -> ApiResponse:
    changes = parse_payload(load_json(req.body), table, _resolver(emu, req))
    return _insert(emu, req, table, changes, prefs)


def _insert(emu: Emulator, req: ApiRequest, table: TableDef, changes: dict[str, Any],
            prefs: dict[str, str | None]) -> ApiResponse:
    return _written(emu, req, table, insert_row(emu, req, table, changes), prefs, True)


def insert_row(emu: Emulator, req: ApiRequest, table: TableDef, changes: dict[str, Any]) -> dict[str, Any]:
    """Create one record as every create does (POST, upsert, CreateMultiple, UpsertMultiple)."""
    emu.check_state(table, {}, changes)
    _check_unique(emu, table, changes, changes.get(table.key))
    try:
        return emu.store.table(table.entity_set).insert(changes, req.actor)
    except RecordExists:
        raise DataverseError(412, DUPLICATE, "A record with matching key values already exists.") from None


def update_row(emu: Emulator, req: ApiRequest, table: TableDef, row: dict[str, Any],
               changes: dict[str, Any]) -> dict[str, Any]:
    """Update one existing record as every update does (PATCH, upsert, UpdateMultiple, UpsertMultiple)."""
    rid = row[table.key]
    changes.pop(table.key, None)
    emu.check_state(table, row, changes)
    _check_unique(emu, table, {**row, **changes}, rid)
    return emu.store.table(table.entity_set).update(rid, changes, req.actor)


def keyed(table: TableDef, parsed: str | dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """An upsert that creates takes the key the request named (the GUID or the alternate key values)."""
    changes.update({table.key: parsed} if isinstance(parsed, str) else key_changes(table, parsed))
    return changes


def _check_etag(emu: Emulator, req: ApiRequest, row: dict[str, Any]) -> None:
    if_match = req.headers.get("if-match")
    if if_match and if_match.strip() != "*" and _bare(if_match) != _bare(emu.etag(row)):
        raise DataverseError(412, CONCURRENCY, "The version of the existing record doesn't match the RowVersion "
                             "property provided.")


def _bare(etag: str) -> str:
    etag = etag.strip()
    return etag[2:] if etag.startswith("W/") else etag


def _missing(table: TableDef, parsed: str | dict[str, Any]) -> DataverseError:
    return not_found(table.logical, parsed) if isinstance(parsed, str) else key_not_found(table)


def _upsert(emu: Emulator, req: ApiRequest, table: TableDef, key: str,
            prefs: dict[str, str | None]) -> ApiResponse:
    row, parsed = emu.locate(table, key)
    if row is not None and req.headers.get("if-none-match", "").strip() == "*":
        # Microsoft Learn, "Perform conditional operations": create-only upsert of an existing record → 412.
        raise DataverseError(412, DUPLICATE, "A record with matching key values already exists.")
    if row is None and req.headers.get("if-match"):
        raise _missing(table, parsed)  # `If-Match: *` = update only
    changes = parse_payload(load_json(req.body), table, _resolver(emu, req))
    if row is None:  # upsert creates the record, with the key the URL names
        return _insert(emu, req, table, keyed(table, parsed, changes), prefs)
    _check_etag(emu, req, row)
    return _written(emu, req, table, update_row(emu, req, table, row, changes), prefs, False)


def _delete(emu: Emulator, req: ApiRequest, table: TableDef, key: str) -> ApiResponse:
    row, parsed = emu.locate(table, key)
    if row is None:
        raise _missing(table, parsed)
    _check_etag(emu, req, row)
    emu.store.table(table.entity_set).delete(row[table.key], req.actor)
    return ApiResponse(204, {"OData-Version": "4.0"})
