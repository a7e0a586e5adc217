"""The one place that turns `Settings` into a working `SyncEngine`: an HTTP client, credentials, both
connectors, the state store (tables created if missing) and the mapping pack. The CLI and the Function App
both use it, so what runs locally is wired exactly as what runs in Azure.

    settings = load_settings()
    async with build_engine(settings) as engine:
        await engine.sync_modified("customers")

Everything opened here is closed when the block ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from shared.connectors import Connector
from shared.connectors.business_central import BusinessCentralConnector
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance_operations import FinanceOperationsConnector, pack_keys
from shared.http.limits import ConcurrencyLimiter
from shared.http.redact import Redactor
from shared.http.retry import RetryExecutor, RetryPolicy
from shared.mapping import Pack, Side, System, load_pack
from shared.settings import Settings, SettingsError
from shared.state import StateStore, TableNames, service_from_settings
from shared.sync import EngineOptions, SyncEngine

# Connect fast, but give a $batch of 1000 operations time to finish before calling the request dead.
HTTP_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


def engine_options(settings: Settings, **overrides: object) -> EngineOptions:
    """Engine options from the settings: our integration users per side (their changes are echoes)."""
    users = {Side.ERP: frozenset(settings.erp.integration_user_ids),
             Side.CRM: frozenset(settings.crm.integration_user_ids)}
    stale = dt.timedelta(seconds=settings.queue.stale_reservation_s)
    defaults = {"stale_reservation": stale, "live_job_flush": settings.queue.job_flush_s}
    return EngineOptions(integration_users=users, **{**defaults, **overrides})  # type: ignore[arg-type]


def erp_connector(settings: Settings, pack: Pack, http: httpx.AsyncClient, *, limiter: ConcurrencyLimiter,
                  retry: RetryExecutor) -> Connector:
    """The ERP connector `DUALSYNC_ERP__KIND` asks for; it must be the ERP the pack was written for."""
    if settings.erp.kind != pack.systems.erp.value:
        raise SettingsError([("DUALSYNC_ERP__KIND", f"is {settings.erp.kind}, but pack '{pack.name}' "
                                                    f"({pack.source}) syncs {pack.systems.erp.value}")])
    if pack.systems.erp is System.FINANCE_OPERATIONS:
        return FinanceOperationsConnector.from_settings(settings.erp, http, keys=pack_keys(pack), limiter=limiter,
                                                        retry=retry)
    return BusinessCentralConnector.from_settings(settings.erp, http, limiter=limiter, retry=retry)


@asynccontextmanager
async def open_state(settings: Settings) -> AsyncIterator[StateStore]:
    """The state store alone (jobs, errors, couplings), its tables created if missing."""
    async with service_from_settings(settings.storage) as service:
        rate = settings.storage.partition_entities_per_s or None
        state = StateStore(service, TableNames.from_settings(settings.storage), redactor=Redactor(settings.secrets()),
                           partition_rate=rate)
        await state.ensure_tables()
        yield state


@asynccontextmanager
async def build_engine(settings: Settings, *, pack: Pack | None = None,
                       http: httpx.AsyncClient | None = None,
                       options: EngineOptions | None = None) -> AsyncIterator[SyncEngine]:
    """A `SyncEngine` wired from `settings`; closes its HTTP client and storage client on exit.

    `pack` defaults to `load_pack(settings.pack_path)` (raises `PackError` when invalid); `http` lets a caller
    (a test, the Function App's shared client) supply its own client, which it then keeps owning."""
    async with AsyncExitStack() as stack:
        loaded = pack or load_pack(settings.pack_path)
        if http is None:
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=HTTP_TIMEOUT))
        retry = RetryExecutor(RetryPolicy.from_settings(settings.retry))
        # One limiter per process: the per-service caps (BC 5 per user) hold across both connectors' calls.
        limiter = ConcurrencyLimiter.from_settings(settings)
        erp = erp_connector(settings, loaded, http, limiter=limiter, retry=retry)
        crm = DataverseConnector.from_settings(settings.crm, http, limiter=limiter, retry=retry)
        for connector in (erp, crm):  # azure-identity's credentials hold an HTTP session of their own
            stack.push_async_callback(connector.svc.auth.credential.close)
        state = await stack.enter_async_context(open_state(settings))
        engine = SyncEngine(loaded, erp=erp, crm=crm, state=state, options=options or engine_options(settings))
        try:
            yield engine
        finally:
            await engine.aclose()
