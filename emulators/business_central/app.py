"""The ASGI app: `create_app(settings)` → Starlette, served standalone (`python -m emulators.business_central`)
or in-process (`httpx.ASGITransport`). `app.state.emulator` is the `Environment` (store, settings, identity,
faults, throttle) and `app.state.emulator.webhooks` the notifier.

Routes: `/v2.0/{tenant}/{environment}/api/v2.0/…` (also `/v2.0/{environment}/api/v2.0/…`; the root itself
is the service document, `$metadata` the CSDL), the token endpoint (`/{tenant}/oauth2/v2.0/token`) and
`/_admin/…`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.business_central import api
from emulators.business_central.batch import run_batch
from emulators.business_central.errors import BCError, BCErrorRenderer, bc_error_response, json_response
from emulators.business_central.notify import Notifier
from emulators.business_central.options import query_params
from emulators.business_central.routing import ApiRequest, ApiResponse
from emulators.business_central.seed import seed
from emulators.business_central.settings import BusinessCentralSettings
from emulators.business_central.state import SYSTEM_ACTOR, Environment
from emulators.common.admin import Admin
from emulators.common.middleware import EmulatorMiddleware


def reseed(env: Environment, records: int, seed_value: int) -> None:
    """Drop every record (subscriptions too) and seed again; `records` 0 means the configured number."""
    with env.store.lock:
        for table in env.store.tables.values():
            table.clear()
        env.store.changes.clear()
        env.number_series.clear()
        if env.webhooks is not None:
            env.webhooks.reset()
        seed(env, records or env.settings.records, seed_value)


def _known_place(env: Environment, tenant: str | None, environment: str) -> bool:
    s = env.settings
    tenant_ok = tenant is None or tenant.lower() in (s.tenant_id.lower(), s.tenant_domain.lower())
    return tenant_ok and environment.lower() == s.environment.lower()


def _to_response(resp: ApiResponse) -> Response:
    if resp.body is None:
        return Response(status_code=resp.status, headers=resp.headers)
    if resp.media_type is not None:  # `/$count` (text/plain), `$metadata` (application/xml)
        return Response(resp.body, status_code=resp.status, media_type=resp.media_type,
                        headers={"OData-Version": "4.0", **resp.headers})
    return json_response(resp.status, resp.body, resp.headers)


def create_app(settings: BusinessCentralSettings | None = None, *,
               http: httpx.AsyncClient | None = None) -> Starlette:
    """Build a seeded emulator. `http` is the client used for webhook handshakes and notifications
    (default: one the emulator owns and closes on shutdown)."""
    settings = settings or BusinessCentralSettings()
    env = Environment(settings)
    env.webhooks = Notifier(env, http)
    seed(env, settings.records, settings.seed)

    async def endpoint(request: Request) -> Response:
        params = request.path_params
        tenant, environment = params.get("tenant"), params["environment"]
        if not _known_place(env, tenant, environment):
            return bc_error_response(404, "BadRequest_NotFound",
                                     f"The environment '{environment}' does not exist for this tenant.")
        base = f"{request.base_url}v2.0/{tenant + '/' if tenant else ''}{environment}/api/v2.0/"
        raw = await request.body()
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return bc_error_response(400, "BadRequest", "The request body is not valid JSON.")
        headers = {k.lower(): v for k, v in request.headers.items()}
        client = request.scope["state"]["client"]
        rest = params["rest"]
        if rest == "$batch":
            if request.method != "POST":
                return _to_response(ApiResponse(405, api.method_not_allowed(request.method).body()))
            return _to_response(await run_batch(env, body, headers, client, base))
        try:
            query = query_params(request.query_params.multi_items())
        except BCError as exc:
            return bc_error_response(exc.status, exc.code, exc.message)
        req = ApiRequest(request.method, rest, query, headers, body, client, base)
        return _to_response(await api.handle(env, req))

    admin = Admin(store=env.store, identity=env.identity, faults=env.faults, throttle=env.throttle,
                  default_actor=SYSTEM_ACTOR, users=env.users,
                  reseed=lambda records, seed_value: reseed(env, records, seed_value), render=dict,
                  delivery=env.webhooks.delivery)
    methods = ["GET", "POST", "PATCH", "DELETE", "PUT"]
    routes = [
        *env.identity.routes(),
        *admin.routes(),
        Route("/v2.0/{tenant}/{environment}/api/v2.0/{rest:path}", endpoint, methods=methods),
        Route("/v2.0/{environment}/api/v2.0/{rest:path}", endpoint, methods=methods),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await env.webhooks.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(EmulatorMiddleware, identity=env.identity, throttle=env.throttle, faults=env.faults,
                       errors=BCErrorRenderer(), open_prefixes=("/_admin", "/common/"),
                       is_open=lambda path: "/oauth2/v2.0/token" in path or "/.well-known/" in path)
    app.state.emulator = env
    return app


__all__ = ["BCError", "create_app", "reseed"]
