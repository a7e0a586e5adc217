"""`create_app(settings)`: the Dataverse emulator as an ASGI app (in-process tests or uvicorn).

Routes: the token endpoint (emulators.common.identity), `/_admin/…` (emulators.common.admin), and the Web API
under `/api/data/v9.2/` behind bearer auth → service protection → injected faults (EmulatorMiddleware)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulators.common.admin import Admin
from emulators.common.faults import FaultInjector
from emulators.common.middleware import EmulatorMiddleware
from emulators.common.throttle import Throttle
from emulators.dataverse import bulk_delete
from emulators.dataverse.api import ApiRequest, ApiResponse, handle
from emulators.dataverse.batch import run_batch
from emulators.dataverse.core import API_PREFIX, Emulator
from emulators.dataverse.errors import DataverseErrors
from emulators.dataverse.seed import reseed
from emulators.dataverse.settings import DataverseSettings
from emulators.dataverse.webhooks import WebhookDispatcher


def create_app(settings: DataverseSettings | None = None, *,
               http_client: httpx.AsyncClient | None = None) -> Starlette:
    """Build a seeded emulator. `app.state.emulator` exposes the Emulator (store, settings, `webhooks`,
    `faults`, `throttle`); `http_client` is used for outgoing webhook calls (tests may inject one)."""
    settings = settings or DataverseSettings()
    emu = Emulator(settings)
    reseed(emu, settings.records, settings.seed)
    throttle = Throttle(settings.limits)
    faults = FaultInjector(settings.faults)
    emu.webhooks = WebhookDispatcher(emu, http_client)
    emu.faults, emu.throttle = faults, throttle
    admin = Admin(store=emu.store, identity=emu.identity, faults=faults, throttle=throttle,
                  default_actor=emu.integration, users=emu.users,
                  reseed=lambda records, seed: reseed(emu, records, seed),
                  render=lambda row: {"@odata.etag": emu.etag(row), **row}, delivery=emu.webhooks.delivery)

    async def api(request: Request) -> Response:
        return _send(await handle(emu, await _api_request(request)))

    async def batch(request: Request) -> Response:
        req = await _api_request(request)
        status, headers, body = await run_batch(emu, req, faults)
        return Response(body, status_code=status, headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await bulk_delete.runner(emu).aclose()  # asynchronous jobs still waiting or running
        await emu.webhooks.aclose()

    routes = [
        *emu.identity.routes(),
        *admin.routes(),
        Route(f"{API_PREFIX}/$batch", batch, methods=["POST"]),
        Route(API_PREFIX + "/{path:path}", api, methods=["GET", "POST", "PATCH", "DELETE", "PUT"]),
    ]
    middleware = [Middleware(DopHint, emu=emu),
                  Middleware(EmulatorMiddleware, identity=emu.identity, throttle=throttle, faults=faults,
                             errors=DataverseErrors(settings.tenant_id, throttle), open_prefixes=("/_admin",),
                             is_open=lambda path: not path.startswith("/api/"))]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.emulator = emu
    return app


async def _api_request(request: Request) -> ApiRequest:
    headers = {k.lower(): v for k, v in request.headers.items()}
    if prefer := request.headers.getlist("prefer"):
        headers["prefer"] = ",".join(prefer)
    client: Any = request.state.client
    return ApiRequest(method=request.method, path=request.path_params.get("path", ""),
                      query=dict(request.query_params), headers=headers, body=await request.body(),
                      actor=client.actor, base=str(request.base_url).rstrip("/") + API_PREFIX)


class DopHint:
    """`x-ms-dop-hint` (the recommended degree of parallelism, Microsoft Learn "Send parallel requests") on every
    Web API response, refusals by the request pipeline included; outermost, so it sees them all."""

    def __init__(self, app: ASGIApp, *, emu: Emulator) -> None:
        self.app = app
        self.emu = emu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        hint = (b"x-ms-dop-hint", str(self.emu.settings.dop_hint).encode())

        async def send_with_hint(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), hint]}
            await send(message)

        await self.app(scope, receive, send_with_hint)


def _send(resp: ApiResponse) -> Response:
    return Response(resp.content() if resp.status not in (204, 304) else b"", status_code=resp.status,
                    headers=resp.headers)
