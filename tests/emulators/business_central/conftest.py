"""Fixtures: an in-process emulator (httpx.ASGITransport) with a token for each seeded client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from emulators.business_central import BusinessCentralSettings, create_app

TENANT = BusinessCentralSettings().tenant_id
API = f"/v2.0/{TENANT}/production/api/v2.0/"


def make_settings(**overrides: Any) -> BusinessCentralSettings:
    values: dict[str, Any] = {"records": 20, "seed": 7, "notification_delay_ms": 50, "retry_scale": 0.00002,
                              "handshake_timeout_s": 2}
    values.update(overrides)
    return BusinessCentralSettings(**values)


async def token(http: httpx.AsyncClient, client_id: str = "dualsync-integration",
                secret: str | None = None) -> str:
    resp = await http.post(f"/{TENANT}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret or f"{client_id}-secret",
        "scope": "https://api.businesscentral.dynamics.com/.default"})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


@pytest.fixture
def settings() -> BusinessCentralSettings:
    return make_settings()


@pytest.fixture
def app(settings: BusinessCentralSettings) -> Starlette:
    return create_app(settings)


@pytest.fixture
async def anon(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bc.test") as http:
        yield http
    await app.state.emulator.webhooks.aclose()


@pytest.fixture
async def bc(anon: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client authenticated as the integration user."""
    anon.headers["Authorization"] = f"Bearer {await token(anon)}"
    return anon


@pytest.fixture
def company(app: Starlette) -> str:
    rows = app.state.emulator.store.table("companies").all()
    return next(r["id"] for r in rows if r["name"] == "CRONUS USA, Inc.")


@pytest.fixture
def base(company: str) -> str:
    return f"{API}companies({company})/"
