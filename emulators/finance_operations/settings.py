"""Emulator settings (environment prefix `FOEMU_`), editable in tests by passing a `FinanceOperationsSettings`."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from emulators.common.delivery import DeliveryFaults
from emulators.common.faults import Faults
from emulators.common.throttle import Limits


class SeedClient(BaseModel):
    """An app registration of the emulated tenant, mapped to an F&O user; `object_id` is its Entra object id
    (the user id the change log and data events carry)."""

    client_id: str
    secret: str
    name: str
    object_id: str


def _default_clients() -> list[SeedClient]:
    # Emulator-only secrets: they guard nothing real. Override with FOEMU_CLIENTS='[...]'.
    return [
        SeedClient(client_id="dualsync-integration", secret="dualsync-integration-secret",
                   name="dualsync integration", object_id="5a1d0c6e-7b2f-4c1e-9a3d-00000000f001"),
        SeedClient(client_id="fo-user-ava", secret="fo-user-ava-secret", name="Ava Lindqvist",
                   object_id="5a1d0c6e-7b2f-4c1e-9a3d-00000000f002"),
        SeedClient(client_id="fo-user-max", secret="fo-user-max-secret", name="Max Becker",
                   object_id="5a1d0c6e-7b2f-4c1e-9a3d-00000000f003"),
    ]


class FinanceOperationsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FOEMU_", env_nested_delimiter="__")

    # Only used to check a token's scope (`<environment_url>/.default`); the URL a client calls works too.
    environment_url: str = "https://dualsync-dev.operations.dynamics.com"
    tenant_id: str = "00000000-0000-0000-0000-0000000f0e01"
    records: int = Field(50, ge=0)
    seed: int = 1
    clients: list[SeedClient] = Field(default_factory=_default_clients)
    # Every user's default company: reads without `cross-company=true` see only it.
    default_company: str = "usmf"
    max_page_size: int = Field(10_000, ge=1)
    # (unconfirmed) F&O documents no limit on the number of requests in one $batch; this one is the emulator's.
    max_batch_requests: int = Field(1000, ge=1)
    # Failed sends are retried 3 times at 1 s intervals by default (business events documentation).
    event_retries: int = Field(3, ge=0)
    event_retry_interval_s: float = Field(1.0, ge=0)
    # Time between a commit and its delivery (F&O sends from a batch job; usually a moment later).
    event_delay_ms: float = Field(100.0, ge=0)
    event_timeout_s: float = Field(30.0, gt=0)
    # (unconfirmed) priority-based throttling answers 429 + Retry-After; these limits are the emulator's.
    limits: Limits = Field(default_factory=lambda: Limits(window_requests=6000, window_seconds=300,
                                                          max_concurrent=52, max_queued=0))
    faults: Faults = Field(default_factory=Faults)
    # Misdelivery of outgoing notifications (dropped, duplicated, delayed); off by default.
    delivery: DeliveryFaults = Field(default_factory=DeliveryFaults)
