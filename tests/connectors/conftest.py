"""Fixtures: both emulators in-process (httpx.ASGITransport) and connectors built on them exactly as in
production — a client-secret credential against the emulator's token endpoint, the shared retry executor
(with short back-off steps so tests stay fast) and a concurrency limiter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from emulators.finance_operations import FinanceOperationsSettings
from emulators.finance_operations import create_app as create_fo
from shared.connectors.business_central import BusinessCentralConnector
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance_operations import FinanceOperationsConnector
from shared.http.limits import ConcurrencyLimiter
from tests.support.connectors import Sent, make_bc, make_dv, make_fo


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
async def bc_app() -> AsyncIterator[Starlette]:
    app = create_bc(BusinessCentralSettings(records=12, seed=3))
    yield app
    await app.state.emulator.webhooks.aclose()


@pytest.fixture
async def dv_app() -> AsyncIterator[Starlette]:
    app = create_dv(DataverseSettings(records=12, seed=3, webhook_delay_ms=0))
    yield app
    await app.state.emulator.webhooks.aclose()


@pytest.fixture
async def bc_http(bc_app: Starlette, sent: Sent) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app), event_hooks={"request": [sent]}) as http:
        yield http


@pytest.fixture
async def dv_http(dv_app: Starlette, sent: Sent) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app), event_hooks={"request": [sent]}) as http:
        yield http


@pytest.fixture
def limiter() -> ConcurrencyLimiter:
    return ConcurrencyLimiter()


@pytest.fixture
def bc(bc_http: httpx.AsyncClient, bc_app: Starlette, limiter: ConcurrencyLimiter) -> BusinessCentralConnector:
    return make_bc(bc_http, bc_app, limiter=limiter)


@pytest.fixture
def dv(dv_http: httpx.AsyncClient, dv_app: Starlette, limiter: ConcurrencyLimiter) -> DataverseConnector:
    return make_dv(dv_http, dv_app, limiter=limiter)


@pytest.fixture
async def fo_app() -> AsyncIterator[Starlette]:
    app = create_fo(FinanceOperationsSettings(records=12, seed=3, event_delay_ms=0))
    yield app
    await app.state.emulator.events.aclose()


@pytest.fixture
async def fo_http(fo_app: Starlette, sent: Sent) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fo_app), event_hooks={"request": [sent]}) as http:
        yield http


@pytest.fixture
def fo(fo_http: httpx.AsyncClient, fo_app: Starlette, limiter: ConcurrencyLimiter) -> FinanceOperationsConnector:
    return make_fo(fo_http, fo_app, limiter=limiter)
