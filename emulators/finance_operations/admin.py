"""F&O-specific `/_admin` pieces: the writer the common admin routes use (so "Ava creates a customer" goes
through validation, number sequences and data events exactly as an API write), and the data event catalog
(`/_admin/dataevents/...`: endpoints, activations, failed and sent events)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.common.admin import AdminError
from emulators.common.store import Actor, RecordNotFound
from emulators.finance_operations import writes
from emulators.finance_operations.core import Emulator
from emulators.finance_operations.errors import FOError
from emulators.finance_operations.events import Activation, DataEvents, Endpoint
from emulators.finance_operations.keys import format_literal
from emulators.finance_operations.schema import BY_PUBLIC

_EVENTS = {"Create", "Update", "Delete"}


class Writer:
    """AdminWriter: rows are addressed by their key predicate, e.g. `dataAreaId='usmf',CustomerAccount='US-001'`
    (URL-encoded in the admin path). Read-only entities (invoices) and read-only fields may be written here."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def _row(self, table: str, rid: str) -> dict[str, Any]:
        entity = self.emu.entities[table]
        try:
            row = self.emu.locate(entity, rid)
        except FOError as exc:
            raise AdminError(exc.status, exc.body()) from None
        if row is None:
            raise RecordNotFound(rid)
        return row

    def insert(self, table: str, body: dict[str, Any], actor: Actor) -> dict[str, Any]:
        try:
            return writes.insert(self.emu, self.emu.entities[table], body, actor, trusted=True)
        except FOError as exc:
            raise AdminError(exc.status, exc.body()) from None

    def update(self, table: str, record_id: str, body: dict[str, Any], actor: Actor) -> dict[str, Any]:
        row = self._row(table, record_id)
        try:
            return writes.update(self.emu, self.emu.entities[table], row, body, actor, trusted=True)
        except FOError as exc:
            raise AdminError(exc.status, exc.body()) from None

    def delete(self, table: str, record_id: str, actor: Actor) -> None:
        writes.delete(self.emu, self.emu.entities[table], self._row(table, record_id), actor)


def render_row(emu: Emulator) -> Any:
    """The admin `render` hook: rows in wire form, with `@key` (the predicate that addresses the row)."""
    def render(row: dict[str, Any]) -> dict[str, Any]:
        entity = emu.entities[row["_set"]]
        key = ",".join(f"{k}={format_literal(row.get(k))}" for k in entity.keys)
        return {"@odata.etag": emu.etag(row), "@key": key, **emu.render(entity, row)}
    return render


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


class DataEventAdmin:
    def __init__(self, emu: Emulator, events: DataEvents) -> None:
        self.emu = emu
        self.events = events

    def routes(self) -> list[Route]:
        return [
            Route("/_admin/dataevents/endpoints", self._endpoints, methods=["GET", "POST"]),
            Route("/_admin/dataevents/endpoints/{id}", self._endpoint, methods=["DELETE"]),
            Route("/_admin/dataevents/activations", self._activations, methods=["GET", "POST"]),
            Route("/_admin/dataevents/activations/{id}", self._activation, methods=["DELETE"]),
            Route("/_admin/dataevents/errors", self._errors, methods=["GET"]),
            Route("/_admin/dataevents/sent", self._sent, methods=["GET"]),
        ]

    async def _endpoints(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"value": [e.public() for e in self.events.endpoints.values()]})
        body = await request.json()
        url, headers = body.get("url"), body.get("headers") or {}
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _bad("url must be an http(s) URL")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            return _bad("headers must be an object of strings")
        endpoint = Endpoint(str(uuid.uuid4()), str(body.get("name") or "endpoint"), url, dict(headers))
        self.events.endpoints[endpoint.id] = endpoint
        return JSONResponse(endpoint.public(), status_code=201)

    async def _endpoint(self, request: Request) -> Response:
        if self.events.endpoints.pop(request.path_params["id"], None) is None:
            return JSONResponse({"error": "unknown endpoint"}, status_code=404)
        return Response(status_code=204)

    async def _activations(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"value": [a.public() for a in self.events.activations.values()]})
        body = await request.json()
        name = str(body.get("entity") or "")
        entity = self.emu.entities.get(name) or BY_PUBLIC.get(name.lower())
        if entity is None:
            return _bad(f"unknown entity {name!r}")
        events = body.get("events") or sorted(_EVENTS)
        if not isinstance(events, list) or not set(events) <= _EVENTS:
            return _bad("events must be a list of Create, Update, Delete")
        if body.get("endpoint") not in self.events.endpoints:
            return _bad(f"unknown endpoint {body.get('endpoint')!r}")
        legal = body.get("legal_entity")
        if legal is not None:
            legal = str(legal).lower()
            if not entity.company_specific:
                return _bad(f"{entity.entity_set} is not company-specific: legal_entity must be null")
            if legal not in self.emu.companies():
                return _bad(f"unknown legal entity {legal!r}")
        activation = Activation(str(uuid.uuid4()), entity.entity_set, frozenset(events), legal, body["endpoint"])
        self.events.activations[activation.id] = activation
        return JSONResponse(activation.public(), status_code=201)

    async def _activation(self, request: Request) -> Response:
        if self.events.activations.pop(request.path_params["id"], None) is None:
            return JSONResponse({"error": "unknown activation"}, status_code=404)
        return Response(status_code=204)

    async def _errors(self, request: Request) -> Response:
        return JSONResponse({"value": self.events.errors})

    async def _sent(self, request: Request) -> Response:
        sent = self.events.sent
        return JSONResponse({"count": len(sent), "errors": len(self.events.errors),
                             "last_control_number": sent[-1]["control_number"] if sent else None,
                             "value": sent[-100:]})
