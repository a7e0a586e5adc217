"""Webhooks registered through the API and delivered over real HTTP to a local receiver."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.common.server import BackgroundServer
from emulators.dataverse.core import Emulator, user_id_for
from emulators.dataverse.webhooks import auth_settings, prepare_call


class Receiver:
    """A webhook endpoint that records what it receives and answers with queued statuses (default 200)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self.server = BackgroundServer(app)

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


async def register(dv: httpx.AsyncClient, url: str, *, message: str, table: str = "contact", authtype: int = 5,
                   authvalue: str = '<settings><setting name="x-api-key" value="s3cret" /></settings>',
                   filtering: str | None = None, images: list[dict[str, Any]] | None = None) -> str:
    r = await dv.post("serviceendpoints", json={"name": "dualsync", "url": url, "contract": 8, "authtype": authtype,
                                                "authvalue": authvalue}, headers={"Prefer": "return=representation"})
    assert r.status_code == 201, r.text
    endpoint = r.json()["serviceendpointid"]
    step = {"name": f"dualsync {message} {table}", "messagename": message, "primaryobjecttypecode": table,
            "stage": 40, "mode": 1, "rank": 1,
            "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint})"}
    if filtering:
        step["filteringattributes"] = filtering
    r = await dv.post("sdkmessageprocessingsteps", json=step, headers={"Prefer": "return=representation"})
    assert r.status_code == 201, r.text
    step_id = r.json()["sdkmessageprocessingstepid"]
    for image in images or []:
        r = await dv.post("sdkmessageprocessingstepimages", json={
            **image, "sdkmessageprocessingstepid@odata.bind": f"/sdkmessageprocessingsteps({step_id})"})
        assert r.status_code == 204, r.text
    return step_id


