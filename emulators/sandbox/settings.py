"""The Function App's settings (`shared.settings.Settings`, what `DUALSYNC_*` variables hold in Azure) for
emulators running on given URLs: their tenants, the integration client both emulators seed, the Business
Central company, Table storage on Azurite, the webhook secrets, and retries short enough for a local run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from shared.settings import Settings, load_settings

# The integration client both emulators seed (emulator-only secret, see emulators/README.md).
INTEGRATION_CLIENT = "dualsync-integration"
INTEGRATION_SECRET = "dualsync-integration-secret"  # published in emulators/README.md
COMPANY_NAME = "CRONUS USA, Inc."


def bc_company_id(bc_app: Starlette) -> str:
    """The id of the emulator's CRONUS USA company (the one the packs sync)."""
    rows = bc_app.state.emulator.store.table("companies").all()
    return next(r["id"] for r in rows if r["name"] == COMPANY_NAME)


def stack_settings(bc_url: str, dv_url: str, bc_app: Starlette, dv_app: Starlette, storage: str, prefix: str, *,
                   bc_client_state: str, dataverse_key: str, public_url: str | None = None,
                   pack_path: Path | None = None) -> Settings:
    """Settings for the emulators `bc_app` / `dv_app` served at `bc_url` / `dv_url`, state in the Table
    storage of connection string `storage` under table prefix `prefix`. `public_url` is where the Function App
    answers (BC notification URLs are built from it); `pack_path` the pack (default: the settings' default)."""
    creds = {"client_id": INTEGRATION_CLIENT, "client_secret": INTEGRATION_SECRET}
    bc, dv = bc_app.state.emulator, dv_app.state.emulator
    extra: dict[str, Any] = {}
    if public_url is not None:
        extra["public_url"] = public_url
    if pack_path is not None:
        extra["pack_path"] = pack_path
    return load_settings(
        storage={"connection_string": storage, "table_prefix": prefix},
        erp={"tenant_id": bc.settings.tenant_id, "authority": bc_url, "base_url": f"{bc_url}/v2.0",
             "environment": bc.settings.environment, "company_id": bc_company_id(bc_app), **creds},
        crm={"tenant_id": dv.settings.tenant_id, "authority": dv_url, "base_url": dv_url,
             "integration_user_ids": dv.integration.user_id, **creds},
        webhooks={"bc_client_state": bc_client_state, "dataverse_key": dataverse_key},
        retry={"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.02},  # transient failures surface fast
        queue={"retry_base_s": 0.05, "retry_max_s": 0.2}, **extra)
