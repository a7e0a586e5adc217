"""`/_admin` routes: read and write records directly (as a named user, so webhooks fire as for a person's
edit in the UI), one at a time or many in one request (`/_admin/bulk/{table}`, for seeding benchmarks),
change injected faults, limits and delivery faults at run time, and re-seed. Not part of either real API;
tests, the demo and benchmarks use them to act as "a user on the other side"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.common.delivery import DeliveryFaults, DeliveryInjector
from emulators.common.faults import FaultInjector, Faults
from emulators.common.identity import Identity
from emulators.common.store import Actor, RecordExists, RecordNotFound, Store
from emulators.common.throttle import Limits, Throttle


class AdminError(Exception):
    """Raised by an AdminWriter: answered with `status` and `body` as they are."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class AdminWriter(Protocol):
    """An emulator's own write path (validation, number sequences, defaults) for admin writes, so a record
    "created in the UI by Ava" looks as it would there. Without one, rows go into the store as given."""

    def insert(self, table: str, body: dict[str, Any], actor: Actor) -> dict[str, Any]: ...
    def update(self, table: str, record_id: str, body: dict[str, Any], actor: Actor) -> dict[str, Any]: ...
    def delete(self, table: str, record_id: str, actor: Actor) -> None: ...


class Admin:
    def __init__(self, *, store: Store, identity: Identity, faults: FaultInjector, throttle: Throttle,
                 default_actor: Actor, users: Callable[[], dict[str, Actor]],
                 reseed: Callable[[int, int], None], render: Callable[[dict[str, Any]], dict[str, Any]],
                 writer: AdminWriter | None = None, delivery: DeliveryInjector | None = None) -> None:
        self.store = store
        self.identity = identity
        self.faults = faults
        self.throttle = throttle
        self.default_actor = default_actor
        self.users = users
        self.reseed = reseed
        # How a stored row looks when read through the admin route (the emulator's own wire form).
        self.render = render
        self.writer = writer
        # Faults of the emulator's outgoing notifications (None: it sends none).
        self.delivery = delivery

    def routes(self) -> list[Route]:
        return [
            Route("/_admin/config", self._config, methods=["GET", "PATCH"]),
            Route("/_admin/reset", self._reset, methods=["POST"]),
            Route("/_admin/tables", self._tables, methods=["GET"]),
            Route("/_admin/tables/{table}", self._rows, methods=["GET", "POST"]),
            Route("/_admin/bulk/{table}", self._bulk, methods=["POST"]),
            Route("/_admin/tables/{table}/{id:path}", self._row, methods=["GET", "PATCH", "DELETE"]),
        ]

    def _actor(self, request: Request) -> Actor:
        who = request.query_params.get("as")
        if not who:
            return self.default_actor
        client = self.identity.clients.get(who)
        if client:
            return client.actor
        users = self.users()
        if who.lower() in users:
            return users[who.lower()]
        raise LookupError(f"unknown user {who!r}")

    async def _config(self, request: Request) -> Response:
        if request.method == "PATCH":
            body = await request.json()
            if "delivery" in body and self.delivery is None:
                return JSONResponse({"error": "this emulator sends no notifications"}, status_code=400)
            try:
                faults = Faults.model_validate({**self.faults.faults.model_dump(), **body.get("faults", {})})
                limits = Limits.model_validate({**self.throttle.limits.model_dump(), **body.get("limits", {})})
                delivery = None
                if "delivery" in body and self.delivery is not None:
                    delivery = DeliveryFaults.model_validate({**self.delivery.faults.model_dump(),
                                                              **body["delivery"]})
            except ValidationError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            self.faults.reconfigure(faults)
            self.throttle.limits = limits
            if delivery is not None and self.delivery is not None:
                self.delivery.reconfigure(delivery)
        answer: dict[str, Any] = {"faults": self.faults.faults.model_dump(),
                                  "limits": self.throttle.limits.model_dump()}
        if self.delivery is not None:
            answer.update(self.delivery.report())
        return JSONResponse(answer)

    async def _reset(self, request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        self.reseed(int(body.get("records", 0)), int(body.get("seed", 1)))
        return JSONResponse({name: len(t) for name, t in self.store.tables.items()})

    async def _tables(self, request: Request) -> Response:
        return JSONResponse({name: len(t) for name, t in self.store.tables.items()})

    async def _rows(self, request: Request) -> Response:
        table = self.store.tables.get(request.path_params["table"])
        if table is None:
            return JSONResponse({"error": "unknown table"}, status_code=404)
        if request.method == "GET":
            return JSONResponse({"value": [self.render(r) for r in table.all()]})
        try:
            body, actor = await request.json(), self._actor(request)
            async with self.store.write_lock:
                row = self.writer.insert(table.name, body, actor) if self.writer else table.insert(body, actor)
        except AdminError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        except RecordExists as exc:
            return JSONResponse({"error": f"exists: {exc}"}, status_code=409)
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.render(row), status_code=201)

    async def _bulk(self, request: Request) -> Response:
        """Insert a JSON array of rows in one request, each exactly as `POST /_admin/tables/{table}` would (the
        writer, the named user), for seeding benchmarks with 10^5-10^6 records. Not a transaction: on the first
        refused row the answer names its index, and the rows before it stay. Answers `{"inserted", "ids"}`."""
        table = self.store.tables.get(request.path_params["table"])
        if table is None:
            return JSONResponse({"error": "unknown table"}, status_code=404)
        try:
            rows, actor = await request.json(), self._actor(request)
        except (LookupError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            return JSONResponse({"error": "the body must be a JSON array of objects"}, status_code=400)
        ids: list[str] = []
        async with self.store.write_lock:  # one acquisition for the whole array: no API write lands between
            for index, body in enumerate(rows):
                try:
                    row = self.writer.insert(table.name, body, actor) if self.writer else table.insert(body, actor)
                except AdminError as exc:
                    return JSONResponse({"index": index, "inserted": len(ids), **exc.body}, status_code=exc.status)
                except (RecordExists, LookupError) as exc:
                    status = 409 if isinstance(exc, RecordExists) else 400
                    return JSONResponse({"index": index, "inserted": len(ids), "error": str(exc)}, status_code=status)
                ids.append(str(row[table.key]))
        return JSONResponse({"inserted": len(ids), "ids": ids}, status_code=201)

    async def _row(self, request: Request) -> Response:
        table = self.store.tables.get(request.path_params["table"])
        if table is None:
            return JSONResponse({"error": "unknown table"}, status_code=404)
        rid = request.path_params["id"]
        try:
            if request.method == "GET":
                return JSONResponse(self.render(table.get(rid)))
            actor = self._actor(request)
            body = await request.json() if request.method == "PATCH" else None
            async with self.store.write_lock:
                if request.method == "DELETE":
                    if self.writer:
                        self.writer.delete(table.name, rid, actor)
                    else:
                        table.delete(rid, actor)
                    return Response(status_code=204)
                if self.writer:
                    row = self.writer.update(table.name, rid, body, actor)
                else:
                    row = table.update(rid, body, actor)
            return JSONResponse(self.render(row))
        except AdminError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        except RecordNotFound:
            return JSONResponse({"error": "not found"}, status_code=404)
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
