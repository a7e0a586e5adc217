"""Webhook handlers called as the Functions host calls them (`func.HttpRequest`), with an injected runtime
whose queue sender records what would be sent."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.webhooks import make_handler
from shared.app_runtime import AppRuntime, install
from shared.mapping import Side, System, load_pack
from shared.notices import WebhookSource
from shared.queue import SyncMessage
from shared.settings import Settings, load_settings
from tests.functions.test_notices import COMPANY, REC, STATE, USER, bc_body, bc_notice, dv_context
from tests.sync import conftest as fixtures
from tests.sync.conftest import ROOT, World

pack, bc_app, dv_app, state, engine_options, world = (fixtures.pack, fixtures.bc_app, fixtures.dv_app,
                                                      fixtures.state, fixtures.engine_options, fixtures.world)
KEY = "dv-k3y"
INTEGRATION = "0f0f0f0f-1111-4222-8333-444455556666"
BC = make_handler(WebhookSource(System.BUSINESS_CENTRAL, Side.ERP, "customers"))
DV = make_handler(WebhookSource(System.DATAVERSE, Side.CRM, "accounts"))


class RecordingSender:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[SyncMessage] = []
        self.scheduled: list[tuple[SyncMessage, dt.datetime]] = []
        self.fail = fail

    async def send(self, messages: Sequence[SyncMessage]) -> None:
        if self.fail:
            raise ConnectionError("queue down")
        self.sent.extend(messages)

    async def schedule(self, message: SyncMessage, at: dt.datetime) -> None:
        self.scheduled.append((message, at))


def hook_settings(**webhooks: Any) -> Settings:
    return load_settings(storage={"connection_string": "UseDevelopmentStorage=true"},
                         erp={"tenant_id": "t", "client_id": "c", "company_id": COMPANY},
                         crm={"tenant_id": "t", "client_id": "c", "base_url": "http://dv.test",
                              "integration_user_ids": INTEGRATION},
                         webhooks={"bc_client_state": STATE, "dataverse_key": KEY, **webhooks})


@pytest.fixture
def sender() -> Iterator[RecordingSender]:
    recorder = RecordingSender()
    previous = install(AppRuntime(settings=hook_settings(), pack=load_pack(ROOT / "templates" / "bc-sales.yaml"),
                                  sender=recorder))
    yield recorder
    install(previous)


def request(path: str, body: bytes = b"", *, params: dict[str, str] | None = None,
            headers: dict[str, str] | None = None, method: str = "POST") -> func.HttpRequest:
    return func.HttpRequest(method=method, url=f"http://localhost/api/{path}", params=params or {},
                            headers=headers or {}, body=body)


async def test_bc_handshake_answers_the_token_without_touching_the_runtime() -> None:
    previous = install(AppRuntime())  # no settings in the environment: anything beyond the handshake would fail
    try:
        response = await BC(request("webhooks/business_central/customers", params={"validationToken": "tok-123"}))
    finally:
        install(previous)
    assert response.status_code == 200 and response.get_body() == b"tok-123"
    assert response.mimetype == "text/plain"


async def test_bc_notices_become_one_message_per_record(sender: RecordingSender) -> None:
    other = "230b2d7e-aaaa-4bbb-8ccc-0123456789ab"
    body = bc_body(bc_notice(), bc_notice(), bc_notice(resource=f"api/v2.0/companies({COMPANY})/customers({other})",
                                                       changeType="created"))
    response = await BC(request("webhooks/business_central/customers", body))
    assert response.status_code == 202
    assert sorted((m.source_id, m.change) for m in sender.sent) == [(REC, "updated"), (other, "created")]
    assert {m.mapping for m in sender.sent} == {"customers"} and {m.direction.value for m in sender.sent} == {"to_crm"}
    assert len({m.session_id for m in sender.sent}) == 2


@pytest.mark.parametrize(("body", "status"), [
    (bc_body(bc_notice(clientState="guess")), 401),
    (bc_body(bc_notice(changeType="renamed")), 400),
    (b"not json", 400),
    (b'{"value": []}', 400),
])
async def test_bc_bad_requests_queue_nothing(sender: RecordingSender, body: bytes, status: int,
                                             caplog: pytest.LogCaptureFixture) -> None:
    response = await BC(request("webhooks/business_central/customers", body))
    assert response.status_code == status and sender.sent == []
    assert STATE not in caplog.text and "guess" not in caplog.text


async def test_dataverse_accepts_the_key_only_where_its_auth_type_sends_it(sender: RecordingSender) -> None:
    body = json.dumps(dv_context()).encode()
    places = {"header": {"headers": {"X-Api-Key": KEY}}, "code": {"params": {"code": KEY}},
              "query": {"params": {"key": KEY}}}
    for auth in places:
        install(AppRuntime(settings=hook_settings(dataverse_auth=auth),
                           pack=load_pack(ROOT / "templates" / "bc-sales.yaml"), sender=sender))
        for where, parts in places.items():
            response = await DV(request("webhooks/dataverse/accounts", body, **parts))  # type: ignore[arg-type]
            assert response.status_code == (202 if where == auth else 401), (auth, where)
    assert len(sender.sent) == 3 and {m.direction.value for m in sender.sent} == {"to_erp"}
    assert len({m.message_id for m in sender.sent}) == 1  # the same operation thrice: Service Bus keeps one


async def test_dataverse_refuses_a_missing_or_wrong_secret(sender: RecordingSender,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps(dv_context()).encode()
    for where in ({}, {"headers": {"x-api-key": KEY + "x"}}, {"params": {"code": "nope"}}):
        response = await DV(request("webhooks/dataverse/accounts", body, **where))  # type: ignore[arg-type]
        assert response.status_code == 401
    assert sender.sent == [] and KEY not in caplog.text


async def test_dataverse_drops_our_own_changes_early(sender: RecordingSender) -> None:
    headers = {"x-api-key": KEY}
    for who in ({"UserId": INTEGRATION}, {"InitiatingUserId": INTEGRATION.upper()}):
        response = await DV(request("webhooks/dataverse/accounts", json.dumps(dv_context(**who)).encode(),
                                    headers=headers))
        assert response.status_code == 202
    assert sender.sent == []
    response = await DV(request("webhooks/dataverse/accounts", json.dumps(dv_context(UserId=USER)).encode(),
                                headers=headers))
    assert response.status_code == 202 and [m.source_id for m in sender.sent] == [REC]


async def test_dataverse_oversized_context_still_queues_the_record(sender: RecordingSender) -> None:
    stripped = dv_context(InputParameters=[], PreEntityImages=[], PostEntityImages=[])
    response = await DV(request("webhooks/dataverse/accounts", json.dumps(stripped).encode(),
                                headers={"x-api-key": KEY, "x-ms-dynamics-msg-size-exceeded": "true"}))
    assert response.status_code == 202 and [m.source_id for m in sender.sent] == [REC]


async def test_unconfigured_secret_or_unreachable_queue_is_503() -> None:
    recorder = RecordingSender()
    previous = install(AppRuntime(settings=hook_settings(dataverse_key=None, bc_client_state=None), sender=recorder))
    try:
        assert (await DV(request("webhooks/dataverse/accounts", b"{}"))).status_code == 503
        assert (await BC(request("webhooks/business_central/customers", bc_body(bc_notice())))).status_code == 503
        install(AppRuntime(settings=hook_settings(), sender=RecordingSender(fail=True)))
        response = await DV(request("webhooks/dataverse/accounts", json.dumps(dv_context()).encode(),
                                    headers={"x-api-key": KEY}))
        assert response.status_code == 503  # Dataverse retries 503 once, BC on its schedule
    finally:
        install(previous)
    assert recorder.sent == []


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=16),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=4), max_leaves=10)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=120), _json.map(lambda v: json.dumps(v).encode()),
                      st.fixed_dictionaries({"value": st.lists(st.dictionaries(
                          st.sampled_from(["clientState", "resource", "changeType", "lastModifiedDateTime"]),
                          _json), max_size=3)}).map(lambda v: json.dumps(v).encode())))
def test_fuzzed_bodies_are_4xx_and_queue_nothing(sender: RecordingSender, body: bytes) -> None:
    async def both() -> tuple[int, int]:
        bc = await BC(request("webhooks/business_central/customers", body))
        dv = await DV(request("webhooks/dataverse/accounts", body, headers={"x-api-key": KEY}))
        return bc.status_code, dv.status_code

    statuses = asyncio.run(both())
    assert all(400 <= s < 500 for s in statuses), statuses
    assert sender.sent == []


async def test_bc_collection_notice_is_paged_through_the_connector(world: World) -> None:
    await asyncio.sleep(0.01)
    before = dt.datetime.now(dt.UTC)  # after the seed data, before the people's edits
    await asyncio.sleep(0.01)
    created = [await fixtures.bc_customer(world, number=f"C95{i:03d}") for i in range(3)]
    recorder = RecordingSender()
    previous = install(AppRuntime(settings=hook_settings(), engine=world.engine, sender=recorder))
    stamp = before.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    company = world.erp.company_id  # type: ignore[attr-defined]
    resource = f"/api/v2.0/companies({company})/customers?$filter=lastModifiedDateTime%20gt%20{stamp}"
    try:
        response = await BC(request("webhooks/business_central/customers",
                                    bc_body(bc_notice(changeType="collection", resource=resource))))
    finally:
        install(previous)
    assert response.status_code == 202
    assert {m.source_id for m in recorder.sent} == {c["id"].lower() for c in created}
    assert {m.change for m in recorder.sent} == {"updated"}
