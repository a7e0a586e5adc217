"""Enum values on the wire as real BC sends them: the `$metadata` member names (`_x0020_`, `Non_x002D_Inventory`,
`In_x0020_Progress`) in every read, accepted in writes (captions too: unconfirmed), compared by `$filter`, which
refuses anything but a member name as BC's odata.net does."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from emulators.business_central.enums import enum_fields
from emulators.business_central.schema import ENTITY_SETS
from tests.emulators.business_central.conftest import API
from tests.emulators.business_central.test_reads import assert_error

BLOCKED = ["_x0020_", "Ship", "Invoice", "All"]  # NAV.customerBlocked, in ordinal order


async def _all(bc: httpx.AsyncClient, url: str, **params: str) -> list[dict[str, Any]]:
    resp = await bc.get(url, params=params)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["value"])


async def _block(bc: httpx.AsyncClient, base: str) -> list[dict[str, Any]]:
    """Every customer, after giving three of them each a different blocked state (so every member occurs)."""
    customers = await _all(bc, f"{base}customers")
    for row, state in zip(customers[:3], ["Ship", "Invoice", "All"], strict=True):
        resp = await bc.patch(f"{base}customers({row['id']})", json={"blocked": state}, headers={"If-Match": "*"})
        assert resp.status_code == 200, resp.text
    return await _all(bc, f"{base}customers")


async def test_reads_send_member_names(bc: httpx.AsyncClient, base: str, company: str) -> None:
    customers = await _block(bc, base)
    assert {c["blocked"] for c in customers} == set(BLOCKED)
    one = (await bc.get(f"{base}customers({customers[-1]['id']})")).json()
    assert one["blocked"] == "_x0020_" and one["type"] in ("Company", "Person")
    item = (await bc.post(f"{base}items", json={"displayName": "Gift wrap", "type": "Non_x002D_Inventory"})).json()
    assert item["type"] == "Non_x002D_Inventory"
    # $expand of a company's entity sets, the root entity sets with company=, and a $batch GET: the same names.
    expanded = (await bc.get(f"{API}companies({company})", params={"$expand": "items"})).json()["items"]
    assert {i["type"] for i in expanded} >= {"Non_x002D_Inventory", "Inventory"}
    at_root = await _all(bc, f"{API}items", company="CRONUS USA, Inc.", **{"$filter": f"id eq {item['id']}"})
    assert at_root[0]["type"] == "Non_x002D_Inventory"
    batch = await bc.post(f"{API}$batch", json={"requests": [
        {"method": "GET", "id": "1", "url": f"companies({company})/items({item['id']})"}]})
    assert batch.json()["responses"][0]["body"]["type"] == "Non_x002D_Inventory"
    statuses = {o["status"] for o in await _all(bc, f"{base}opportunities")}
    assert "In_x0020_Progress" in statuses and not {s for s in statuses if " " in s}


async def test_no_caption_with_a_special_character_reaches_the_wire(bc: httpx.AsyncClient, base: str) -> None:
    """Every enum value of every entity set is a member name: letters, digits, `_` (the rest `_xHHHH_`)."""
    for name, fields in ((n, enum_fields(n)) for n in ENTITY_SETS):
        for row in await _all(bc, f"{base}{name}") if fields else []:
            for field, enum in fields.items():
                assert row[field] in enum.names, (name, field, row[field])


async def test_admin_keeps_the_stored_caption(bc: httpx.AsyncClient, base: str) -> None:
    """`/_admin` is not BC's API: it shows and takes the emulator's stored form, the caption."""
    row = (await bc.post(f"{base}customers", json={"displayName": "Blank", "blocked": "_x0020_"})).json()
    stored = (await bc.get(f"/_admin/tables/customers/{row['id']}")).json()
    assert stored["blocked"] == " "
    resp = await bc.patch(f"/_admin/tables/customers/{row['id']}", json={"blocked": "All"})
    assert resp.status_code == 200
    assert (await bc.get(f"{base}customers({row['id']})")).json()["blocked"] == "All"


@pytest.mark.parametrize(("entity", "body", "field", "sent"), [
    ("customers", {"displayName": "Enc", "blocked": "_x0020_"}, "blocked", "_x0020_"),
    ("customers", {"displayName": "Enc", "blocked": "Ship"}, "blocked", "Ship"),
    ("vendors", {"displayName": "Enc", "blocked": "_x0020_"}, "blocked", "_x0020_"),
    ("items", {"displayName": "Enc", "type": "Non_x002D_Inventory"}, "type", "Non_x002D_Inventory"),
    ("opportunities", {"description": "Enc", "status": "Not_x0020_Started"}, "status", "Not_x0020_Started"),
    # Captions are accepted too (unconfirmed: BC evaluates the text as AL does an option; tolerant choice).
    ("customers", {"displayName": "Cap", "blocked": " "}, "blocked", "_x0020_"),
    ("items", {"displayName": "Cap", "type": "Non-Inventory"}, "type", "Non_x002D_Inventory"),
    ("opportunities", {"description": "Cap", "status": "In Progress"}, "status", "In_x0020_Progress"),
])
async def test_writes_take_member_names(bc: httpx.AsyncClient, base: str, entity: str, body: dict[str, Any],
                                        field: str, sent: str) -> None:
    created = await bc.post(f"{base}{entity}", json=body)
    assert created.status_code == 201, created.text
    assert created.json()[field] == sent
    url = f"{base}{entity}({created.json()['id']})"
    assert (await bc.get(url)).json()[field] == sent
    patched = await bc.patch(url, json={field: body[field]}, headers={"If-Match": "*"})
    assert patched.status_code == 200 and patched.json()[field] == sent


@pytest.mark.parametrize(("entity", "body", "listed"), [
    # As the documented $batch example: the existing options are listed by caption.
    ("items", {"displayName": "X", "type": "Invalid Type"},
     "'Invalid Type' is not an option. The existing options are: Inventory,Service,Non-Inventory"),
    ("customers", {"displayName": "X", "blocked": ""}, "The existing options are:  ,Ship,Invoice,All"),
    ("opportunities", {"description": "X", "status": "Closed"}, "Not Started,In Progress,Won,Lost"),
])
async def test_unknown_values_are_refused_with_bcs_option_error(bc: httpx.AsyncClient, base: str, entity: str,
                                                               body: dict[str, Any], listed: str) -> None:
    before = len(await _all(bc, f"{base}{entity}"))
    assert listed in assert_error(await bc.post(f"{base}{entity}", json=body), 400, "Unknown")
    assert len(await _all(bc, f"{base}{entity}")) == before


async def test_a_non_string_enum_value_names_the_enum_type(bc: httpx.AsyncClient, base: str) -> None:
    msg = assert_error(await bc.post(f"{base}customers", json={"blocked": 0}), 400, "BadRequest")
    assert "Microsoft.NAV.customerBlocked" in msg
    msg = assert_error(await bc.post(f"{base}customers", json={"blocked": None}), 400, "BadRequest")
    assert "'Microsoft.NAV.customerBlocked[Nullable=False]'" in msg


async def test_filter_compares_member_names(bc: httpx.AsyncClient, base: str) -> None:
    customers = await _block(bc, base)

    async def ids(flt: str) -> set[str]:
        return {c["id"] for c in await _all(bc, f"{base}customers", **{"$filter": flt})}

    def where(pred: Any) -> set[str]:
        return {c["id"] for c in customers if pred(c["blocked"])}

    assert await ids("blocked eq '_x0020_'") == where(lambda b: b == "_x0020_") != set()
    assert await ids("'_x0020_' eq blocked") == where(lambda b: b == "_x0020_")
    assert await ids("blocked ne '_x0020_'") == where(lambda b: b != "_x0020_") != set()
    assert await ids("blocked eq Microsoft.NAV.customerBlocked'_x0020_'") == where(lambda b: b == "_x0020_")
    assert await ids("blocked in ('Ship', 'All')") == where(lambda b: b in ("Ship", "All"))
    assert await ids("blocked eq 'All' or displayName eq 'nobody'") == where(lambda b: b == "All")
    assert await ids("not (blocked eq '_x0020_')") == where(lambda b: b != "_x0020_")
    # Order comparisons follow the members' positions (unconfirmed), not the text: " " < Ship < Invoice < All.
    assert await ids("blocked gt 'Ship'") == where(lambda b: b in ("Invoice", "All"))
    assert await ids("'Ship' lt blocked") == where(lambda b: b in ("Invoice", "All"))
    assert await ids("blocked le 'Ship'") == where(lambda b: b in ("_x0020_", "Ship"))
    assert await ids("blocked gt 'All'") == set()
    count = await bc.get(f"{base}customers/$count", params={"$filter": "blocked ne '_x0020_'"})
    assert count.text == str(len(where(lambda b: b != "_x0020_")))
    items = await _all(bc, f"{base}items")
    assert {i["id"] for i in await _all(bc, f"{base}items", **{"$filter": "type eq 'Service'"})} == \
        {i["id"] for i in items if i["type"] == "Service"} != set()


@pytest.mark.parametrize(("flt", "words"), [
    ("blocked eq ' '", "The string ' ' is not a valid enumeration type constant."),
    ("blocked eq ''", "The string '' is not a valid enumeration type constant."),
    ("blocked eq 'Blocked'", "The string 'Blocked' is not a valid enumeration type constant."),
    ("blocked in ('All', ' ')", "The string ' ' is not a valid enumeration type constant."),
    ("blocked gt ' '", "The string ' ' is not a valid enumeration type constant."),
    ("blocked eq 1", "The string '1' is not a valid enumeration type constant."),
    ("blocked eq Microsoft.NAV.itemType'Service'", "incompatible types"),
    ("displayName eq Microsoft.NAV.customerBlocked'All'", "incompatible types"),
    ("contains(blocked, 'x')", "No function signature for the function with name 'contains'"),
    ("tolower(blocked) eq 'all'", "No function signature for the function with name 'tolower'"),
])
async def test_filter_refuses_what_is_not_a_member_name(bc: httpx.AsyncClient, base: str, flt: str,
                                                        words: str) -> None:
    assert words in assert_error(await bc.get(f"{base}customers", params={"$filter": flt}), 400, "BadRequest")
    assert words in assert_error(await bc.get(f"{base}customers/$count", params={"$filter": flt}), 400,
                                 "BadRequest")


async def test_filter_on_lines_and_documents(bc: httpx.AsyncClient, base: str, company: str) -> None:
    orders = await _all(bc, f"{base}salesOrders")
    open_ = await _all(bc, f"{base}salesOrders", **{"$filter": "status eq 'Open'"})
    assert {o["id"] for o in open_} == {o["id"] for o in orders if o["status"] == "Open"}
    lines = await _all(bc, f"{base}salesOrderLines", **{"$filter": "lineType ne 'Fixed_x0020_Asset'"})
    assert len(lines) == len(await _all(bc, f"{base}salesOrderLines"))
    out = (await bc.post(f"{API}$batch", json={"requests": [
        {"method": "GET", "id": "1", "url": f"companies({company})/salesOrderLines?$filter=lineType eq 'Fixed Asset'"},
    ]})).json()["responses"][0]
    assert out["status"] == 400 and "is not a valid enumeration type constant" in out["body"]["error"]["message"]


async def test_a_failed_enum_write_in_a_snapshot_batch_rolls_back(bc: httpx.AsyncClient, company: str,
                                                                  app: Starlette) -> None:
    rel = f"companies({company})/customers"
    before = len(app.state.emulator.store.table("customers"))
    out = (await bc.post(f"{API}$batch", headers={"Isolation": "snapshot"}, json={"requests": [
        {"method": "POST", "id": "1", "url": rel, "body": {"displayName": "A", "blocked": "All"}},
        {"method": "POST", "id": "2", "url": rel, "body": {"displayName": "B", "blocked": "Never"}},
    ]})).json()["responses"]
    assert out[0]["status"] == 201 and out[0]["body"]["blocked"] == "All"
    assert out[1]["status"] == 400 and out[1]["body"]["error"]["code"] == "Unknown"
    assert len(app.state.emulator.store.table("customers")) == before
