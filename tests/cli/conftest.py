"""Fixtures for the `dualsync` command line: both emulators on real sockets (BackgroundServer), Azurite, and
the `DUALSYNC_*` environment pointing at them, as an operator would set it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.common.server import BackgroundServer
from emulators.common.tls import trust_local_ca
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from shared.cli import app

ROOT = Path(__file__).resolve().parents[2]
# The app registration both emulators seed for the integration (emulators/*/settings.py).
CLIENT_ID, SECRET = "dualsync-integration", "dualsync-integration-secret"


def bc_company(app: Any) -> str:
    rows = app.state.emulator.store.table("companies").all()
    return next(r["id"] for r in rows if r["name"] == "CRONUS USA, Inc.")


@dataclass
class Emulators:
    bc: BackgroundServer
    dv: BackgroundServer

    @property
    def bc_settings(self) -> BusinessCentralSettings:
        return self.bc.app.state.emulator.settings

    @property
    def dv_settings(self) -> DataverseSettings:
        return self.dv.app.state.emulator.settings

    @property
    def integration_user(self) -> str:
        return self.dv.app.state.emulator.integration.user_id

    def env(self, connection_string: str, prefix: str) -> dict[str, str]:
        """Every setting the CLI needs, pointing at these emulators and Azurite."""
        return {
            "DUALSYNC_STORAGE__CONNECTION_STRING": connection_string,
            "DUALSYNC_STORAGE__TABLE_PREFIX": prefix,
            "DUALSYNC_ERP__TENANT_ID": self.bc_settings.tenant_id,
            "DUALSYNC_ERP__AUTHORITY": self.bc.url,
            "DUALSYNC_ERP__BASE_URL": f"{self.bc.url}/v2.0",
            "DUALSYNC_ERP__ENVIRONMENT": self.bc_settings.environment,
            "DUALSYNC_ERP__COMPANY_ID": bc_company(self.bc.app),
            "DUALSYNC_ERP__CLIENT_ID": CLIENT_ID,
            "DUALSYNC_ERP__CLIENT_SECRET": SECRET,
            "DUALSYNC_CRM__TENANT_ID": self.dv_settings.tenant_id,
            "DUALSYNC_CRM__AUTHORITY": self.dv.url,
            "DUALSYNC_CRM__BASE_URL": self.dv.url,
            "DUALSYNC_CRM__CLIENT_ID": CLIENT_ID,
            "DUALSYNC_CRM__CLIENT_SECRET": SECRET,
            "DUALSYNC_CRM__INTEGRATION_USER_IDS": self.integration_user,
            "DUALSYNC_RETRY__BASE_DELAY_S": "0.01",
            "DUALSYNC_RETRY__MAX_DELAY_S": "0.1",
            "DUALSYNC_RETRY__RATE_LIMIT_BASE_S": "0.05",
            "DUALSYNC_RETRY__MAX_ELAPSED_S": "20",
            "DUALSYNC_PACK_PATH": str(ROOT / "templates" / "bc-sales.yaml"),
        }


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    tls = trust_local_ca()  # HTTPS, so the CLI's credentials are azure-identity's as in Azure
    bc = BackgroundServer(create_bc(BusinessCentralSettings(records=4, seed=11)), tls=tls)
    dv = BackgroundServer(create_dv(DataverseSettings(records=4, seed=11, webhook_delay_ms=0)), tls=tls)
    with bc, dv:
        yield Emulators(bc, dv)


@pytest.fixture
def cli_env(emulators: Emulators, table_connection_string: str, table_prefix: str,
            monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment set for the test (every other DUALSYNC_* variable removed)."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("DUALSYNC_"):
            monkeypatch.delenv(name)
    env = emulators.env(table_connection_string, table_prefix)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def bc_admin(emulators: Emulators) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulators.bc.url) as client:
        yield client


@pytest.fixture
def dv_admin(emulators: Emulators) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulators.dv.url) as client:
        yield client


def rows(admin: httpx.Client, table: str) -> list[dict[str, Any]]:
    response = admin.get(f"/_admin/tables/{table}")
    assert response.status_code == 200, response.text
    return response.json()["value"]


def dualsync(*args: str) -> Any:
    """Run `dualsync ARGS…` in-process; returns typer's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def failing_customer(cli_env: dict[str, str], bc_admin: httpx.Client) -> dict[str, Any]:
    """A BC customer whose salesperson has no coupled CRM user: its sync fails with "dependency not coupled"."""
    person = rows(bc_admin, "salespeoplePurchasers")[0]
    eur = next(c for c in rows(bc_admin, "currencies") if c["code"] == "EUR")
    response = bc_admin.post("/_admin/tables/customers", params={"as": "bc-user-annie"}, json={
        "_companyId": cli_env["DUALSYNC_ERP__COMPANY_ID"], "number": f"C9{len(rows(bc_admin, 'customers')):04d}",
        "displayName": "Fabrikam Nord AB", "type": "Company", "city": "Malmö", "blocked": " ",
        "salespersonCode": person["code"], "currencyId": eur["id"]})
    assert response.status_code == 201, response.text
    return {**response.json(), "salesperson": person}


def crm_user(emulators: Emulators, dv_admin: httpx.Client) -> str:
    users = [u for u in rows(dv_admin, "systemusers") if u["systemuserid"] != emulators.integration_user
             and not u.get("isdisabled") and u.get("fullname") != "SYSTEM"]
    return users[0]["systemuserid"]


ADMIN_KEY = "cli-remote-test-key"


@pytest.fixture
def remote(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The Function App (`function_app.build_app`, bc-sales) served by the local host on a real port, its own
    engine built from the same environment as the local commands (same emulators, same Azurite tables);
    `DUALSYNC_ADMIN_KEY` holds its function key. Yields the app's URL for `--remote`."""
    from emulators.functions_host.host import LocalHost
    from function_app import build_app
    from shared.app_runtime import AppRuntime
    from shared.mapping import load_pack
    from shared.settings import load_settings

    settings = load_settings()
    function_app = build_app(load_pack(settings.pack_path))
    host = LocalHost(function_app, run_timers=False, function_key=ADMIN_KEY,
                     runtime=lambda h: AppRuntime(settings=settings, sender=h.sender()))
    monkeypatch.setenv("DUALSYNC_ADMIN_KEY", ADMIN_KEY)
    with BackgroundServer(host.asgi(), tls=trust_local_ca()) as server:
        yield server.url
