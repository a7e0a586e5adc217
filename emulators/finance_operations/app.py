"""`create_app(settings)`: the Finance and Operations emulator as an ASGI app (in-process tests or uvicorn).

Routes: the token endpoint (emulators.common.identity), `/_admin/…` (emulators.common.admin plus the data event
catalog), and behind bearer auth → throttling → injected faults (EmulatorMiddleware): the OData service under
`/data/` (service document, `$metadata`, entity sets, `$batch`) and the metadata API under `/Metadata/`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.common.admin import Admin
from emulators.common.faults import FaultInjector
from emulators.common.middleware import EmulatorMiddleware
from emulators.common.throttle import Throttle
from emulators.finance_operations import metadata
from emulators.finance_operations.admin import DataEventAdmin, Writer, render_row
from emulators.finance_operations.api import ApiRequest, ApiResponse, handle
from emulators.finance_operations.batch import run_batch
from emulators.finance_operations.core import API_PREFIX, Emulator
from emulators.finance_operations.errors import FinanceOperationsErrors
from emulators.finance_operations.events import DataEvents
from emulators.finance_operations.seed import reseed
from emulators.finance_operations.settings import FinanceOperationsSettings

JSON_TYPE = "application/json; odata.metadata=minimal"


def create_app(settings: FinanceOperationsSettings | None = None, *,
               http_client: httpx.AsyncClient | None = None) -> Starlette:
    """Build a seeded emulator. `app.state.emulator` exposes the Emulator (store, settings, identity, throttle,
    faults, `events`); `http_client` is used for outgoing data-event deliveries (tests may inject one)."""
    settings = settings or FinanceOperationsSettings()
    emu = Emulator(settings)
    reseed(emu, settings.records, settings.seed)
    throttle = Throttle(settings.limits)
    faults = FaultInjector(settings.faults)
    emu.events = DataEvents(emu, http_client)
    emu.faults, emu.throttle = faults, throttle
    admin = Admin(store=emu.store, identity=emu.identity, faults=faults, throttle=throttle,
                  default_actor=emu.integration, users=emu.users,
                  reseed=lambda records, seed: reseed(emu, records, seed), render=render_row(emu),
                  writer=Writer(emu), delivery=emu.events.delivery)

    async def service(request: Request) -> Response:
        base = _base(request)
        return JSONResponse(metadata.service_document(base), headers={"OData-Version": "4.0"},
                            media_type=JSON_TYPE)

    async def csdl(request: Request) -> Response:
        return Response(metadata.csdl(), media_type="application/xml", headers={"OData-Version": "4.0"})

    async def api(request: Request) -> Response:
        resp = await handle(emu, await _api_request(request))
        return Response(resp.content() if resp.status != 204 else b"", status_code=resp.status,
                        headers=resp.headers)

    async def batch(request: Request) -> Response:
        status, headers, body = await run_batch(emu, await _api_request(request), faults)
        return Response(body, status_code=status, headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await emu.events.aclose()

    routes = [
        *emu.identity.routes(),
        *admin.routes(),
        *DataEventAdmin(emu, emu.events).routes(),
        *metadata.routes(),
        Route(API_PREFIX, service, methods=["GET"]),
        Route(API_PREFIX + "/", service, methods=["GET"]),
        Route(API_PREFIX + "/$metadata", csdl, methods=["GET"]),
        Route(API_PREFIX + "/$batch", batch, methods=["POST"]),
        Route(API_PREFIX + "/{path:path}", api, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
    ]
    middleware = [Middleware(EmulatorMiddleware, identity=emu.identity, throttle=throttle, faults=faults,
                             errors=FinanceOperationsErrors(throttle), open_prefixes=("/_admin",),
                             is_open=lambda path: not path.startswith((API_PREFIX, "/Metadata/")))]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.emulator = emu
    return app


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + API_PREFIX


async def _api_request(request: Request) -> ApiRequest:
    headers = {k.lower(): v for k, v in request.headers.items()}
    if prefer := request.headers.getlist("prefer"):
        headers["prefer"] = ",".join(prefer)
    client: Any = request.state.client
    return ApiRequest(method=request.method, path=request.path_params.get("path", ""),
                      query=dict(request.query_params), headers=headers, body=await request.body(),
                      actor=client.actor, base=_base(request), url=str(request.url))


__all__ = ["ApiResponse", "create_app"]
