"""Connectors wired to the emulators, for tests at every level (connectors, sync engine, CLI, Function App)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

from emulators.business_central import BusinessCentralSettings
from emulators.dataverse import DataverseSettings
from emulators.finance_operations import FinanceOperationsSettings
from shared.connectors.business_central import BusinessCentralConnector
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance_operations import FinanceOperationsConnector
from shared.http.retry import RetryExecutor, RetryPolicy
from tests.support.credentials import EmulatorCredential

BC_URL = "http://bc.test"
DV_URL = "http://dv.test"
FO_URL = "http://fo.test"
CLIENT_ID = "dualsync-integration"
SECRET = "dualsync-integration-secret"
FAST = RetryPolicy(max_attempts=8, max_elapsed=20.0, base_delay=0.01, max_delay=0.05, rate_limit_base=0.05)


@dataclass
class Sent:
    """Every request the connector put on the wire (method, URL, headers), via an httpx event hook."""

    requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def to(self, fragment: str, method: str | None = None) -> list[httpx.Request]:
        return [r for r in self.requests if fragment in str(r.url) and (method is None or r.method == method)]


def bc_company(app: Starlette) -> str:
    rows = app.state.emulator.store.table("companies").all()
    return next(r["id"] for r in rows if r["name"] == "CRONUS USA, Inc.")


def make_bc(http: httpx.AsyncClient, app: Starlette, base: str = BC_URL, **kwargs: Any) -> BusinessCentralConnector:
    settings: BusinessCentralSettings = app.state.emulator.settings
    credential = EmulatorCredential(http, base, settings.tenant_id, CLIENT_ID, SECRET)
    kwargs.setdefault("retry", RetryExecutor(FAST))
    return BusinessCentralConnector(http, credential, tenant_id=settings.tenant_id, environment=settings.environment,
                                    company_id=bc_company(app), base_url=f"{base}/v2.0", **kwargs)


def make_dv(http: httpx.AsyncClient, app: Starlette, base: str = DV_URL, **kwargs: Any) -> DataverseConnector:
    settings: DataverseSettings = app.state.emulator.settings
    credential = EmulatorCredential(http, base, settings.tenant_id, CLIENT_ID, SECRET)
    kwargs.setdefault("retry", RetryExecutor(FAST))
    return DataverseConnector(http, credential, base_url=base, **kwargs)


def make_fo(http: httpx.AsyncClient, app: Starlette, base: str = FO_URL, **kwargs: Any) -> FinanceOperationsConnector:
    settings: FinanceOperationsSettings = app.state.emulator.settings
    credential = EmulatorCredential(http, base, settings.tenant_id, CLIENT_ID, SECRET)
    kwargs.setdefault("retry", RetryExecutor(FAST))
    return FinanceOperationsConnector(http, credential, base_url=base, **kwargs)


async def configure(http: httpx.AsyncClient, base: str, **config: Any) -> None:
    """Change the emulator's injected faults / limits through its admin route."""
    response = await http.patch(f"{base}/_admin/config", json=config)
    assert response.status_code == 200, response.text
