"""Fixtures: an in-process emulator (ASGI transport) and clients holding tokens of the seeded app users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from emulators.dataverse import DataverseSettings, create_app
from emulators.dataverse.core import Emulator

API = "/api/data/v9.2"
BASE = "http://dv.test"


async def token(client: httpx.AsyncClient, client_id: str, secret: str | None = None) -> str:
    r = await client.post("/tenant/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret or f"{client_id}-secret",
        "scope": f"{BASE}/.default"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def make_app(**overrides: Any) -> Starlette:
    return create_app(DataverseSettings(**{"records": 20, "webhook_delay_ms": 0, **overrides}))


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def app(settings_overrides: dict[str, Any]) -> AsyncIterator[Starlette]:
    application = make_app(**settings_overrides)
    yield application
    await application.state.emulator.webhooks.aclose()


@pytest.fixture
def emu(app: Starlette) -> Emulator:
    return app.state.emulator


@pytest.fixture
async def anon(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        yield c


@pytest.fixture
async def login(anon: httpx.AsyncClient, app: Starlette) -> AsyncIterator[Callable[..., Any]]:
    clients: list[httpx.AsyncClient] = []

    async def _login(client_id: str = "dualsync-integration") -> httpx.AsyncClient:
        tok = await token(anon, client_id)
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE + API + "/",
                              headers={"Authorization": f"Bearer {tok}", "Accept": "application/json",
                                       "OData-MaxVersion": "4.0", "OData-Version": "4.0"})
        clients.append(c)
        return c

    yield _login
    for c in clients:
        await c.aclose()


@pytest.fixture
async def dv(login: Callable[..., Any]) -> httpx.AsyncClient:
    """Acting as the integration user."""
    return await login()
