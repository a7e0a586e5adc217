"""The API handlers: one `handle(env, request)` for the service document, `$metadata`, companies and every
company entity set, used alike by single HTTP requests and by each `$batch` operation."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from emulators.business_central import metadata, refs
from emulators.business_central.errors import BCError, bad_request, error_body, not_found
from emulators.business_central.options import DELETE, METADATA, WRITE, check_options
from emulators.business_central.reads import (
    Expander,
    company_rows,
    count_collection,
    read_collection,
    read_options,
    shape,
)
from emulators.business_central.routing import ApiRequest, ApiResponse, Target, parse_path
from emulators.business_central.schema import COMPANIES, ENTITY_SETS, EntitySet
from emulators.business_central.state import COMPANY, Environment
from emulators.business_central.validate import check_body
from emulators.common.query import Query
from emulators.common.store import RecordNotFound

log = logging.getLogger(__name__)

# Documented for NavCompanyNotFoundException ("Troubleshooting REST API/OData calls"); status 400 unconfirmed.
NO_COMPANY = ("Cannot process the request because the default company cannot be found. You can specify a default "
              "company in the service configuration file, or specify one for each tenant, or you can add a query "
              "string in the form of \"company=[name]\". You can see the available companies by accessing the "
              "default OData web service, Company. For more information, see \"OData Web Services\" in Help.")


async def handle(env: Environment, req: ApiRequest) -> ApiResponse:
    """Answer one API request; BC errors become error responses (never raised to the caller)."""
    try:
        target = parse_path(req.path)
        if target.kind in ("service", "metadata"):
            return _document(req, target)
        if target.kind == "subscriptions":
            return await env.webhooks.api.handle(req, target)
        if target.kind == "companies":
            return _companies(env, req, target)
        return await _entity(env, req, target)
    except BCError as exc:
        return ApiResponse(exc.status, exc.body(), dict(exc.headers))
    except Exception:  # an emulator bug must not take a whole $batch down; answer as BC does on a crash
        log.exception("unexpected error handling %s %s", req.method, req.path)
        return ApiResponse(500, error_body("Internal_ServerError", "An unexpected error occurred."))


def method_not_allowed(method: str) -> BCError:
    return BCError(405, "BadRequest_MethodNotAllowed", f"'{method}' requests for this resource are not supported.")


def _document(req: ApiRequest, target: Target) -> ApiResponse:
    """The service document (JSON) or `$metadata` (CSDL XML; `$format` other than XML → 406)."""
    if req.method != "GET":
        raise method_not_allowed(req.method)
    if target.kind == "metadata":
        check_options(req.query, METADATA, context="$metadata", xml=True)
        return ApiResponse(200, metadata.csdl(), media_type="application/xml")
    check_options(req.query, METADATA, context="the service document")
    return ApiResponse(200, metadata.service_document(req.base))


def _companies(env: Environment, req: ApiRequest, target: Target) -> ApiResponse:
    if req.method != "GET":
        raise method_not_allowed(req.method)
    table = env.store.table("companies")
    if target.count:
        return count_collection(req, COMPANIES, table.all())
    if target.record_id is None:
        return read_collection(env, req, COMPANIES, table.all(), "companies")
    row = table.find(target.record_id)
    if row is None:
        raise not_found(f"The company '{target.record_id}' does not exist.")
    return entity_response(env, req, COMPANIES, row, "companies/$entity", read_options(COMPANIES, req.query, WRITE))


def entity_response(env: Environment, req: ApiRequest, entity: EntitySet, row: dict[str, Any], context: str,
            options: tuple[Query, list[Any]], status: int = 200) -> ApiResponse:
    """One entity, shaped by its request's `$select` / `$expand` (GET, and the answer to POST and PATCH)."""
    q, navs = options
    body: dict[str, Any] = {"@odata.context": f"{req.base}$metadata#{context}"}
    body.update(shape(env, entity, row, q, Expander(env, navs) if navs else None))
    return ApiResponse(status, body, {"ETag": row["@odata.etag"]})


