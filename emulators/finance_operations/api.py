"""Entity routes under `/data/`: one transport-neutral handler (`handle`) that both the HTTP routes and each
`$batch` operation call, so a batch runs exactly the code a single request runs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from emulators.common.store import Actor
from emulators.finance_operations import reads, writes
from emulators.finance_operations.core import Emulator
from emulators.finance_operations.errors import (
    CONCURRENCY,
    INVALID_OPERATION,
    FOError,
    no_resource,
    not_found_for_update,
)
from emulators.finance_operations.keys import split_path
from emulators.finance_operations.schema import EntityDef


@dataclass
class ApiRequest:
    method: str
    path: str  # below /data/, percent-decoded, e.g. "CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    actor: Actor
    base: str  # absolute service root, e.g. http://127.0.0.1:8083/data
    url: str = ""  # the full request URL, for the "No HTTP resource" answer
    in_changeset: bool = False


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def content(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


def parse_prefer(headers: dict[str, str]) -> dict[str, str | None]:
    """`Prefer: odata.maxpagesize=10, return=representation` → {"odata.maxpagesize": "10", "return": …}."""
    out: dict[str, str | None] = {}
    for part in re.findall(r'(?:[^,"]|"[^"]*")+', headers.get("prefer", "")):
        name, eq, value = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip() if eq else None
    return out


def error_response(exc: FOError) -> ApiResponse:
    return ApiResponse(exc.status, {"Content-Type": "application/json; odata.metadata=minimal; charset=utf-8",
                                    "OData-Version": "4.0"}, exc.body())


async def handle(emu: Emulator, req: ApiRequest) -> ApiResponse:
    try:
        target = split_path(req.path)
        entity = emu.entities.get(target.entity_set)
        if entity is None:
            # Entity set names are case-sensitive: `customersv3` is no resource at all.
            raise no_resource(req.url or f"{req.base}/{req.path}")
        prefs = parse_prefer(req.headers)
        if target.count:
            if req.method == "GET":
                return reads.count(emu, req, entity)
        elif target.key is None:
            if req.method == "GET":
                return reads.read_collection(emu, req, entity, prefs)
            if req.method == "POST":
                return await _writing(emu, req, lambda: _create(emu, req, entity, prefs))
        else:
            if req.method == "GET":
                return reads.read_one(emu, req, entity, target.key)
            if req.method in ("PATCH", "PUT"):
                return await _writing(emu, req, lambda: _update(emu, req, entity, target.key or "", prefs))
            if req.method == "DELETE":
                return await _writing(emu, req, lambda: _delete(emu, req, entity, target.key or ""))
        raise FOError(405, f"The requested resource does not support http method '{req.method}'.", plain=True)
    except FOError as exc:
        return error_response(exc)


async def _writing(emu: Emulator, req: ApiRequest, op: Any) -> ApiResponse:
    if req.in_changeset:  # the change set already holds the write lock
        return op()
    async with emu.write_lock:
        return op()


def _writable(entity: EntityDef) -> None:
    if entity.read_only:
        # (unconfirmed) wording for a read-only public entity.
        raise FOError(400, f"The entity '{entity.public}' is read-only and does not support writes.",
                      INVALID_OPERATION)


def _entity_response(emu: Emulator, req: ApiRequest, entity: EntityDef, row: dict[str, Any],
                     status: int) -> ApiResponse:
    body = {"@odata.context": reads.context(req, entity, None, "/$entity"), **emu.render(entity, row)}
    return ApiResponse(status, {**reads.headers(), "ETag": emu.etag(row)}, body)


def _create(emu: Emulator, req: ApiRequest, entity: EntityDef, prefs: dict[str, str | None]) -> ApiResponse:
    _writable(entity)
    row = writes.insert(emu, entity, writes.load_json(req.body), req.actor)
    resp = _entity_response(emu, req, entity, row, 201)
    resp.headers["Location"] = emu.key_url(req.base, entity, row)
    if prefs.get("return") == "minimal":
        return ApiResponse(204, {"Location": resp.headers["Location"], "OData-EntityId": resp.headers["Location"],
                                 "OData-Version": "4.0", "Preference-Applied": "return=minimal"})
    return resp


def _checked(emu: Emulator, req: ApiRequest, entity: EntityDef, key: str) -> dict[str, Any]:
    row = emu.locate(entity, key)
    if row is None:
        raise not_found_for_update()
    if_match = req.headers.get("if-match")
    # F&O does not require If-Match on updates and deletes (unconfirmed); `*` and the current etag pass.
    if if_match and if_match.strip() != "*" and _bare(if_match) != _bare(emu.etag(row)):
        raise FOError(412, "The record has been modified by another user since it was read. Refresh the record "
                      "and try again.", CONCURRENCY)  # (unconfirmed) wording
    return row


def _bare(etag: str) -> str:
    etag = etag.strip()
    return etag[2:] if etag.startswith("W/") else etag


def _update(emu: Emulator, req: ApiRequest, entity: EntityDef, key: str, prefs: dict[str, str | None]) -> ApiResponse:
    _writable(entity)
    row = _checked(emu, req, entity, key)
    updated = writes.update(emu, entity, row, writes.load_json(req.body), req.actor)
    if prefs.get("return") == "representation":  # (unconfirmed) honoured on PATCH
        resp = _entity_response(emu, req, entity, updated, 200)
        resp.headers["Preference-Applied"] = "return=representation"
        return resp
    return ApiResponse(204, {"OData-Version": "4.0", "ETag": emu.etag(updated)})


def _delete(emu: Emulator, req: ApiRequest, entity: EntityDef, key: str) -> ApiResponse:
    _writable(entity)
    row = _checked(emu, req, entity, key)
    writes.delete(emu, entity, row, req.actor)
    return ApiResponse(204, {"OData-Version": "4.0"})
