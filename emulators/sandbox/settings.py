"""The Function App's settings (`shared.settings.Settings`, what `DUALSYNC_*` variables hold in Azure) for
emulators running on given URLs: their tenants, the integration client every emulator seeds, the Business
Central company (or F&O's legal entities), Table storage on Azurite, the webhook secrets, and retries short
enough for a local run."""

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


def erp_settings(erp_url: str, erp_app: Starlette) -> dict[str, Any]:
    """The `DUALSYNC_ERP__*` group for the ERP emulator `erp_app` served at `erp_url`: Business Central (one
    company) or Finance and Operations (every legal entity; our integration user's object id, whose data events
    are echoes)."""
    emu = erp_app.state.emulator
    creds = {"client_id": INTEGRATION_CLIENT, "client_secret": INTEGRATION_SECRET}
    if hasattr(emu, "events"):  # the F&O emulator delivers data events
        return {"kind": "finance_operations", "tenant_id": emu.settings.tenant_id, "authority": erp_url,
                "base_url": erp_url, "integration_user_ids": emu.integration.user_id, **creds}
    return {"tenant_id": emu.settings.tenant_id, "authority": erp_url, "base_url": f"{erp_url}/v2.0",
            "environment": emu.settings.environment, "company_id": bc_company_id(erp_app), **creds}


def stack_settings(erp_url: str, dv_url: str, erp_app: Starlette, dv_app: Starlette, storage: str, prefix: str, *,
                   bc_client_state: str, dataverse_key: str, fo_key: str | None = None,
                   public_url: str | None = None, pack_path: Path | None = None) -> Settings:
    """Settings for the ERP emulator `erp_app` (BC or F&O) and Dataverse `dv_app` served at `erp_url` / `dv_url`,
    state in the Table storage of connection string `storage` under table prefix `prefix`. `public_url` is where
    the Function App answers (BC notification URLs are built from it); `pack_path` the pack (default: the
    settings' default)."""
    creds = {"client_id": INTEGRATION_CLIENT, "client_secret": INTEGRATION_SECRET}
    dv = dv_app.state.emulator
    extra: dict[str, Any] = {}
    if public_url is not None:
        extra["public_url"] = public_url
    if pack_path is not None:
        extra["pack_path"] = pack_path
    return load_settings(
        storage={"connection_string": storage, "table_prefix": prefix},
        erp=erp_settings(erp_url, erp_app),
        crm={"tenant_id": dv.settings.tenant_id, "authority": dv_url, "base_url": dv_url,
             "integration_user_ids": dv.integration.user_id, **creds},
        webhooks={"bc_client_state": bc_client_state, "dataverse_key": dataverse_key,
                  **({"fo_key": fo_key} if fo_key else {})},
        retry={"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.02},  # transient failures surface fast
        # One local host: a reservation its restart left behind is taken over after 20 s, not 5 minutes.
        queue={"retry_base_s": 0.05, "retry_max_s": 0.2, "stale_reservation_s": 20, "job_flush_s": 0}, **extra)