def company_of(env: Environment, req: ApiRequest, target: Target) -> str:
    """The company of an entity request: from the path, or for an entity set at the API root from BC's custom
    query option `company=<name>` or the `Company` header (as in BC's documented `$batch` example)."""
    if target.company is not None:
        if env.company(target.company) is None:
            raise not_found(f"The company '{target.company}' does not exist.")
        return target.company
    name = req.query.get("company") or req.headers.get("company")
    if not name:
        raise BCError(400, "Internal_CompanyNotFound", NO_COMPANY)
    # Company names compare case-insensitively here (unconfirmed); an unknown name's wording is unconfirmed.
    row = next((r for r in env.store.table("companies").all() if r["name"].casefold() == name.casefold()), None)
    if row is None:
        raise BCError(400, "Internal_CompanyNotFound", f"The company '{name}' does not exist.")
    return str(row["id"])


async def _entity(env: Environment, req: ApiRequest, target: Target) -> ApiResponse:
    entity = target.entity
    assert entity is not None
    company = company_of(env, req, target)
    parent_id = None
    if target.parent is not None:
        parent_entity, parent_id = target.parent
        if env.find(parent_entity.name, company, parent_id) is None:
            raise not_found(f"The {parent_entity.type_name} '{parent_id}' does not exist.")
    if target.record_id is None:
        rows: Any = None
        if req.method == "GET":
            rows = company_rows(env, entity.name, company)
            if parent_id is not None:
                rows = [r for r in rows if r.get("documentId") == parent_id]
            if target.count:
                return count_collection(req, entity, rows)
            return read_collection(env, req, entity, rows, target.context)
        if req.method == "POST" and not target.count:
            options = read_options(entity, req.query, WRITE, "a POST request")
            async with _writing(env, req):
                row = _create(env, req, entity, company, parent_id)
            # OData v4 answers 201 with the new entity's URL in Location; BC follows the protocol here.
            location = f"{req.base}{target.context}({row['id']})"
            resp = entity_response(env, req, entity, row, f"{target.context}/$entity", options, 201)
            resp.headers["Location"] = location
            return resp
        raise method_not_allowed(req.method)
    row = env.find(entity.name, company, target.record_id)
    if row is None or (parent_id is not None and row.get("documentId") != parent_id):
        raise not_found(f"The {entity.type_name} '{target.record_id}' does not exist.")
    context = f"{target.context}/$entity"
    if req.method == "GET":
        return entity_response(env, req, entity, row, context, read_options(entity, req.query, WRITE))
    if req.method not in ("PATCH", "DELETE"):
        raise method_not_allowed(req.method)
    # Options are checked before anything is written: a refused request changes nothing.
    if req.method == "DELETE":
        check_options(req.query, DELETE, context="a DELETE request")
    else:
        options = read_options(entity, req.query, WRITE, "a PATCH request")
    async with _writing(env, req):
        row = _current(env, entity, row)
        check_if_match(req, row)
        if req.method == "DELETE":
            _delete(env, req, entity, company, row)
            return ApiResponse(204)
        row = _update(env, req, entity, company, row)
    return entity_response(env, req, entity, row, context, options)


@contextlib.asynccontextmanager
async def _writing(env: Environment, req: ApiRequest) -> AsyncIterator[None]:
    if req.in_transaction:
        yield
        return
    async with env.write_lock:
        yield


def _current(env: Environment, entity: EntitySet, row: dict[str, Any]) -> dict[str, Any]:
    try:
        return env.store.table(entity.name).get(row["id"])
    except RecordNotFound:
        raise not_found(f"The {entity.type_name} '{row['id']}' does not exist.") from None


def check_if_match(req: ApiRequest, row: dict[str, Any]) -> None:
    """PATCH and DELETE require If-Match: the current etag or `*` (PROTOCOLS.md §3)."""
    given = req.headers.get("if-match")
    if not given:
        raise BCError(400, "BadRequest_InvalidToken",
                      "Could not validate the client concurrency token required by the service. "
                      "Please provide a valid token in the client request.")
    if given.strip() != "*" and given.strip() != row["@odata.etag"]:
        # 409 vs 412 is unconfirmed for BC (PROTOCOLS.md §3); 409 chosen.
        raise BCError(409, "Request_EntityChanged", "Another user has already changed the record.")


