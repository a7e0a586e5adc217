"""One change, one trace: a person's edit in Business Central reaches Dataverse through the real path — BC's
notification posted to the Function App's webhook on the local host, the in-process Service Bus queue, the
processor, the emulators over HTTPS — and every span of it, from the webhook to the httpx request that writes
the account, has one trace id. The processor's metrics and the console's per-minute activity (in Azurite) say
the same change happened."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.common.server import BackgroundServer
from emulators.common.tls import trust_local_ca
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from emulators.functions_host import LocalHost
from emulators.sandbox.settings import stack_settings
from function_app import app as function_app
from shared.app_runtime import AppRuntime
from shared.runtime import build_engine, open_state
from shared.telemetry import instruments as names
from shared.telemetry.activity import recent
from shared.telemetry.trace_view import build, find_trace
from tests.telemetry.conftest import Recorded

BC_STATE = "telemetry-client-state-0123456789"


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


async def test_one_trace_follows_a_change_from_the_webhook_to_the_write(recorded: Recorded,
                                                                        table_connection_string: str,
                                                                        table_prefix: str) -> None:
    bc_app = create_bc(BusinessCentralSettings(records=2, seed=3, notification_delay_ms=50))
    dv_app = create_dv(DataverseSettings(records=2, seed=3, webhook_delay_ms=0))
    tls = trust_local_ca()
    started = dt.datetime.now(dt.UTC)
    with BackgroundServer(bc_app, tls=tls) as bc, BackgroundServer(dv_app, tls=tls) as dv:
        settings = stack_settings(bc.url, dv.url, bc_app, dv_app, table_connection_string, table_prefix,
                                  bc_client_state=BC_STATE, dataverse_key="telemetry-dv-key-0123456789")
        runtimes: list[AppRuntime] = []

        def runtime(host: LocalHost) -> AppRuntime:
            runtimes.append(AppRuntime(settings=settings, sender=host.sender()))
            return runtimes[-1]

        host = LocalHost(function_app, run_timers=False, runtime=runtime)
        with BackgroundServer(host.asgi(), tls=tls) as functions:
            async with httpx.AsyncClient(timeout=30) as http:
                customer_id, account_id = await _coupled_customer(http, settings, bc.url)
                edited = (await http.patch(f"{bc.url}/_admin/tables/customers/{customer_id}",
                                           params={"as": "bc-user-annie"}, json={"phoneNumber": "+46 40 555"})).json()
                # BC's notification of the edit, as BC posts it to the subscription's URL.
                notice = {"value": [{"subscriptionId": "telemetry", "clientState": BC_STATE, "changeType": "updated",
                                     "resource": f"api/v2.0/companies({settings.erp.company_id})/customers"
                                                 f"({customer_id})",
                                     "lastModifiedDateTime": edited["lastModifiedDateTime"]}]}
                answer = await http.post(f"{functions.url}/api/webhooks/business_central/customers", json=notice)
                assert answer.status_code == 202, answer.text

                async def arrived() -> bool:
                    row = (await http.get(f"{dv.url}/_admin/tables/accounts/{account_id}")).json()
                    return row.get("telephone1") == "+46 40 555"

                await eventually(arrived, "the BC edit reaching Dataverse")
                await eventually(lambda: _async(not host.queue().busy), "the queue settling")
        flushes = (await runtimes[0].activity()).flushes  # the host has stopped: what was left is written

    spans = recorded.spans()
    trace = find_trace(spans, **{"dualsync.source_id": customer_id, "dualsync.outcome": "modified"})
    assert trace is not None, "no processor span for the change"
    [webhook] = build(spans, trace)  # one root: nothing of the change started a trace of its own
    assert webhook.name == "webhook business_central/customers"
    assert webhook.attributes["http.response.status_code"] == 202
    [enqueue] = webhook.children
    assert enqueue.name == "enqueue 1 message(s)"
    [process] = [c for c in enqueue.children if c.name == "process customers to_crm"]
    assert process.attributes["dualsync.attempt"] == 1 and process.attributes["dualsync.queue_wait_s"] >= 0
    steps = [c.name for c in process.children if c.name.startswith(("read ", "write "))]
    assert steps[0] == "read erp customers (source)" and "write crm accounts (target)" in steps
    [write] = [c for c in process.children if c.name == "write crm accounts (target)"]
    assert write.attributes["dualsync.record_id"] == account_id
    requests = [c for c in write.walk() if "dualsync.http.path" in c.attributes]
    assert requests and {c.span["context"]["trace_id"] for c in requests} == {trace}
    # Query values (a $filter may quote a record's data, a URL may carry a key) never reach a span.
    urls = [n.attributes.get("url.full") or n.attributes.get("http.url") for n in webhook.walk()
            if "dualsync.http.path" in n.attributes]
    assert any("?" in url for url in urls) and not any("=" in url for url in urls)
    patch = requests[-1]
    assert (patch.attributes.get("http.method") or patch.attributes.get("http.request.method")) == "PATCH"
    assert account_id in patch.attributes["dualsync.http.path"]
    # The lag runs from BC's own modified time of the edit to our write: positive, and well under the test.
    lag = process.attributes["dualsync.lag_s"]
    assert 0 < lag < (dt.datetime.now(dt.UTC) - started).total_seconds()

    assert recorded.total(names.CHANGES, mapping="customers", direction="to_crm", outcome="modified") >= 1
    assert recorded.total(names.LAG, mapping="customers", direction="to_crm") >= 1
    assert recorded.total(names.QUEUE_AGE, mapping="customers", direction="to_crm") >= 1

    # The console's view, from Table storage: the change, its lag, in a minute of this test; written in a
    # handful of transactions (never one per change).
    async with open_state(settings) as state:
        minutes = await recent(state, mapping="customers", since=started - dt.timedelta(minutes=1))
    to_crm = [m for m in minutes if m.direction == "to_crm"]
    assert sum(m.changes for m in to_crm) >= 1 and sum(m.failures for m in to_crm) == 0
    assert max(m.lag_ms_max for m in to_crm) >= lag * 1000 - 1
    assert 1 <= flushes <= 3


async def _async(value: bool) -> bool:
    return value


async def _coupled_customer(http: httpx.AsyncClient, settings: Any, bc_url: str) -> tuple[str, str]:
    """Set-up, not under test: a BC customer coupled to a new account."""
    company = settings.erp.company_id
    row = (await http.post(f"{bc_url}/_admin/tables/customers", params={"as": "bc-user-annie"}, json={
        "_companyId": company, "number": "C77001", "displayName": "Tailspin Toys", "type": "Company",
        "city": "Oslo", "phoneNumber": "+47 1"})).json()
    async with build_engine(settings) as engine:
        first = await engine.sync_record("customers", "to_crm", row["id"], create=True)
        assert first.destination_id is not None, first.message
    return row["id"], first.destination_id
