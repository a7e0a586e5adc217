"""The pure parts: BC and Dataverse notice parsers, message identities, routing of notices to mappings."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.mapping import Direction, Side, System, load_pack
from shared.notices import Change, ChangeNotice, NoticeError, Unauthenticated, messages_for
from shared.notices.business_central import handshake_token, parse_notifications
from shared.notices.dataverse import authenticated, parse_context, size_exceeded
from shared.queue import PoisonMessage, RetrySchedule, SyncMessage
from shared.settings import WebhookSettings
from tests.sync.conftest import ROOT

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
COMPANY = "b18a3e27-2f6b-4c5d-8e9f-0a1b2c3d4e5f"
REC = "130b2d7e-aaaa-4bbb-8ccc-0123456789ab"
USER = "75c2dd85-1111-4222-8333-444455556666"
STATE = "s3cret-state"


def bc_body(*notices: dict[str, Any]) -> bytes:
    return json.dumps({"value": list(notices)}).encode()


def bc_notice(**over: Any) -> dict[str, Any]:
    return {"subscriptionId": "sub-1", "clientState": STATE, "expirationDateTime": "2026-01-08T12:00:00Z",
            "resource": f"api/v2.0/companies({COMPANY})/customers({REC})", "changeType": "updated",
            "lastModifiedDateTime": "2026-01-05T11:59:58.123Z", **over}


def parse_bc(body: bytes, company: str | None = COMPANY) -> list[ChangeNotice]:
    return parse_notifications(body, entity="customers", client_state=STATE, company_id=company, seen_at=NOW)


def test_bc_notices_of_each_kind() -> None:
    notices = parse_bc(bc_body(bc_notice(), bc_notice(changeType="created", resource=f"/api/v2.0/companies("
                                                      f"{COMPANY})/customers({REC.upper()})"),
                               bc_notice(changeType="deleted")))
    assert [n.change for n in notices] == [Change.UPDATED, Change.CREATED, Change.DELETED]
    assert {n.record_id for n in notices} == {REC}  # GUIDs normalised to lower case
    assert notices[0].marker == "2026-01-05T11:59:58.123Z" and notices[0].actor is None


def test_bc_collection_notice_carries_its_decoded_filter() -> None:
    resource = f"/api/v2.0/companies({COMPANY})/customers?$filter=lastModifiedDateTime%20gt%202026-01-05T11:00:00Z"
    [notice] = parse_bc(bc_body(bc_notice(changeType="collection", resource=resource)))
    assert notice.change is Change.COLLECTION and notice.record_id is None
    assert notice.collection_filter == "lastModifiedDateTime gt 2026-01-05T11:00:00Z"


@pytest.mark.parametrize("bad", [
    bc_notice(changeType="modified"),
    bc_notice(resource=f"api/v2.0/companies({COMPANY})/vendors({REC})"),        # another entity set
    bc_notice(resource=f"api/v2.0/companies({REC})/customers({REC})"),          # another company
    bc_notice(resource=f"api/v2.0/companies({COMPANY})/customers"),             # no record for an update
    bc_notice(changeType="collection", resource=f"api/v2.0/companies({COMPANY})/customers({REC})"),
    bc_notice(resource=12),
])
def test_bc_malformed_notices_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(NoticeError):
        parse_bc(bc_body(bc_notice(), bad))


@pytest.mark.parametrize("state", [None, "", "s3cret-statX", STATE + " ", 42])
def test_bc_wrong_client_state_fails_the_whole_batch(state: Any) -> None:
    with pytest.raises(Unauthenticated):
        parse_bc(bc_body(bc_notice(), bc_notice(clientState=state)))


def test_bc_handshake_token() -> None:
    assert handshake_token({"validationToken": "abc"}) == "abc"
    assert handshake_token({}) is None
    for bad in ("", "x" * 2000, "a\nb"):
        with pytest.raises(NoticeError):
            handshake_token({"validationToken": bad})


def dv_context(**over: Any) -> dict[str, Any]:
    return {"MessageName": "Update", "PrimaryEntityName": "account", "PrimaryEntityId": REC, "UserId": USER,
            "InitiatingUserId": USER, "OperationId": "op-1", "CorrelationId": "corr-1",
            "InputParameters": [{"key": "Target", "value": {"LogicalName": "account", "Id": REC, "Attributes": [
                {"key": "name", "value": "Contoso"}, {"key": "modifiedon", "value": "/Date(1767614400000)/"}]}}],
            **over}


def parse_dv(body: dict[str, Any] | bytes, exceeded: bool = False) -> ChangeNotice:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_context(raw, entity="accounts", logical_name="account", exceeded=exceeded, seen_at=NOW)


def test_dataverse_context_is_parsed() -> None:
    notice = parse_dv(dv_context())
    assert (notice.system, notice.entity, notice.change, notice.record_id) == (System.DATAVERSE, "accounts",
                                                                               Change.UPDATED, REC)
    assert notice.actors == (USER, USER) and notice.marker == "op-1"
    assert parse_dv(dv_context(MessageName="Create")).change is Change.CREATED
    assert parse_dv(dv_context(MessageName="Delete", InputParameters=[])).change is Change.DELETED


def test_size_exceeded_context_has_no_input_parameters_but_still_names_the_record() -> None:
    stripped = dv_context(InputParameters=[], PreEntityImages=[], PostEntityImages=[], ParentContext=None)
    notice = parse_dv(stripped, exceeded=True)
    assert notice.record_id == REC and notice.size_exceeded
    assert size_exceeded({"x-ms-dynamics-msg-size-exceeded": "True"})
    assert not size_exceeded({})


@pytest.mark.parametrize("over", [
    {"PrimaryEntityName": "contact"},
    {"PrimaryEntityId": "not-a-guid"},
    {"PrimaryEntityId": None},
    {"UserId": "someone"},
    {"MessageName": ""},
    {"InputParameters": "Target"},
    {"InputParameters": [{"key": "Target", "value": {"Id": USER}}]},  # Target is another record
])
def test_dataverse_malformed_contexts_are_rejected(over: dict[str, Any]) -> None:
    with pytest.raises(NoticeError):
        parse_dv(dv_context(**over))


@pytest.mark.parametrize("auth", ["header", "code", "query"])
def test_dataverse_secret_only_where_the_auth_type_puts_it(auth: str) -> None:
    hooks = WebhookSettings(dataverse_key="k3y", dataverse_auth=auth, dataverse_header="x-api-key",
                            dataverse_param="key")
    places = {"header": ({"x-api-key": "k3y"}, {}),   # HttpHeader
              "code": ({}, {"code": "k3y"}),          # WebhookKey
              "query": ({}, {"key": "k3y"})}          # HttpQueryString
    for where, (headers, params) in places.items():
        assert authenticated(headers, params, hooks, "k3y") is (where == auth), where
    assert not authenticated({"x-api-key": "k3"}, {"code": "k3yy", "key": "k3"}, hooks, "k3y")
    assert not authenticated({"authorization": "k3y"}, {}, hooks, "k3y")


def test_dataverse_auth_type_is_one_of_three() -> None:
    with pytest.raises(ValueError, match="dataverse_auth"):
        WebhookSettings(dataverse_auth="anywhere")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12).map(lambda v: json.dumps(v).encode())))
def test_fuzzed_bodies_never_escape_the_parsers(body: bytes) -> None:
    """Anything that is not a well-formed notice is a NoticeError or Unauthenticated, never another error."""
    for parse in (lambda: parse_bc(body), lambda: parse_dv(body)):
        with contextlib.suppress(NoticeError, Unauthenticated):
            parse()


def test_message_identity() -> None:
    msg = SyncMessage("customers", Direction.TO_CRM, REC.upper(), "updated", marker="m1")
    assert msg.session_id == f"customers/erp/{REC}"
    same = SyncMessage("customers", Direction.TO_CRM, REC, "updated", marker="m1")
    assert msg.message_id == same.message_id  # the same notice twice: a duplicate
    assert SyncMessage("customers", Direction.TO_CRM, REC, "updated", marker="m2").message_id != msg.message_id
    retry = msg.next_attempt()
    assert retry.session_id == msg.session_id and retry.message_id != msg.message_id and retry.attempt == 2
    assert SyncMessage.from_json(retry.to_json()) == retry
    long = SyncMessage("m" * 90, Direction.TO_ERP, "x" * 90)
    assert len(long.session_id) <= 128 and len(long.message_id) <= 128


@pytest.mark.parametrize("body", [b"", b"[]", b"{}", b'{"v": 1}', b'{"v": 1, "mapping": "m", "direction": "up",'
                                  b' "source_id": "1"}', b'{"v": 1, "mapping": "m", "direction": "to_crm", '
                                  b'"source_id": "1", "attempt": "2"}', b"\xff\xfe"])
def test_unreadable_messages_are_poison(body: bytes) -> None:
    with pytest.raises(PoisonMessage):
        SyncMessage.from_json(body)


def test_retry_delays_grow_and_are_capped() -> None:
    schedule = RetrySchedule(max_attempts=5, base_delay=10, max_delay=60, random=lambda: 1.0)
    assert [schedule.delay(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]
    low = RetrySchedule(base_delay=10, random=lambda: 0.0)
    assert low.delay(1).total_seconds() == 5  # half is jitter, never zero


def test_notices_feed_every_candidate_mapping() -> None:
    p2c = load_pack(ROOT / "templates" / "prospect-to-cash.yaml")
    notice = ChangeNotice(System.DATAVERSE, "contacts", Change.UPDATED, REC, NOW, marker="op")
    names = {m.mapping for m in messages_for(p2c, Side.CRM, notice)}
    assert names == {"contacts-to-customers", "contacts-to-contact-persons"}  # the route picks at sync time
    bc_sales = load_pack(ROOT / "templates" / "bc-sales.yaml")
    products = ChangeNotice(System.DATAVERSE, "products", Change.UPDATED, REC, NOW)
    assert {m.mapping for m in messages_for(bc_sales, Side.CRM, products)} == {"items"}  # resources disabled
    assert messages_for(bc_sales, Side.CRM, ChangeNotice(System.DATAVERSE, "accounts", Change.COLLECTION, None,
                                                         NOW)) == []
