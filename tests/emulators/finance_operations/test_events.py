"""Data events: registration, payload, legal-entity activations, virtual fields, control numbers, retries,
rollback, delivery over real HTTP to a local receiver."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.common.server import BackgroundServer
from emulators.finance_operations.core import Emulator
from tests.emulators.finance_operations.conftest import make_app, token

AVA = "5A1D0C6E-7B2F-4C1E-9A3D-00000000F002"
CUST = "CustomersV3(dataAreaId='usmf',CustomerAccount='US-000001')"


class Receiver:
    """Records what it receives and answers with queued statuses (default 200)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.server = BackgroundServer(Starlette(routes=[Route("/hook", self._hook, methods=["POST"])]))

    async def _hook(self, request: Request) -> Response:
        self.calls.append({"headers": dict(request.headers), "query": dict(request.query_params),
                           "body": json.loads(await request.body())})
        return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with r.server:
        yield r


@pytest.fixture(autouse=True)
def _fresh(receiver: Receiver) -> None:
    receiver.calls.clear()
    receiver.statuses.clear()


async def subscribe(anon: httpx.AsyncClient, url: str, entity: str = "CustomersV3", legal_entity: str | None = None,
                    events: list[str] | None = None) -> str:
    r = await anon.post("/_admin/dataevents/endpoints", json={"name": "dualsync", "url": url + "?code=s3cret",
                                                              "headers": {"x-functions-key": "k"}})
    assert r.status_code == 201, r.text
    endpoint = r.json()["id"]
    r = await anon.post("/_admin/dataevents/activations", json={
        "entity": entity, "events": events or ["Create", "Update", "Delete"], "legal_entity": legal_entity,
        "endpoint": endpoint})
    assert r.status_code == 201, r.text
    return endpoint


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    return [c["body"] for c in receiver.calls]


def attrs(item: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in item["value"]["Attributes"]}


async def test_registration_refusals(anon: httpx.AsyncClient, receiver: Receiver) -> None:
    endpoint = await subscribe(anon, receiver.url)
    for body in ({"entity": "Nope", "endpoint": endpoint}, {"entity": "CustomersV3", "endpoint": "nope"},
                 {"entity": "CustomersV3", "endpoint": endpoint, "legal_entity": "xxxx"},
                 {"entity": "Currencies", "endpoint": endpoint, "legal_entity": "usmf"},
                 {"entity": "CustomersV3", "endpoint": endpoint, "events": ["Upsert"]}):
        assert (await anon.post("/_admin/dataevents/activations", json=body)).status_code == 400, body
    r = await anon.post("/_admin/dataevents/activations", json={"entity": "CustomerV3", "endpoint": endpoint})
    assert r.status_code == 201 and r.json()["entity"] == "CustomersV3"
    listed = (await anon.get("/_admin/dataevents/endpoints")).json()["value"]
    assert listed[0]["url"] == receiver.url and listed[0]["headers"] == ["x-functions-key"]
    assert (await anon.delete(f"/_admin/dataevents/activations/{r.json()['id']}")).status_code == 204
    assert (await anon.delete(f"/_admin/dataevents/endpoints/{endpoint}")).status_code == 204