async def settle(emu: Emulator, receiver: Receiver, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    await emu.webhooks.drain(timeout)
    while len(receiver.calls) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(receiver.calls) == count, receiver.calls


def attrs(entity: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in entity["Attributes"]}


async def test_update_delivers_remote_execution_context(login, dv, emu: Emulator, receiver: Receiver) -> None:
    await register(dv, receiver.url, message="Update", images=[
        {"name": "pre", "entityalias": "PreImage", "imagetype": 0, "attributes": "firstname,lastname"}])
    contact = next(emu.store.table("contacts").all())
    anna = await login("dv-sales-anna")
    r = await anna.patch(f"contacts({contact['contactid']})", json={"firstname": "James", "statecode": 1})
    assert r.status_code == 204
    await settle(emu, receiver, 1)
    call = receiver.calls[0]
    h, body = call["headers"], call["body"]
    assert h["x-api-key"] == "s3cret"
    assert h["x-ms-dynamics-entity-name"] == "contact" and h["x-ms-dynamics-request-name"] == "Update"
    assert h["x-ms-dynamics-organization"] == "dualsync-dev.crm.dynamics.com"
    assert h["x-ms-correlation-request-id"] == body["CorrelationId"]
    assert "x-ms-dynamics-msg-size-exceeded" not in h
    anna_id = user_id_for("dv-sales-anna")
    assert body["UserId"] == body["InitiatingUserId"] == anna_id
    assert (body["MessageName"], body["PrimaryEntityName"], body["PrimaryEntityId"]) == ("Update", "contact",
                                                                                          contact["contactid"])
    assert (body["Stage"], body["Mode"], body["Depth"]) == (40, 1, 1)
    assert body["OrganizationId"] == emu.settings.organization_id
    assert body["OperationCreatedOn"].startswith("/Date(") and body["OperationCreatedOn"].endswith(")/")
    target = body["InputParameters"][0]
    assert target["key"] == "Target" and target["value"]["__type"].startswith("Entity:")
    values = attrs(target["value"])
    assert values["firstname"] == "James"
    assert values["statuscode"] == {"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts",
                                    "Value": 2}
    assert values["modifiedby"]["__type"].startswith("EntityReference:") and values["modifiedby"]["Id"] == anna_id
    assert values["modifiedby"]["LogicalName"] == "systemuser"
    assert values["modifiedon"].startswith("/Date(")
    pre = {i["key"]: i["value"] for i in body["PreEntityImages"]}
    assert attrs(pre["PreImage"]) == {"firstname": contact["firstname"], "lastname": contact["lastname"]}
    post = {i["key"]: i["value"] for i in body["PostEntityImages"]}
    assert "AsynchronousStepPrimaryName" in post


async def test_create_and_delete_targets(dv, emu: Emulator, receiver: Receiver) -> None:
    await register(dv, receiver.url, message="Create", table="account")
    await register(dv, receiver.url, message="Delete", table="account",
                   images=[{"name": "pre", "entityalias": "Pre", "imagetype": 0}])
    currency = next(emu.store.table("transactioncurrencies").all())["transactioncurrencyid"]
    r = await dv.post("accounts", json={"name": "Hooked", "creditlimit": 12.5,
                                        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({currency})"})
    aid = r.headers["OData-EntityId"].rsplit("(", 1)[1][:-1]
    await dv.delete(f"accounts({aid})")
    await settle(emu, receiver, 2)
    create, delete = sorted((c["body"] for c in receiver.calls), key=lambda b: b["MessageName"])
    values = attrs(create["InputParameters"][0]["value"])
    assert values["creditlimit"] == {"__type": "Money:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 12.5}
    assert values["transactioncurrencyid"]["Id"] == currency
    assert values["transactioncurrencyid"]["LogicalName"] == "transactioncurrency"
    assert create["OutputParameters"] == [{"key": "id", "value": aid}]
    ref = delete["InputParameters"][0]["value"]
    assert ref["__type"].startswith("EntityReference:") and (ref["Id"], ref["LogicalName"]) == (aid, "account")
    assert attrs(delete["PreEntityImages"][0]["value"])["name"] == "Hooked"


async def test_filtering_attributes_decide_whether_update_fires(dv, emu: Emulator, receiver: Receiver) -> None:
    await register(dv, receiver.url, message="Update", filtering="firstname,parentcustomerid")
    contact = next(emu.store.table("contacts").all())
    account = list(emu.store.table("accounts").all())[3]
    await dv.patch(f"contacts({contact['contactid']})", json={"jobtitle": "Not watched"})
    await dv.patch(f"contacts({contact['contactid']})", json={"firstname": contact["firstname"]})  # unchanged value
    await emu.webhooks.drain()
    assert receiver.calls == []
    await dv.patch(f"contacts({contact['contactid']})",
                   json={"parentcustomerid_account@odata.bind": f"/accounts({account['accountid']})"})
    await settle(emu, receiver, 1)


async def test_webhook_key_and_query_string_auth(dv, emu: Emulator, receiver: Receiver) -> None:
    await register(dv, receiver.url, message="Create", authtype=4, authvalue="key-123")
    await register(dv, receiver.url + "?fixed=1", message="Create", authtype=6,
                   authvalue='<settings><setting name="k1" value="v1" /><setting name="k2" value="v 2" /></settings>')
    await dv.post("contacts", json={"lastname": "Auth"})
    await settle(emu, receiver, 2)
    queries = sorted((c["query"] for c in receiver.calls), key=len)
    assert queries == [{"code": "key-123"}, {"fixed": "1", "k1": "v1", "k2": "v 2"}]
    assert all("key-123" not in d.url for d in emu.webhooks.deliveries)  # secrets are not kept in the record


async def test_oversized_context_is_stripped(dv, emu: Emulator, receiver: Receiver) -> None:
    await register(dv, receiver.url, message="Create")
    await dv.post("contacts", json={"lastname": "Big", "description": "x" * 300_000})
    await settle(emu, receiver, 1)
    call = receiver.calls[0]
    assert call["headers"]["x-ms-dynamics-msg-size-exceeded"] == "true"
    body = call["body"]
    assert body["InputParameters"] == [] and body["PostEntityImages"] == [] and body["ParentContext"] is None
    assert body["PrimaryEntityId"] and body["MessageName"] == "Create"


@pytest.mark.parametrize(("answers", "calls"), [([503, 200], 2), ([504, 502], 2), ([500], 1), ([404], 1)])
async def test_retries_once_on_502_503_504_only(dv, emu: Emulator, receiver: Receiver, answers: list[int],
                                                calls: int) -> None:
    receiver.statuses.extend(answers)
    await register(dv, receiver.url, message="Create")
    await dv.post("contacts", json={"lastname": "Retry"})
    await settle(emu, receiver, calls)
    assert emu.webhooks.deliveries[-1].statuses == answers[:calls]


async def test_rolled_back_change_set_fires_nothing(dv, emu: Emulator, receiver: Receiver) -> None:
    from tests.emulators.dataverse.test_batch import batch, op

    await register(dv, receiver.url, message="Create", table="account")
    body, headers = batch([[op("POST", "accounts", {"name": "Ghost"}, "1"), op("POST", "accounts", {"x": 1}, "2")]])
    assert (await dv.post("$batch", content=body, headers=headers)).status_code == 400
    await emu.webhooks.drain()
    assert receiver.calls == []


async def test_disabled_step_and_unreachable_endpoint(dv, emu: Emulator, receiver: Receiver) -> None:
    step = await register(dv, receiver.url, message="Create")
    await dv.patch(f"sdkmessageprocessingsteps({step})", json={"statecode": 1})
    await dv.post("contacts", json={"lastname": "Quiet"})
    await emu.webhooks.drain()
    assert receiver.calls == []
    from emulators.common.server import free_port

    await register(dv, f"http://127.0.0.1:{free_port()}/nothing", message="Create")
    await dv.post("contacts", json={"lastname": "Nobody home"})
    await emu.webhooks.drain()
    assert emu.webhooks.deliveries[-1].statuses == ["ConnectError"]


async def test_admin_edit_as_a_user_fires_with_that_user(anon, dv, emu: Emulator, receiver: Receiver) -> None:
    await register(dv, receiver.url, message="Update")
    contact = next(emu.store.table("contacts").all())
    r = await anon.patch(f"/_admin/tables/contacts/{contact['contactid']}?as=dv-sales-ben", json={"jobtitle": "CTO"})
    assert r.status_code == 200
    await settle(emu, receiver, 1)
    assert receiver.calls[0]["body"]["UserId"] == user_id_for("dv-sales-ben")


def test_auth_value_parsing() -> None:
    assert auth_settings('<settings><setting name="a" value="1"/><setting name="b" value="2"/></settings>') == [
        ("a", "1"), ("b", "2")]
    with pytest.raises(ValueError, match="settings"):
        auth_settings("<settings><unclosed>")
    url, headers = prepare_call({"url": "https://x/h", "authtype": 5,
                                 "authvalue": '<settings><setting name="k" value="v"/></settings>'})
    assert (url, headers) == ("https://x/h", {"k": "v"})


async def test_delivery_faults_duplicate_and_drop_webhook_calls(anon, dv, emu: Emulator, receiver: Receiver) -> None:
    await register(dv, receiver.url, message="Create")
    r = await anon.patch("/_admin/config", json={"delivery": {"duplicate_ratio": 1.0, "duplicate_gap_ms": 0}})
    assert r.status_code == 200 and r.json()["delivery"]["duplicate_ratio"] == 1.0
    for name in ("Twice A", "Twice B"):
        await dv.post("contacts", json={"lastname": name})
    await settle(emu, receiver, 4)
    ids = [c["body"]["CorrelationId"] for c in receiver.calls]
    assert len(set(ids)) == 2 and sorted(ids) == sorted([*set(ids)] * 2)  # each change, twice
    await anon.patch("/_admin/config", json={"delivery": {"duplicate_ratio": 0.0, "drop_ratio": 1.0}})
    await dv.post("contacts", json={"lastname": "Never told"})
    await settle(emu, receiver, 4)
    counts = (await anon.get("/_admin/config")).json()["delivery_counts"]
    assert counts == {"deliveries": 3, "dropped": 1, "duplicated": 2, "delayed": 0}
    assert (await anon.patch("/_admin/config", json={"delivery": {"drop_ratio": 2}})).status_code == 400
