"""Webhook subscriptions (handshake, renew, delete) and notifications (batching, merging, collection,
retries, deletion on other errors, expiry), in-process and once over real sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from emulators.business_central import create_app
from emulators.common.server import BackgroundServer
from tests.emulators.business_central.conftest import API, make_settings, token
from tests.emulators.business_central.receiver import Receiver, wait_for
from tests.emulators.business_central.test_reads import assert_error

HOOK = "http://receiver.test/hook"


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def hooked(receiver: Receiver, overrides: dict[str, Any]) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """An emulator whose outgoing webhook HTTP goes to the in-process receiver."""
    out = httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app))
    app = create_app(make_settings(**overrides), http=out)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bc.test") as bc:
        bc.headers["Authorization"] = f"Bearer {await token(bc)}"
        yield app, bc
    await app.state.emulator.webhooks.aclose()
    await out.aclose()


def _company(app: Starlette, name: str = "CRONUS USA, Inc.") -> str:
    return next(r["id"] for r in app.state.emulator.store.table("companies").all() if r["name"] == name)


async def _subscribe(bc: httpx.AsyncClient, company: str, entity: str = "customers",
                     state: str = "s3cret") -> dict[str, Any]:
    resp = await bc.post(f"{API}subscriptions", json={"notificationUrl": HOOK, "clientState": state,
                                                      "resource": f"/api/v2.0/companies({company})/{entity}"})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_subscribe_runs_the_handshake(hooked: tuple[Starlette, httpx.AsyncClient], receiver: Receiver) -> None:
    app, bc = hooked
    sub = await _subscribe(bc, _company(app))
    assert len(receiver.handshakes) == 1 and len(receiver.handshakes[0]) > 10
    assert sub["notificationUrl"] == HOOK and sub["clientState"] == "s3cret"
    assert len(sub["subscriptionId"]) == 32 and sub["@odata.etag"].startswith('W/"')
    expiry = dt.datetime.fromisoformat(sub["expirationDateTime"])
    assert abs(expiry - dt.datetime.now(dt.UTC) - dt.timedelta(days=3)) < dt.timedelta(minutes=1)
    listed = (await bc.get(f"{API}subscriptions")).json()["value"]
    assert [s["subscriptionId"] for s in listed] == [sub["subscriptionId"]]
    one = await bc.get(f"{API}subscriptions('{sub['subscriptionId']}')")
    assert one.status_code == 200 and one.json()["resource"] == sub["resource"]


@pytest.mark.parametrize("mode", ["wrong", "error", "slow"])
@pytest.mark.parametrize("overrides", [{"handshake_timeout_s": 0.3}])
async def test_failed_handshake_fails_the_request(hooked: tuple[Starlette, httpx.AsyncClient], receiver: Receiver,
                                                  mode: str) -> None:
    app, bc = hooked
    receiver.handshake = mode
    receiver.slow_seconds = 1.0
    resp = await bc.post(f"{API}subscriptions", json={"notificationUrl": HOOK,
                                                      "resource": f"/api/v2.0/companies({_company(app)})/customers"})
    assert "subscription could not be validated" in assert_error(resp, 400, "BadRequest")
    assert (await bc.get(f"{API}subscriptions")).json()["value"] == []


async def test_unreachable_notification_url_fails(hooked: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, bc = hooked
    app.state.emulator.webhooks._http = httpx.AsyncClient()  # a real client, to a closed port
    resp = await bc.post(f"{API}subscriptions", json={"notificationUrl": "http://127.0.0.1:9/hook",
                                                      "resource": f"companies({_company(app)})/customers"})
    assert_error(resp, 400, "BadRequest")
    await app.state.emulator.webhooks._http.aclose()


@pytest.mark.parametrize("resource", ["/api/v2.0/companies({c})/salespeople",
                                      "/api/v2.0/companies({c})/salesOrderLines",
                                      "/api/v2.0/companies(6f0c5a39-0000-4000-8000-000000000000)/customers",
                                      "/api/v2.0/companies({c})/customers({c})", "/api/v2.0/subscriptions"])
async def test_resource_must_be_a_company_entity_set(hooked: tuple[Starlette, httpx.AsyncClient], resource: str,
                                                     receiver: Receiver) -> None:
    app, bc = hooked
    resp = await bc.post(f"{API}subscriptions", json={"notificationUrl": HOOK,
                                                      "resource": resource.format(c=_company(app))})
    assert_error(resp, 400, "BadRequest")
    assert receiver.handshakes == []


async def test_missing_fields_are_rejected(hooked: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, bc = hooked
    assert_error(await bc.post(f"{API}subscriptions", json={"notificationUrl": HOOK}), 400, "BadRequest")
    assert_error(await bc.post(f"{API}subscriptions", json={"notificationUrl": "ftp://x", "resource": "r"}), 400,
                 "BadRequest")


async def test_renew_needs_if_match_and_handshakes_again(hooked: tuple[Starlette, httpx.AsyncClient],
                                                         receiver: Receiver) -> None:
    app, bc = hooked
    sub = await _subscribe(bc, _company(app))
    url = f"{API}subscriptions('{sub['subscriptionId']}')"
    assert_error(await bc.patch(url, json={}), 400, "BadRequest_InvalidToken")
    resp = await bc.patch(url, json={"clientState": "rotated"}, headers={"If-Match": sub["@odata.etag"]})
    assert resp.status_code == 200, resp.text
    assert len(receiver.handshakes) == 2
    renewed = resp.json()
    assert renewed["clientState"] == "rotated" and renewed["expirationDateTime"] >= sub["expirationDateTime"]
    assert_error(await bc.patch(url, json={}, headers={"If-Match": sub["@odata.etag"]}), 409, "Request_EntityChanged")
    receiver.handshake = "wrong"
    assert_error(await bc.patch(url, json={"clientState": "x"}, headers={"If-Match": "*"}), 400, "BadRequest")
    assert (await bc.get(url)).json()["clientState"] == "rotated"
    assert_error(await bc.delete(url), 400, "BadRequest_InvalidToken")
    assert (await bc.delete(url, headers={"If-Match": "*"})).status_code == 204
    assert_error(await bc.get(url), 404, "BadRequest_NotFound")


async def test_changes_are_batched_merged_and_carry_client_state(hooked: tuple[Starlette, httpx.AsyncClient],
                                                                 receiver: Receiver) -> None:
    app, bc = hooked
    company = _company(app)
    sub = await _subscribe(bc, company)
    base = f"{API}companies({company})/"
    made = (await bc.post(f"{base}customers", json={"displayName": "Hooked"})).json()
    for city in ("Oslo", "Bergen"):
        await bc.patch(f"{base}customers({made['id']})", json={"city": city}, headers={"If-Match": "*"})
    others = {"$top": "2", "$filter": f"id ne {made['id']}"}
    old = (await bc.get(f"{base}customers", params=others)).json()["value"]
    await bc.patch(f"{base}customers({old[0]['id']})", json={"city": "A"}, headers={"If-Match": "*"})
    await bc.patch(f"{base}customers({old[0]['id']})", json={"city": "B"}, headers={"If-Match": "*"})
    await bc.delete(f"{base}customers({old[1]['id']})", headers={"If-Match": "*"})
    await bc.post(f"{base}vendors", json={"displayName": "Not subscribed"})
    await wait_for(lambda: len(receiver.notifications) >= 1)
    await asyncio.sleep(0.15)  # nothing else may follow for this window
    assert len(receiver.notifications) == 1
    notices = receiver.notices()
    by_resource = {n["resource"]: n for n in notices}
    assert len(notices) == 3
    prefix = f"api/v2.0/companies({company})/customers"
    assert by_resource[f"{prefix}({made['id']})"]["changeType"] == "created"
    assert by_resource[f"{prefix}({old[0]['id']})"]["changeType"] == "updated"
    assert by_resource[f"{prefix}({old[1]['id']})"]["changeType"] == "deleted"
    for n in notices:
        assert n["subscriptionId"] == sub["subscriptionId"] and n["clientState"] == "s3cret"
        assert n["expirationDateTime"] == sub["expirationDateTime"]
    latest = (await bc.get(f"{base}customers({made['id']})")).json()
    assert by_resource[f"{prefix}({made['id']})"]["lastModifiedDateTime"] == latest["lastModifiedDateTime"]


async def test_every_users_changes_notify(hooked: tuple[Starlette, httpx.AsyncClient], receiver: Receiver) -> None:
    app, bc = hooked
    company = _company(app)
    await _subscribe(bc, company, "items")
    item = next(r for r in app.state.emulator.rows("items", company))
    resp = await bc.patch(f"/_admin/tables/items/{item['id']}?as=bc-user-annie", json={"unitPrice": 12.5})
    assert resp.status_code == 200
    await wait_for(lambda: len(receiver.notices()) == 1)
    assert receiver.notices()[0]["resource"].endswith(f"/items({item['id']})")


@pytest.mark.parametrize("overrides", [{"collection_threshold": 3}])
async def test_many_changes_become_one_collection_notice(hooked: tuple[Starlette, httpx.AsyncClient],
                                                         receiver: Receiver) -> None:
    app, bc = hooked
    company = _company(app)
    await _subscribe(bc, company)
    base = f"{API}companies({company})/"
    made = [(await bc.post(f"{base}customers", json={"displayName": f"Bulk {i}"})).json()["id"] for i in range(5)]
    await wait_for(lambda: len(receiver.notices()) == 1)
    notice = receiver.notices()[0]
    assert notice["changeType"] == "collection"
    prefix = f"/api/v2.0/companies({company})/customers?$filter=lastModifiedDateTime%20gt%20"
    assert notice["resource"].startswith(prefix)
    # The receiver can page through the filtered query it was given.
    query = notice["resource"][len("/api/v2.0/"):].replace("%20", " ")
    found = (await bc.get(f"{API}{query}")).json()["value"]
    assert set(made) <= {r["id"] for r in found}


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_retryable_answers_are_retried(hooked: tuple[Starlette, httpx.AsyncClient], receiver: Receiver,
                                             status: int) -> None:
    app, bc = hooked
    company = _company(app)
    await _subscribe(bc, company)
    receiver.statuses = [status, status]
    await bc.post(f"{API}companies({company})/customers", json={"displayName": "Retry me"})
    await wait_for(lambda: len(receiver.notifications) == 1)
    assert receiver.attempts == 3
    assert len((await bc.get(f"{API}subscriptions")).json()["value"]) == 1


async def test_retries_stop_after_bcs_schedule(hooked: tuple[Starlette, httpx.AsyncClient],
                                               receiver: Receiver) -> None:
    app, bc = hooked
    company = _company(app)
    await _subscribe(bc, company)
    receiver.statuses = [503] * 10
    await bc.post(f"{API}companies({company})/customers", json={"displayName": "Never delivered"})
    await wait_for(lambda: receiver.attempts >= 6)
    await asyncio.sleep(0.3)
    assert receiver.attempts == 6  # the first try and 5 retries (1, 1, 1, 10, 100 minutes, scaled)


@pytest.mark.parametrize("status", [400, 404, 410])
async def test_other_errors_delete_the_subscription(hooked: tuple[Starlette, httpx.AsyncClient], receiver: Receiver,
                                                    status: int) -> None:
    app, bc = hooked
    company = _company(app)
    await _subscribe(bc, company)
    receiver.statuses = [status]
    await bc.post(f"{API}companies({company})/customers", json={"displayName": "Rejected"})
    await wait_for(lambda: not app.state.emulator.store.table("subscriptions").rows)
    assert receiver.attempts == 1
    await bc.post(f"{API}companies({company})/customers", json={"displayName": "Nobody listens"})
    await asyncio.sleep(0.2)
    assert receiver.attempts == 1


async def test_expired_subscriptions_get_nothing(hooked: tuple[Starlette, httpx.AsyncClient],
                                                 receiver: Receiver) -> None:
    app, bc = hooked
    company = _company(app)
    sub = await _subscribe(bc, company)
    resp = await bc.patch(f"/_admin/tables/subscriptions/{sub['subscriptionId']}",
                          json={"expirationDateTime": "2020-01-01T00:00:00.000Z"})
    assert resp.status_code == 200
    await bc.post(f"{API}companies({company})/customers", json={"displayName": "Too late"})
    await asyncio.sleep(0.2)
    assert receiver.attempts == 0


async def test_other_companies_and_rolled_back_batches_do_not_notify(hooked: tuple[Starlette, httpx.AsyncClient],
                                                                     receiver: Receiver) -> None:
    app, bc = hooked
    usa, intl = _company(app), _company(app, "CRONUS International Ltd.")
    await _subscribe(bc, usa)
    await bc.post(f"{API}companies({intl})/customers", json={"displayName": "Other company"})
    ops = [{"method": "POST", "url": f"companies({usa})/customers", "body": {"displayName": "Rolled back"}},
           {"method": "POST", "url": f"companies({usa})/customers", "body": {"blocked": "Never"}}]
    resp = await bc.post(f"{API}$batch", json={"requests": ops}, headers={"Isolation": "snapshot"})
    assert [r["status"] for r in resp.json()["responses"]] == [201, 400]
    await asyncio.sleep(0.2)
    assert receiver.attempts == 0
    await bc.post(f"{API}companies({usa})/customers", json={"displayName": "Counted"})
    await wait_for(lambda: len(receiver.notices()) == 1)


async def test_end_to_end_over_real_sockets(receiver: Receiver) -> None:
    with BackgroundServer(receiver.app) as hook, BackgroundServer(create_app(make_settings())) as emu:
        async with httpx.AsyncClient(base_url=emu.url) as bc:
            bc.headers["Authorization"] = f"Bearer {await token(bc)}"
            company = (await bc.get(f"{API}companies", params={"$filter": "name eq 'CRONUS USA, Inc.'"})).json()
            cid = company["value"][0]["id"]
            resp = await bc.post(f"{API}subscriptions", json={
                "notificationUrl": f"{hook.url}/hook", "resource": f"/api/v2.0/companies({cid})/contacts",
                "clientState": "real"})
            assert resp.status_code == 201, resp.text
            made = await bc.post(f"{API}companies({cid})/contacts", json={"displayName": "Over the wire"})
            await wait_for(lambda: len(receiver.notices()) == 1)
            notice = receiver.notices()[0]
            assert notice["clientState"] == "real" and notice["changeType"] == "created"
            assert notice["resource"] == f"api/v2.0/companies({cid})/contacts({made.json()['id']})"


@pytest.mark.parametrize("overrides", [{"delivery": {"drop_ratio": 1.0}}])
async def test_delivery_faults_drop_and_duplicate_notifications(hooked: tuple[Starlette, httpx.AsyncClient],
                                                                receiver: Receiver) -> None:
    app, bc = hooked
    company = _company(app)
    await _subscribe(bc, company)
    base = f"{API}companies({company})/customers"
    ids = [r["id"] for r in (await bc.get(base, params={"$top": "2"})).json()["value"]]
    # Dropped from the start (settings): BC never sends the window's notification.
    await bc.patch(f"{base}({ids[0]})", json={"city": "Dropped"}, headers={"If-Match": "*"})
    await wait_for(lambda: app.state.emulator.webhooks.delivery.counts.dropped == 1)
    await asyncio.sleep(0.1)
    assert receiver.notifications == []
    # Duplicated at run time: the same notification arrives twice.
    resp = await bc.patch("/_admin/config", json={"delivery": {"drop_ratio": 0, "duplicate_ratio": 1,
                                                              "duplicate_gap_ms": 0}})
    assert resp.status_code == 200, resp.text
    await bc.patch(f"{base}({ids[1]})", json={"city": "Twice"}, headers={"If-Match": "*"})
    await wait_for(lambda: len(receiver.notifications) == 2)
    first, second = receiver.notifications
    assert first == second and first["value"][0]["resource"].endswith(f"/customers({ids[1]})")
    counts = (await bc.get("/_admin/config")).json()["delivery_counts"]
    assert counts == {"deliveries": 2, "dropped": 1, "duplicated": 1, "delayed": 0}
