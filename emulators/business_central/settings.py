"""Emulator settings (environment prefix `BCEMU_`); tests pass a `BusinessCentralSettings` directly."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from emulators.common.delivery import DeliveryFaults
from emulators.common.faults import Faults
from emulators.common.throttle import Limits


class SeedClient(BaseModel):
    """An app registration of the emulated tenant; each acts as one Business Central user."""

    client_id: str
    secret: str
    user_id: str
    name: str


def _default_clients() -> list[SeedClient]:
    # Emulator-only secrets: they guard nothing real. Override with BCEMU_CLIENTS='[...]'.
    return [
        SeedClient(client_id="dualsync-integration", secret="dualsync-integration-secret",
                   user_id="5b1c3a2e-0d4f-4e61-9a7b-2c8d9e0f1a01", name="DUALSYNC INTEGRATION"),
        SeedClient(client_id="bc-user-annie", secret="bc-user-annie-secret",
                   user_id="5b1c3a2e-0d4f-4e61-9a7b-2c8d9e0f1a02", name="ANNIE"),
        SeedClient(client_id="bc-user-oliver", secret="bc-user-oliver-secret",
                   user_id="5b1c3a2e-0d4f-4e61-9a7b-2c8d9e0f1a03", name="OLIVER"),
    ]


def _bc_limits() -> Limits:
    # BC: 6000 requests per 5-minute window per user, 5 processed at once, 95 more queued (PROTOCOLS.md §3).
    return Limits(window_requests=6000, window_seconds=300, max_concurrent=5, max_queued=95)


class BusinessCentralSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BCEMU_", env_nested_delimiter="__")

    # One emulator = one tenant and one environment; any other tenant/environment in a URL → 404.
    tenant_id: str = "3f0e2b7c-8a41-4d5e-9c62-0b1a2c3d4e5f"
    tenant_domain: str = "cronus.onmicrosoft.com"
    environment: str = "production"
    records: int = Field(50, ge=0)
    seed: int = 1
    clients: list[SeedClient] = Field(default_factory=_default_clients)
    integration_client_id: str = "dualsync-integration"
    # Server-side page size cap and the largest `Prefer: odata.maxpagesize` accepted (BC: 20 000).
    max_page_size: int = Field(20000, ge=1)
    max_batch_requests: int = Field(100, ge=1)
    # Webhooks (PROTOCOLS.md §4): BC waits 30 s after the first change, then sends; >1000 changes → collection.
    notification_delay_ms: float = Field(30000.0, ge=0)
    collection_threshold: int = Field(1000, ge=1)
    # BC's retry schedule (1, 1, 1, 10, 100 minutes) is multiplied by this; tests use e.g. 0.00001.
    retry_scale: float = Field(1.0, ge=0)
    handshake_timeout_s: float = Field(5.0, gt=0)
    subscription_lifetime_days: float = Field(3.0, gt=0)
    max_subscriptions: int = Field(200, ge=1)
    faults: Faults = Field(default_factory=Faults)
    # Misdelivery of outgoing notifications (dropped, duplicated, delayed); off by default.
    delivery: DeliveryFaults = Field(default_factory=DeliveryFaults)
    limits: Limits = Field(default_factory=_bc_limits)
