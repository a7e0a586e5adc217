"""Emulator settings (environment prefix `DVEMU_`), editable in tests by passing a `DataverseSettings`."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from emulators.common.delivery import DeliveryFaults
from emulators.common.faults import Faults
from emulators.common.throttle import Limits


class SeedClient(BaseModel):
    """An app registration of the emulated tenant; each is a systemuser (`application` = an application user)."""

    client_id: str
    secret: str
    name: str
    application: bool = False


def _default_clients() -> list[SeedClient]:
    # Emulator-only secrets: they guard nothing real. Override with DVEMU_CLIENTS='[...]'.
    return [
        SeedClient(client_id="dualsync-integration", secret="dualsync-integration-secret",
                   name="# dualsync", application=True),
        SeedClient(client_id="dv-sales-anna", secret="dv-sales-anna-secret", name="Anna Berg"),
        SeedClient(client_id="dv-sales-ben", secret="dv-sales-ben-secret", name="Ben Clarke"),
    ]


def _default_keys() -> dict[str, list[list[str]]]:
    # Alternate keys defined per entity set (each key is a list of attributes; a lookup attribute is named in
    # key segments as `_<name>_value`). Only these work in key URLs and `@odata.bind` values, as on a real
    # table where the key must be defined first. Dual-write's keys start with the company (`msdyn_company`);
    # an environment striped by company drops `accountnumber` alone, which would refuse one customer number
    # in two legal entities.
    return {
        "accounts": [["accountnumber"], ["msdyn_company", "accountnumber"]],
        "contacts": [["emailaddress1"], ["firstname", "emailaddress1"], ["msdyn_contactnumber"],
                     ["msdyn_company", "msdyn_contactpersonid"], ["msdyn_company", "msdyn_customeraccount"]],
        "cdm_companies": [["cdm_companycode"]],
        "msdyn_customergroups": [["msdyn_company", "msdyn_groupid"]],
        "msdyn_vendors": [["msdyn_company", "msdyn_vendoraccountnumber"]],
        "msdyn_paymentterms": [["msdyn_company", "msdyn_name"]],
        "products": [["productnumber"]],
        "transactioncurrencies": [["isocurrencycode"]],
        "systemusers": [["domainname"], ["azureactivedirectoryobjectid"]],
        "uoms": [["name"]],
        "uomschedules": [["name"]],
        "pricelevels": [["name"]],
        "quotes": [["quotenumber"]],
        "salesorders": [["ordernumber"]],
        "invoices": [["invoicenumber"]],
    }


class DataverseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DVEMU_", env_nested_delimiter="__")

    organization_name: str = "dualsync-dev"
    organization_id: str = "4ef5b371-2d4c-4a0c-9f1e-6a3a0d6b7c01"
    tenant_id: str = "00000000-0000-0000-0000-00000000d5e1"
    records: int = Field(50, ge=0)
    seed: int = 1
    clients: list[SeedClient] = Field(default_factory=_default_clients)
    alternate_keys: dict[str, list[list[str]]] = Field(default_factory=_default_keys)
    max_page_size: int = Field(5000, ge=1)
    max_batch_requests: int = Field(1000, ge=1)
    # `x-ms-dop-hint` on every Web API response: the degree of parallelism the environment recommends (Microsoft
    # Learn, "Send parallel requests"). The documentation gives no default; 4 is what small (trial / developer)
    # environments are seen to answer, busier ones more (e.g. 48). Unconfirmed.
    dop_hint: int = Field(4, ge=1)
    # Change tracking: tokens expire after the organization's ExpireChangeTrackingInDays (default 30, Microsoft
    # Learn "Use change tracking to synchronize data with external systems"); tables listed (entity set names)
    # have change tracking turned off and refuse delta reads.
    delta_token_days: float = Field(30.0, gt=0)
    untracked_tables: list[str] = Field(default_factory=list)
    # Async webhook steps run a moment after the change commits (the async service picks them up).
    webhook_delay_ms: float = Field(500.0, ge=0)
    webhook_timeout_s: float = Field(60.0, gt=0)
    webhook_max_bytes: int = Field(256 * 1024, ge=1)
    # System jobs (BulkDelete) start a moment after they are submitted, as the asynchronous service picks them up
    # (no documented delay; a small one here, so a client sees the job waiting before it runs).
    async_delay_ms: float = Field(100.0, ge=0)
    limits: Limits = Field(default_factory=lambda: Limits(window_requests=6000, window_seconds=300,
                                                          window_execution_ms=1_200_000, max_concurrent=52,
                                                          max_queued=0))
    faults: Faults = Field(default_factory=Faults)
    # Misdelivery of outgoing notifications (dropped, duplicated, delayed); off by default.
    delivery: DeliveryFaults = Field(default_factory=DeliveryFaults)
