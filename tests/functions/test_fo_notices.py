"""F&O data events: the endpoint's secret, the event body, and what becomes a queue message."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from shared.mapping import Direction, Side, System, load_pack
from shared.notices import Change, NoticeError, messages_for
from shared.notices.finance_operations import authenticated, parse_event
from shared.settings import WebhookSettings
from tests.sync.conftest import ROOT

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
KEYS = ("dataAreaId", "CustomerAccount")
WRITER = "410a2690-1b2c-4d3e-8f90-0123456789ab"


def event(message: str = "Update", **over: Any) -> dict[str, Any]:
    body = {"BusinessEventId": f"CustomerV3_{message}", "BusinessEventLegalEntity": "usmf",
            "ControlNumber": 5637144577, "EventId": "9C091AF1-0000-4000-8000-000000000001",
            "EventTime": "/Date(1697470966000)/", "EventTimeIso8601": "2023-10-16T15:42:46.1234567Z",
            "InitiatingUserAADObjectId": "{" + WRITER.upper() + "}", "MajorVersion": 0, "MinorVersion": 0,
            "MessageName": message, "PrimaryEntityName": "CustomerV3", "EntitySetName": "CustomersV3",
            "InputParameters": [{"key": "Target", "value": {"LogicalName": "CustomerV3", "Attributes": [
                {"key": "dataAreaId", "value": "usmf"}, {"key": "CustomerAccount", "value": "US-001"},
                {"key": "OrganizationName", "value": "Contoso"}]}}],
            "PreEntityImages": [], "PostEntityImages": []}
    body.update(over)
    return body


def parse(body: dict[str, Any] | bytes, companies: set[str] | None = None, entity: str = "CustomersV3") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_event(raw, entity=entity, public_name="CustomerV3", key_fields=KEYS, companies=companies,
                       seen_at=NOW)


@pytest.mark.parametrize(("message", "change"), [("Create", Change.CREATED), ("Update", Change.UPDATED),
                                                   ("Delete", Change.DELETED)])
def test_each_event_becomes_a_notice_keyed_like_the_connector(message: str, change: Change) -> None:
    notice = parse(event(message))
    assert notice.system is System.FINANCE_OPERATIONS and notice.change is change
    assert notice.record_id == "dataAreaId='usmf',CustomerAccount='US-001'"
    assert notice.actor == WRITER  # braces stripped, lower case: compared with our integration user's id
    assert notice.marker == "5637144577"


def test_the_same_event_twice_makes_the_same_message_and_a_later_one_another() -> None:
    pack = load_pack(ROOT / "templates" / "fo-dataverse.yaml")
    first = messages_for(pack, Side.ERP, parse(event()))
    again = messages_for(pack, Side.ERP, parse(event()))
    later = messages_for(pack, Side.ERP, parse(event(ControlNumber=5637144581)))
    # Organisations and persons are two maps of CustomersV3: each gets a message, the record's party type decides.
    assert [m.mapping for m in first] == ["customers", "person-customers"]
    assert first[0].direction is Direction.TO_CRM
    assert first[0].message_id == again[0].message_id  # Service Bus drops the re-delivery
    assert later[0].message_id != first[0].message_id
    assert first[0].session_id == later[0].session_id  # one record, one session: in order


@pytest.mark.parametrize(("change", "why"), [
    ({"MessageName": "Assign"}, "MessageName"),
    ({"EntitySetName": "VendorsV2", "PrimaryEntityName": "VendorV2"}, "not CustomersV3"),
    ({"ControlNumber": "12"}, "ControlNumber"),
    ({"ControlNumber": True}, "ControlNumber"),
    ({"InputParameters": []}, "Target"),
    ({"InputParameters": [{"key": "Target", "value": {"Attributes": [{"key": "dataAreaId", "value": "usmf"}]}}]},
     "key property"),
    ({"BusinessEventLegalEntity": "demf"}, "dataAreaId is not"),
])
def test_malformed_events_are_refused_with_the_reason(change: dict[str, Any], why: str) -> None:
    with pytest.raises(NoticeError, match=why):
        parse(event(**change))


def test_a_legal_entity_outside_the_synced_ones_is_refused() -> None:
    assert parse(event(), companies={"USMF", "DEMF"}).record_id
    with pytest.raises(NoticeError, match="legal entity 'usmf' is not synced"):
        parse(event(), companies={"demf"})


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=4), max_leaves=30))
def test_any_json_is_a_notice_or_a_clear_refusal(doc: Any) -> None:
    with contextlib.suppress(NoticeError):  # anything else (TypeError, KeyError…) fails the test
        parse(json.dumps(doc).encode())


def test_not_json_is_refused() -> None:
    with pytest.raises(NoticeError, match="not JSON"):
        parse(b"\xff{")


def test_the_secret_is_taken_from_code_or_the_header_only() -> None:
    hooks = WebhookSettings(fo_key=SecretStr("k3y"), fo_header="x-api-key")
    assert authenticated({}, {"code": "k3y"}, hooks, "k3y")
    assert authenticated({"x-api-key": "k3y"}, {}, hooks, "k3y")
    assert not authenticated({"x-api-key": "k3"}, {"code": "wrong"}, hooks, "k3y")
    assert not authenticated({"authorization": "k3y"}, {"key": "k3y"}, hooks, "k3y")


def test_only_the_mappings_whose_filter_the_whole_record_passes_get_a_message() -> None:
    from shared.notices.routing import taking_mappings

    pack = load_pack(ROOT / "templates" / "fo-dataverse.yaml")
    names = lambda values: [m.name for m in taking_mappings(pack, Side.ERP, "CustomersV3", values)]  # noqa: E731
    assert names({"dataAreaId": "usmf", "PartyType": "Organization"}) == ["customers"]
    assert names({"dataAreaId": "usmf", "PartyType": "Person"}) == ["person-customers"]
    # A record that does not say (the filter's field is missing) is never judged "outside": both get one.
    assert names({"dataAreaId": "usmf"}) == ["customers", "person-customers"]
    p2c = load_pack(ROOT / "templates" / "prospect-to-cash.yaml")
    assert [m.name for m in taking_mappings(p2c, Side.ERP, "SalesOrderHeadersV2", {"dataAreaId": "demf"})] == []
