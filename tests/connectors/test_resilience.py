"""Throttling, injected faults, tokens, our own concurrency limit, redaction, and real sockets over HTTPS."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.applications import Starlette

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.common.server import BackgroundServer
from emulators.common.tls import trust_local_ca
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from shared.connectors.base import PermanentError, RateLimited, TransientError, WriteOp
from shared.connectors.business_central import BusinessCentralConnector
from shared.connectors.dataverse import DataverseConnector
from shared.http.limits import BUSINESS_CENTRAL, ConcurrencyLimiter
from shared.http.retry import RetryExecutor, RetryPolicy
from tests.support.connectors import (
    BC_URL,
    CLIENT_ID,
    DV_URL,
    FAST,
    Sent,
    bc_company,
    configure,
    make_bc,
    make_dv,
)
from tests.support.credentials import EmulatorCredential


async def test_dataverse_429_retry_after_is_ridden_out(dv: DataverseConnector, dv_http: httpx.AsyncClient,
                                                       sent: Sent) -> None:
    await configure(dv_http, DV_URL, limits={"window_requests": 3, "window_seconds": 1})
    records = await asyncio.gather(*(dv.create("accounts", {"name": f"T{i}"}) for i in range(5)))
    assert len({r.id for r in records}) == 5
    assert dv.svc.retry.retries >= 1  # some creates met a 429 and waited for Retry-After (1 s)
    assert len(sent.to("/accounts", "POST")) == 5 + dv.svc.retry.retries  # nothing created twice


async def test_throttled_past_the_budget_is_rate_limited(dv_http: httpx.AsyncClient, dv_app: Starlette) -> None:
    quick = RetryExecutor(RetryPolicy(max_attempts=2, max_elapsed=0.5))
    dv = make_dv(dv_http, dv_app, retry=quick)
    await configure(dv_http, DV_URL, limits={"window_requests": 1, "window_seconds": 60})
    await dv.create("accounts", {"name": "first"})
    with pytest.raises(RateLimited) as info:
        await dv.create("accounts", {"name": "second"})
    assert info.value.status == 429 and info.value.code == "0x80072322"


async def test_bc_429_without_retry_after_backs_off(bc: BusinessCentralConnector, bc_http: httpx.AsyncClient) -> None:
    # BC processes a few requests at once and refuses the rest with a bare 429; our limiter allows 5.
    await configure(bc_http, BC_URL, limits={"max_concurrent": 1, "max_queued": 0}, faults={"latency_ms": 5})
    records = await asyncio.gather(*(bc.create("customers", {"displayName": f"C{i}"}) for i in range(6)))
    assert len({r.id for r in records}) == 6 and bc.svc.retry.retries >= 1


async def test_our_limit_keeps_us_under_bc_protection(bc_http: httpx.AsyncClient, bc_app: Starlette) -> None:
    limiter = ConcurrencyLimiter({BUSINESS_CENTRAL: 2})
    bc = make_bc(bc_http, bc_app, limiter=limiter)
    await bc.get("customers", (await anext(bc.list("customers")))[0].id)  # token fetched, slots warm
    await configure(bc_http, BC_URL, limits={"max_concurrent": 2, "max_queued": 0}, faults={"latency_ms": 10})
    await asyncio.gather(*(bc.create("customers", {"displayName": f"L{i}"}) for i in range(10)))
    assert limiter.peak(BUSINESS_CENTRAL) == 2 and bc.svc.retry.retries == 0  # never refused


@pytest.mark.parametrize("system", ["bc", "dv"])
async def test_5xx_faults_are_ridden_out(system: str, bc_http: httpx.AsyncClient, bc_app: Starlette,
                                         dv_http: httpx.AsyncClient, dv_app: Starlette) -> None:
    http, base = (bc_http, BC_URL) if system == "bc" else (dv_http, DV_URL)
    conn = make_bc(bc_http, bc_app) if system == "bc" else make_dv(dv_http, dv_app)
    entity, field = ("customers", "displayName") if system == "bc" else ("accounts", "name")
    await configure(http, base, faults={"error_ratio": 0.4, "error_status": 500, "seed": 11})
    created = [await conn.create(entity, {field: f"F{i}"}) for i in range(6)]
    batch = await conn.write_batch([WriteOp("update", entity, {field: "G"}, id=r.id) for r in created])
    listed = [r async for page in conn.list(entity, page_size=3) for r in page]
    assert all(r.ok for r in batch) and {r.id for r in created} <= {r.id for r in listed}
    assert conn.svc.retry.retries >= 2  # the fixed seed injects failures; every one was retried away
    await configure(http, base, faults={"error_ratio": 1.0})
    with pytest.raises(TransientError) as info:
        await conn.get(entity, created[0].id)
    assert info.value.status == 500 and "after 8 attempts" in info.value.message


async def test_bad_secret_is_a_clear_error_that_never_shows_the_secret(
        bc_http: httpx.AsyncClient, bc_app: Starlette, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-secret-value-9f8e7d"
    settings: BusinessCentralSettings = bc_app.state.emulator.settings
    credential = EmulatorCredential(bc_http, BC_URL, settings.tenant_id, CLIENT_ID, secret)
    bc = BusinessCentralConnector(bc_http, credential, tenant_id=settings.tenant_id, environment="production",
                                  company_id=make_bc(bc_http, bc_app).company_id, base_url=f"{BC_URL}/v2.0",
                                  retry=RetryExecutor(FAST))
    with pytest.raises(PermanentError) as info:
        await bc.create("customers", {"displayName": "x"})
    assert info.value.code == "AuthenticationFailed" and "invalid_client" in info.value.message
    assert secret not in f"{info.value.message} {info.value.detail}" and secret not in caplog.text


async def test_tokens_never_reach_logs_or_errors(dv: DataverseConnector, dv_http: httpx.AsyncClient,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await configure(dv_http, DV_URL, faults={"error_ratio": 0.5, "error_status": 500, "seed": 5})
    assert [r async for page in dv.list("accounts", page_size=2) for r in page]
    with pytest.raises(PermanentError) as info:
        await dv.create("accounts", {"name": "x", "nosuch": 1})
    token = (await dv.svc.auth.credential.get_token(dv.svc.auth.scope)).token
    assert dv.svc.retry.retries >= 1 and "retry" in caplog.text
    assert token not in caplog.text and token not in f"{info.value.message} {info.value.detail}"


async def test_built_from_settings_over_https_with_azure_identity() -> None:
    """The path the Function App takes: connectors from settings, azure-identity's ClientSecretCredential asking
    the emulators' token endpoint, everything over HTTPS verified against the local CA."""
    from pydantic import SecretStr

    from shared.settings import CrmSettings, ErpSettings

    tls = trust_local_ca()
    bc_app = create_bc(BusinessCentralSettings(records=6, seed=5))
    dv_app = create_dv(DataverseSettings(records=6, seed=5, webhook_delay_ms=0))
    secret = SecretStr("dualsync-integration-secret")
    with BackgroundServer(bc_app, tls=tls) as bc_server, BackgroundServer(dv_app, tls=tls) as dv_server:
        assert bc_server.url.startswith("https://") and dv_server.url.startswith("https://")
        bc_settings: BusinessCentralSettings = bc_app.state.emulator.settings
        erp = ErpSettings(tenant_id=bc_settings.tenant_id, authority=bc_server.url, client_id=CLIENT_ID,
                          client_secret=secret, base_url=f"{bc_server.url}/v2.0", company_id=bc_company(bc_app),
                          page_size=4)
        crm = CrmSettings(tenant_id=dv_app.state.emulator.settings.tenant_id, authority=dv_server.url,
                          client_id=CLIENT_ID, client_secret=secret, base_url=dv_server.url, batch_size=7)
        async with httpx.AsyncClient(timeout=10) as http:
            bc = BusinessCentralConnector.from_settings(erp, http)
            dv = DataverseConnector.from_settings(crm, http)
            try:
                assert bc.page_size == 4 and dv.batch_size == 7 and dv.svc.auth.scope == f"{dv_server.url}/.default"
                customers = [r async for page in bc.list("customers") for r in page]
                assert len(customers) == len({r.id for r in customers}) > 4
                account = await dv.upsert("accounts", {"accountnumber": "SOCK-1"}, {"name": "Socket"})
                customer = await bc.create("customers", {"displayName": account.values["name"]})
                assert (await bc.get("customers", customer.id)).values["displayName"] == "Socket"
                results = await dv.write_batch([WriteOp("delete", "accounts", id=account.id)], atomic=True)
                assert results[0].ok
                await bc.delete("customers", customer.id, etag=customer.etag)
                assert "dualsync-integration-secret" not in bc.svc.redactor.text("x dualsync-integration-secret y")
            finally:
                for connector in (bc, dv):
                    await connector.svc.auth.credential.close()
