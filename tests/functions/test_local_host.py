"""The local host runs the app's own function objects: HTTP over a real socket (routes, auth levels), timers on
demand, the queue trigger; and the whole flow: an emulator's webhook → local host → queue → processor → the
other emulator, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
import httpx
import pytest

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.common.server import BackgroundServer
from emulators.common.tls import trust_local_ca
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from emulators.functions_host import InProcessQueue, LocalHost
from emulators.sandbox.settings import stack_settings
from function_app import app as function_app
from shared.app_runtime import AppRuntime
from shared.mapping import Side
from shared.queue import RetrySchedule
from shared.runtime import build_engine
from shared.settings import Settings


def tiny_app() -> tuple[func.FunctionApp, list[Any]]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    calls: list[Any] = []

    @app.route(route="items/{item_id:int}/{*rest}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def item(req: func.HttpRequest) -> func.HttpResponse:  # a sync function: run in a worker thread
        return func.HttpResponse(json.dumps({"route": dict(req.route_params), "params": dict(req.params),
                                             "body": req.get_body().decode(), "method": req.method}),
                                 status_code=201, headers={"x-seen": "yes"}, mimetype="application/json")

    @app.route(route="secret")
    async def secret(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    @app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
    async def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("bug")

    @app.timer_trigger(schedule="%TICK%", arg_name="timer")
    async def tick(timer: func.TimerRequest) -> None:
        calls.append(("tick", timer.past_due))

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%Q%", connection="SB", is_sessions_enabled=True)
    async def consume(msg: func.ServiceBusMessage) -> None:
        calls.append(("msg", msg.session_id, msg.message_id, msg.delivery_count, msg.get_body()))

    return app, calls


async def test_http_functions_auth_levels_timers_and_queue_of_any_app() -> None:
    app, calls = tiny_app()
    host = LocalHost(app, app_settings={"TICK": "0 0 3 * * *", "Q": "work"}, function_key="fk", run_timers=False,
                     runtime=lambda h: AppRuntime(sender=h.sender()))
    assert set(host.queues) == {"work"} and set(host.schedules) == {"tick"}
    with BackgroundServer(host.asgi()) as server:
        async with httpx.AsyncClient(base_url=server.url + "/api") as http:
            r = await http.post("/items/42/a/b", params={"q": "1"}, content=b"hello")
            assert r.status_code == 201 and r.headers["x-seen"] == "yes"
            assert r.json() == {"route": {"item_id": "42", "rest": "a/b"}, "params": {"q": "1"}, "body": "hello",
                                "method": "POST"}
            assert (await http.get("/items/abc/x")).status_code == 404  # the int constraint
            assert (await http.get("/secret")).status_code == 401
            assert (await http.get("/secret", params={"code": "wrong"})).status_code == 401
            assert (await http.get("/secret", params={"code": "fk"})).text == "ok"
            assert (await http.get("/secret", headers={"x-functions-key": "fk"})).status_code == 200
            assert (await http.get("/boom")).status_code == 500
    # Timers on demand and queue delivery, on a loop of our own.
    await host.start()
    try:
        await host.fire("tick", past_due=True)
        host.queue().put(b"payload", message_id="m1", session_id="s1")
        await host.queue().wait_idle()
    finally:
        await host.stop()
    assert ("tick", True) in calls and ("msg", "s1", "m1", 1, b"payload") in calls


def dead_letter_app(*, sessions: bool = False) -> tuple[func.FunctionApp, list[Any]]:
    app = func.FunctionApp()
    calls: list[Any] = []

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%Q%", connection="SB", is_sessions_enabled=True)
    async def consume(msg: func.ServiceBusMessage) -> None:
        raise ValueError(f"cannot handle {msg.message_id}")

    # As an Azure app declares it: the setting, then the sub-queue (any case), not session-enabled.
    @app.service_bus_queue_trigger(arg_name="dead", queue_name="%Q%/$DeadLetterQueue", connection="SB",
                                   is_sessions_enabled=sessions)
    async def dead_letters(dead: func.ServiceBusMessage) -> None:
        calls.append((dead.message_id, dead.session_id, dead.delivery_count, dead.dead_letter_reason,
                      dead.dead_letter_error_description, dead.get_body()))

    return app, calls


async def test_a_dead_letter_trigger_receives_the_queues_dead_letters() -> None:
    app, calls = dead_letter_app()
    host = LocalHost(app, app_settings={"Q": "work"}, max_delivery_count=2,
                     runtime=lambda h: AppRuntime(sender=h.sender()))
    assert set(host.queues) == {"work"}  # the dead-letter sub-queue is part of its queue
    await host.start()
    try:
        host.queue().put(b"poison", message_id="m1", session_id="s1")
        await host.queue().wait_idle()
    finally:
        await host.stop()
    assert calls == [("m1", "s1", 3, "MaxDeliveryCountExceeded", "ValueError: cannot handle m1", b"poison")]
    assert host.queue().dead_letters == [] and [m.message_id for m in host.queue().dead_lettered] == ["m1"]


def test_a_dead_letter_trigger_must_not_be_session_enabled() -> None:
    app, _ = dead_letter_app(sessions=True)
    with pytest.raises(ValueError, match="must not be session-enabled"):
        LocalHost(app, app_settings={"Q": "work"})


def test_settings_resolve_anywhere_in_a_name() -> None:
    host = LocalHost(func.FunctionApp(), app_settings={"Q": "work", "ENV": "dev"})
    assert host.resolve("%Q%-%ENV%/$DeadLetterQueue") == "work-dev/$DeadLetterQueue"
    assert host.resolve("0 */5 * * * *") == "0 */5 * * * *"
    with pytest.raises(KeyError, match="MISSING"):
        host.resolve("%MISSING%/$deadletterqueue")


BC_STATE, DV_KEY = "e2e-client-state", "e2e-dv-key"


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


async def test_webhooks_travel_through_the_local_host_to_the_other_side(table_connection_string: str,
                                                                        table_prefix: str) -> None:
    bc_app = create_bc(BusinessCentralSettings(records=4, seed=7, notification_delay_ms=50))
    dv_app = create_dv(DataverseSettings(records=4, seed=7, webhook_delay_ms=0))
    tls = trust_local_ca()
    with BackgroundServer(bc_app, tls=tls) as bc, BackgroundServer(dv_app, tls=tls) as dv:
        settings = stack_settings(bc.url, dv.url, bc_app, dv_app, table_connection_string, table_prefix,
                                  bc_client_state=BC_STATE, dataverse_key=DV_KEY)
        host = LocalHost(function_app, run_timers=False,
                         runtime=lambda h: AppRuntime(settings=settings, sender=h.sender(),
                                                      retry=RetrySchedule(6, 0.5, 1.0)))
        with BackgroundServer(host.asgi(), tls=tls) as functions:
            async with httpx.AsyncClient(timeout=30) as http:
                await _flow(http, settings, bc.url, dv.url, functions.url, host)
    echoes = [d for d in dv_app.state.emulator.webhooks.deliveries
              if d.body["UserId"] == dv_app.state.emulator.integration.user_id]
    assert echoes and {d.statuses[-1] for d in echoes} == {202}  # it did arrive, and was dropped there


async def _flow(http: httpx.AsyncClient, settings: Settings, bc_url: str, dv_url: str, fn_url: str,
                host: LocalHost) -> None:
    # Set-up (not under test): a BC customer coupled to a new account by a first sync.
    company = settings.erp.company_id
    row = (await http.post(f"{bc_url}/_admin/tables/customers", params={"as": "bc-user-annie"}, json={
        "_companyId": company, "number": "C99001", "displayName": "Fabrikam Nord AB", "type": "Company",
        "city": "Malmö", "phoneNumber": "+46 40 1"})).json()
    async with build_engine(settings) as engine:
        first = await engine.sync_record("customers", "to_crm", row["id"], create=True)
    account_id = first.destination_id
    assert account_id is not None, first.message

    # Register the webhooks as an operator would: BC subscription (handshake answered by the local host) …
    async with build_engine(settings) as engine:
        bc = engine.connector(Side.ERP)
        await bc.svc.json("POST", bc.api_root + "subscriptions", context="subscribe", json={  # type: ignore[attr-defined]
            "notificationUrl": f"{fn_url}/api/webhooks/business_central/customers", "clientState": BC_STATE,
            "resource": f"/api/v2.0/companies({company})/customers"})
        dv = engine.connector(Side.CRM)
        endpoint = await dv.svc.json("POST", dv.url("serviceendpoints"), context="endpoint",  # type: ignore[attr-defined]
                                     headers={"Prefer": "return=representation"}, json={
            "name": "dualsync", "url": f"{fn_url}/api/webhooks/dataverse/accounts", "contract": 8, "authtype": 5,
            "authvalue": f'<settings><setting name="x-api-key" value="{DV_KEY}" /></settings>'})
        await dv.svc.send("POST", dv.url("sdkmessageprocessingsteps"), context="step", json={  # type: ignore[attr-defined]
            "name": "dualsync: Update of account", "messagename": "Update", "primaryobjecttypecode": "account",
            "stage": 40, "mode": 1, "filteringattributes": "telephone1,name",
            "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint['serviceendpointid']})"})
    queue = host.queue()

    async def account() -> dict[str, Any]:
        return (await http.get(f"{dv_url}/_admin/tables/accounts/{account_id}")).json()

    async def customer() -> dict[str, Any]:
        return (await http.get(f"{bc_url}/_admin/tables/customers/{row['id']}")).json()

    # A person edits the customer in BC: BC's webhook → local host → queue → processor → Dataverse.
    await http.patch(f"{bc_url}/_admin/tables/customers/{row['id']}", params={"as": "bc-user-annie"},
                     json={"phoneNumber": "+46 40 777"})
    await _eventually(lambda: _is(account(), "telephone1", "+46 40 777"), "BC → Dataverse")
    # Our write to Dataverse fired its Update step as the integration user: dropped at the webhook.
    await _eventually(lambda: _settled(queue), "queue settled")
    delivered = len(queue.deliveries)
    await asyncio.sleep(0.3)
    assert len(queue.deliveries) == delivered, "the echo of our own write reached the queue"

    # A person edits the account in Sales: Dataverse's webhook → local host → queue → processor → BC.
    await http.patch(f"{dv_url}/_admin/tables/accounts/{account_id}", params={"as": "dv-sales-anna"},
                     json={"telephone1": "+46 40 888"})
    await _eventually(lambda: _is(customer(), "phoneNumber", "+46 40 888"), "Dataverse → BC")
    await _eventually(lambda: _settled(queue), "queue settled")
    assert queue.dead_letters == []
    assert {d.completed for d in queue.deliveries} == {True}

    # Dataverse fails for a while: the processor reschedules (same session, attempt 2) and then succeeds.
    await http.patch(f"{dv_url}/_admin/config", json={"faults": {"error_ratio": 1.0, "error_status": 503}})
    await http.patch(f"{bc_url}/_admin/tables/customers/{row['id']}", params={"as": "bc-user-annie"},
                     json={"city": "Lund"})
    await _eventually(_async(lambda: bool(queue.scheduled)), "a retry scheduled")
    await http.patch(f"{dv_url}/_admin/config", json={"faults": {"error_ratio": 0.0}})
    await _eventually(lambda: _is(account(), "address1_city", "Lund"), "the change arriving")
    # A retry (message id `…#n`, same session) completed once Dataverse was back.
    await _eventually(_async(lambda: any("#" in d.message_id and d.completed for d in queue.deliveries)),
                      "a retry completing")
    await _eventually(lambda: _settled(queue), "queue settled")
    assert queue.dead_letters == []

    # A poison message: redelivered up to the max delivery count, then dead-lettered with the reason.
    queue.put(b"not a message", message_id="poison", session_id="poison")
    # (`dead_lettered`: the app's dead-letter function may already have consumed it from `dead_letters`.)
    await _eventually(_async(lambda: bool(queue.dead_lettered)), "dead letter")
    [dead] = queue.dead_lettered
    assert [d.delivery_count for d in queue.deliveries if d.message_id == "poison"] == [
        *range(1, queue.max_delivery_count + 1)]
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert dead.dead_letter_description == "PoisonMessage: the message body is not JSON (JSONDecodeError)"


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()
    return wrapped


async def _is(row: Awaitable[dict[str, Any]], field: str, value: Any) -> bool:
    return (await row).get(field) == value


async def _settled(queue: InProcessQueue) -> bool:
    return not queue.busy