async def test_payloads_for_create_update_delete(anon: httpx.AsyncClient, login: Any, emu: Emulator,
                                                 receiver: Receiver) -> None:
    await subscribe(anon, receiver.url)
    ava = await login("fo-user-ava")
    r = await ava.post("CustomersV3", json={"CustomerGroupId": "10", "OrganizationName": "Evented"})
    key = f"CustomersV3(dataAreaId='usmf',CustomerAccount='{r.json()['CustomerAccount']}')"
    await ava.patch(key, json={"NameAlias": "EV"})
    await ava.delete(key)
    await emu.events.drain()
    create, update, delete = bodies(receiver)
    call = receiver.calls[0]
    assert call["query"] == {"code": "s3cret"} and call["headers"]["x-functions-key"] == "k"
    assert call["headers"]["content-type"] == "application/json"
    assert create["BusinessEventId"] == "CustomerV3_Create" and create["MessageName"] == "Create"
    assert create["BusinessEventLegalEntity"] == "usmf" and create["PrimaryEntityName"] == "CustomerV3"
    assert create["EntitySetName"] == "CustomersV3" and create["InitiatingUserAADObjectId"] == "{" + AVA + "}"
    assert create["EventId"] == create["EventId"].upper() and create["EventTime"].startswith("/Date(")
    assert create["EventTimeIso8601"].endswith("Z") and create["MajorVersion"] == 0
    target = create["InputParameters"][0]
    assert target["key"] == "Target" and target["value"]["LogicalName"] == "CustomerV3"
    assert attrs(target)["OrganizationName"] == "Evented" and attrs(target)["dataAreaId"] == "usmf"
    assert create["PreEntityImages"] == [] and create["PostEntityImages"] == []
    assert update["MessageName"] == "Update" and attrs(update["InputParameters"][0])["NameAlias"] == "EV"
    assert update["PreEntityImages"][0]["key"] == "PreImage"
    assert attrs(update["PreEntityImages"][0])["NameAlias"] == ""
    assert delete["BusinessEventId"] == "CustomerV3_Delete" and delete["PreEntityImages"] == []
    assert attrs(delete["InputParameters"][0])["CustomerAccount"] == attrs(target)["CustomerAccount"]
    numbers = [b["ControlNumber"] for b in (create, update, delete)]
    assert numbers == sorted(numbers) and all(1 <= b - a <= 3 for a, b in itertools.pairwise(numbers))
    sent = (await anon.get("/_admin/dataevents/sent")).json()
    assert sent["count"] == 3 and sent["last_control_number"] == numbers[-1]


async def test_null_dates_left_out(anon: httpx.AsyncClient, fo: httpx.AsyncClient, emu: Emulator,
                                   receiver: Receiver) -> None:
    await subscribe(anon, receiver.url, entity="SalesOrderHeadersV2")
    await fo.post("SalesOrderHeadersV2", json={"OrderingCustomerAccountNumber": "US-000001", "CurrencyCode": "USD",
                                               "RequestedShippingDate": "2025-06-01"})
    await emu.events.drain()
    names = attrs(bodies(receiver)[0]["InputParameters"][0])
    assert names["RequestedShippingDate"] == "2025-06-01" and "RequestedReceiptDate" not in names


async def test_legal_entity_activation_and_integration_user(anon: httpx.AsyncClient, fo: httpx.AsyncClient,
                                                            emu: Emulator, receiver: Receiver) -> None:
    await subscribe(anon, receiver.url, legal_entity="demf", events=["Update"])
    await fo.patch(CUST, json={"NameAlias": "us change"})
    await fo.patch("CustomersV3(dataAreaId='demf',CustomerAccount='C-1001')", json={"NameAlias": "de change"})
    await emu.events.drain()
    got = bodies(receiver)
    assert len(got) == 1 and got[0]["BusinessEventLegalEntity"] == "demf"
    # the integration user's own writes raise events too
    assert got[0]["InitiatingUserAADObjectId"] == "{5A1D0C6E-7B2F-4C1E-9A3D-00000000F001}"


async def test_virtual_field_only_update_raises_nothing(anon: httpx.AsyncClient, fo: httpx.AsyncClient,
                                                        emu: Emulator, receiver: Receiver) -> None:
    await subscribe(anon, receiver.url)
    assert (await fo.patch(CUST, json={"CustomerNote": "virtual only"})).status_code == 204
    assert (await fo.get(CUST)).json()["CustomerNote"] == "virtual only"
    await fo.patch(CUST, json={"NameAlias": "real"})
    await emu.events.drain()
    assert [b["MessageName"] for b in bodies(receiver)] == ["Update"]


async def test_admin_write_raises_event(anon: httpx.AsyncClient, emu: Emulator, receiver: Receiver) -> None:
    await subscribe(anon, receiver.url)
    r = await anon.post("/_admin/tables/CustomersV3?as=fo-user-ava", json={"CustomerGroupId": "10",
                                                                          "OrganizationName": "UI"})
    assert r.status_code == 201
    await emu.events.drain()
    assert bodies(receiver)[0]["InitiatingUserAADObjectId"] == "{" + AVA + "}"