def _check_unique(env: Environment, entity: EntitySet, company: str, changes: dict[str, Any],
                  own_id: str | None) -> None:
    key = entity.unique
    if key is None or key not in changes:
        return
    if not changes[key]:
        raise BCError(400, "Application_DialogException", f"The field {key} must have a value.")
    other = env.find_by(entity.name, company, key, changes[key])
    if other is not None and other["id"] != own_id:
        raise BCError(400, "Internal_EntityWithSameKeyExists",
                      f"The record in table {entity.type_name} already exists. Identification fields and values: "
                      f"{'No.' if key == 'number' else 'Code'}='{changes[key]}'")


def _create(env: Environment, req: ApiRequest, entity: EntitySet, company: str,
            parent_id: str | None) -> dict[str, Any]:
    if not entity.writable:
        raise method_not_allowed("POST")
    changes = check_body(entity, req.body)
    if parent_id is not None:
        changes["documentId"] = parent_id
    if entity.parent is not None:
        doc = env.find(entity.parent, company, changes.get("documentId", ""))
        if doc is None:
            raise refs.missing(entity.parent, "SystemId", changes.get("documentId", ""))
        changes.setdefault("sequence", 10000 + max(
            [r.get("sequence", 0) for r in env.rows(entity.name, company) if r.get("documentId") == doc["id"]],
            default=0))
    series = dict(env.number_series)
    try:
        if entity.series is not None and not changes.get("number"):
            changes["number"] = env.next_number(entity, company)
        elif entity.unique and not changes.get(entity.unique):
            raise BCError(400, "Application_DialogException", f"The field {entity.unique} must have a value.")
        _check_unique(env, entity, company, changes, None)
        record = {name: spec.default for name, spec in entity.fields.items() if name != "id"}
        refs.resolve(env, entity.name, company, changes)
        refs.derive(env, entity.name, company, changes, record)
    except BCError:
        env.number_series = series  # a failed insert does not use up a number, as in BC's transaction
        raise
    record.update(changes)
    record[COMPANY] = company.lower()
    row = env.store.table(entity.name).insert(record, req.client.actor)
    _refresh_totals(env, req, entity, company, row)
    return row


def _update(env: Environment, req: ApiRequest, entity: EntitySet, company: str,
            row: dict[str, Any]) -> dict[str, Any]:
    changes = check_body(entity, req.body)
    if entity.parent is not None and "documentId" in changes and changes["documentId"] != row["documentId"]:
        raise bad_request("The documentId of a line cannot be changed.")
    _check_unique(env, entity, company, changes, row["id"])
    refs.resolve(env, entity.name, company, changes)
    refs.derive(env, entity.name, company, changes, row)
    updated = env.store.table(entity.name).update(row["id"], changes, req.client.actor)
    _refresh_totals(env, req, entity, company, updated)
    return env.store.table(entity.name).get(row["id"])


def _delete(env: Environment, req: ApiRequest, entity: EntitySet, company: str, row: dict[str, Any]) -> None:
    table = env.store.table(entity.name)
    if entity.lines:  # deleting a document deletes its lines, as in BC
        lines = env.store.table(entity.lines)
        for line in [r for r in env.rows(entity.lines, company) if r.get("documentId") == row["id"]]:
            lines.delete(line["id"], req.client.actor)
    table.delete(row["id"], req.client.actor)
    _refresh_totals(env, req, entity, company, row)


def _refresh_totals(env: Environment, req: ApiRequest, entity: EntitySet, company: str,
                    line: dict[str, Any]) -> None:
    if entity.parent is None:
        return
    doc_table = env.store.table(entity.parent)
    doc = doc_table.find(line["documentId"])
    if doc is None:
        return
    totals = refs.document_totals(env, entity.name, company, doc["id"])
    if any(doc.get(k) != v for k, v in totals.items()):
        doc_table.update(doc["id"], totals, req.client.actor)


__all__ = ["ENTITY_SETS", "check_if_match", "company_of", "entity_response", "handle", "method_not_allowed"]
