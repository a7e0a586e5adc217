"""Fixtures: an in-process F&O emulator (ASGI transport) and clients holding tokens of the seeded users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from emulators.finance_operations import FinanceOperationsSettings, create_app
from emulators.finance_operations.core import Emulator

BASE = "http://fo.test"
DATA = BASE + "/data"


async def token(client: httpx.AsyncClient, client_id: str = "dualsync-integration") -> str:
    r = await client.post("/tenant/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": f"{client_id}-secret",
        "scope": f"{BASE}/.default"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def make_app(http_client: httpx.AsyncClient | None = None, **overrides: Any) -> Starlette:
    settings = FinanceOperationsSettings(**{"records": 30, "event_delay_ms": 0, "event_retry_interval_s": 0.01,
                                            **overrides})
    return create_app(settings, http_client=http_client)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def app(settings_overrides: dict[str, Any]) -> AsyncIterator[Starlette]:
    application = make_app(**settings_overrides)
    yield application
    await application.state.emulator.events.aclose()


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
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=DATA + "/",
                              headers={"Authorization": f"Bearer {tok}", "Accept": "application/json",
                                       "OData-MaxVersion": "4.0", "OData-Version": "4.0"})
        clients.append(c)
        return c

    yield _login
    for c in clients:
        await c.aclose()


@pytest.fixture
async def fo(login: Callable[..., Any]) -> httpx.AsyncClient:
    """Acting as the integration user."""
    return await login()


def inner(r: httpx.Response) -> str:
    """The detail of an F&O error body (innererror.message)."""
    body = r.json()["error"]
    assert body["code"] == ""
    return body["innererror"]["message"] if "innererror" in body else body["message"]