async def test_rolled_back_changeset_raises_nothing(anon: httpx.AsyncClient, fo: httpx.AsyncClient,
                                                    emu: Emulator, receiver: Receiver) -> None:
    await subscribe(anon, receiver.url)
    body = ("--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n"
            "--cs\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\n"
            f"PATCH {CUST} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"NameAlias\": \"x\"}}\r\n"
            "--cs\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\n"
            "POST CustomersV3 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}\r\n--cs--\r\n--b--\r\n")
    r = await fo.post("$batch", content=body.encode(), headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert r.status_code == 200 and b"HTTP/1.1 400" in r.content
    await fo.patch(CUST, json={"NameAlias": "committed"})
    await emu.events.drain()
    assert [attrs(b["InputParameters"][0])["NameAlias"] for b in bodies(receiver)] == ["committed"]


@pytest.fixture
async def mocked() -> AsyncIterator[tuple[Starlette, list[int], list[dict[str, Any]]]]:
    statuses: list[int] = []
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        status = statuses.pop(0) if statuses else 200
        if status == 0:
            raise httpx.ConnectError("refused")
        return httpx.Response(status)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    app = make_app(http_client=client)
    yield app, statuses, seen
    await app.state.emulator.events.aclose()
    await client.aclose()


async def _setup(app: Starlette) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    anon = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://fo.test")
    await subscribe(anon, "http://receiver.test/hook")
    tok = await token(anon)
    fo = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://fo.test/data/",
                           headers={"Authorization": f"Bearer {tok}"})
    return anon, fo


async def test_retries_then_delivered(mocked: tuple[Starlette, list[int], list[dict[str, Any]]]) -> None:
    app, statuses, seen = mocked
    anon, fo = await _setup(app)
    statuses += [500, 0]  # a 5xx, a connection error, then 200
    await fo.patch(CUST, json={"NameAlias": "retry"})
    await app.state.emulator.events.drain()
    assert len(seen) == 3 and len({s["EventId"] for s in seen}) == 1
    sent = (await anon.get("/_admin/dataevents/sent")).json()
    assert sent["count"] == 1 and sent["value"][0]["attempts"] == 3
    assert (await anon.get("/_admin/dataevents/errors")).json()["value"] == []
    await anon.aclose()
    await fo.aclose()


async def test_always_failing_goes_to_errors(mocked: tuple[Starlette, list[int], list[dict[str, Any]]]) -> None:
    app, statuses, seen = mocked
    anon, fo = await _setup(app)
    statuses += [503] * 4
    await fo.patch(CUST, json={"NameAlias": "lost?"})
    await app.state.emulator.events.drain()
    assert len(seen) == 4  # 1 + 3 retries
    errors = (await anon.get("/_admin/dataevents/errors")).json()["value"]
    assert len(errors) == 1 and errors[0]["status"] == 503 and errors[0]["attempts"] == 4
    assert errors[0]["payload"]["MessageName"] == "Update" and errors[0]["event_id"] == seen[0]["EventId"]
    await anon.aclose()
    await fo.aclose()


async def test_delivery_faults_duplicate_and_drop_events(anon: httpx.AsyncClient, fo: httpx.AsyncClient,
                                                         emu: Emulator, receiver: Receiver) -> None:
    await subscribe(anon, receiver.url, events=["Update"])
    r = await anon.patch("/_admin/config", json={"delivery": {"duplicate_ratio": 1.0, "duplicate_gap_ms": 0}})
    assert r.status_code == 200, r.text
    for alias in ("one", "two"):
        await fo.patch(CUST, json={"NameAlias": alias})
    await emu.events.drain()
    ids = [b["EventId"] for b in bodies(receiver)]
    assert len(ids) == 4 and ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]
    await anon.patch("/_admin/config", json={"delivery": {"duplicate_ratio": 0, "drop_ratio": 1.0}})
    await fo.patch(CUST, json={"NameAlias": "never told"})
    await emu.events.drain()
    assert len(receiver.calls) == 4 and emu.events.errors == []  # dropped silently, as a lost delivery is
    counts = (await anon.get("/_admin/config")).json()["delivery_counts"]
    assert counts == {"deliveries": 3, "dropped": 1, "duplicated": 2, "delayed": 0}


@pytest.mark.parametrize("settings_overrides", [{"delivery": {"delay_jitter_ms": 80, "seed": 5}}])
async def test_delivery_jitter_reorders_events(anon: httpx.AsyncClient, fo: httpx.AsyncClient, emu: Emulator,
                                               receiver: Receiver) -> None:
    await subscribe(anon, receiver.url, events=["Update"])
    for i in range(8):
        await fo.patch(CUST, json={"NameAlias": f"n{i}"})
    await emu.events.drain()
    numbers = [b["ControlNumber"] for b in bodies(receiver)]
    assert len(numbers) == 8 and numbers != sorted(numbers)  # delayed events were overtaken
    assert emu.events.delivery.counts.delayed == 8
