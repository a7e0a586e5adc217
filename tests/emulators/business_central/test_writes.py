"""Writes: POST/PATCH/DELETE, If-Match, validation, references, number series, the recorded modifier."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from emulators.business_central.schema import EMPTY_GUID
from tests.emulators.business_central.conftest import token
from tests.emulators.business_central.test_reads import assert_error

MS_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def _first(bc: httpx.AsyncClient, url: str, **params: str) -> dict[str, Any]:
    return (await bc.get(url, params={"$top": "1", **params})).json()["value"][0]


async def _count(bc: httpx.AsyncClient, url: str) -> int:
    return (await bc.get(url, params={"$count": "true", "$top": "0"})).json()["@odata.count"]


async def test_post_creates_with_number_series_and_defaults(bc: httpx.AsyncClient, base: str) -> None:
    resp = await bc.post(f"{base}customers", json={"displayName": "Adatum Test Ltd", "city": "Oslo"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert resp.headers["ETag"] == body["@odata.etag"]
    assert resp.headers["Location"].endswith(f"/customers({body['id']})")
    assert body["@odata.context"].endswith("/customers/$entity")
    assert body["number"] == "C00210"  # 20 seeded customers: C00010 … C00200, step 10
    assert body["blocked"] == "_x0020_" and body["type"] == "Company" and body["currencyId"] == EMPTY_GUID
    assert MS_STAMP.fullmatch(body["lastModifiedDateTime"])
    second = (await bc.post(f"{base}customers", json={"displayName": "Another"})).json()
    assert second["number"] == "C00220" and second["id"] != body["id"]
    again = (await bc.get(resp.headers["Location"])).json()
    assert again["displayName"] == "Adatum Test Ltd"


async def test_post_with_taken_number_is_rejected(bc: httpx.AsyncClient, base: str) -> None:
    before = await _count(bc, f"{base}customers")
    resp = await bc.post(f"{base}customers", json={"number": "C00010", "displayName": "Dup"})
    assert_error(resp, 400, "Internal_EntityWithSameKeyExists")
    assert await _count(bc, f"{base}customers") == before
    own = await bc.post(f"{base}customers", json={"number": "WEB-1", "displayName": "Own number"})
    assert own.status_code == 201 and own.json()["number"] == "WEB-1"


async def test_patch_needs_if_match_and_changes_the_etag(bc: httpx.AsyncClient, base: str) -> None:
    row = await _first(bc, f"{base}customers")
    url = f"{base}customers({row['id']})"
    assert_error(await bc.patch(url, json={"displayName": "No etag"}), 400, "BadRequest_InvalidToken")
    resp = await bc.patch(url, json={"displayName": "Renamed"}, headers={"If-Match": row["@odata.etag"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["displayName"] == "Renamed" and body["@odata.etag"] != row["@odata.etag"]
    assert resp.headers["ETag"] == body["@odata.etag"]
    assert body["lastModifiedDateTime"] >= row["lastModifiedDateTime"]
    msg = assert_error(await bc.patch(url, json={"displayName": "Stale"}, headers={"If-Match": row["@odata.etag"]}),
                       409, "Request_EntityChanged")
    assert msg.startswith("Another user has already changed the record.")
    star = await bc.patch(url, json={"displayName": "Star"}, headers={"If-Match": "*"})
    assert star.status_code == 200 and star.json()["displayName"] == "Star"
    assert (await bc.get(url)).json()["displayName"] == "Star"


async def test_delete_needs_if_match(bc: httpx.AsyncClient, base: str) -> None:
    row = (await bc.post(f"{base}vendors", json={"displayName": "Short-lived"})).json()
    url = f"{base}vendors({row['id']})"
    assert_error(await bc.delete(url), 400, "BadRequest_InvalidToken")
    assert_error(await bc.delete(url, headers={"If-Match": 'W/"JzIwOzk5OTk7MDA7Jw=="'}), 409,
                 "Request_EntityChanged")
    resp = await bc.delete(url, headers={"If-Match": row["@odata.etag"]})
    assert resp.status_code == 204 and resp.content == b""
    assert_error(await bc.get(url), 404, "BadRequest_NotFound")
    assert_error(await bc.delete(url, headers={"If-Match": "*"}), 404, "BadRequest_NotFound")
    assert_error(await bc.patch(url, json={}, headers={"If-Match": "*"}), 404, "BadRequest_NotFound")


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"displayName": "X", "favouriteColour": "red"}, "BadRequest",
     "The property 'favouriteColour' does not exist on type 'Microsoft.NAV.customer'"),
    ({"creditLimit": "lots"}, "BadRequest", "Edm.Decimal"),
    ({"creditLimit": True}, "BadRequest", "Edm.Decimal"),
    ({"displayName": 42}, "BadRequest", "Edm.String"),
    ({"displayName": None}, "BadRequest", "does not allow null"),
    ({"taxLiable": "yes"}, "BadRequest", "Edm.Boolean"),
    ({"paymentTermsId": "not-a-guid"}, "BadRequest", "Edm.Guid"),
    ({"blocked": "Sometimes"}, "Unknown", "The existing options are:  ,Ship,Invoice,All"),
    ({"type": "Alien"}, "Unknown", "The existing options are: Company,Person"),
    ({"city": "X" * 31}, "Application_DialogException", "less than or equal to 30 characters"),
    ({"currencyCode": "XYZ"}, "Internal_RecordNotFound", "The Currency does not exist"),
    ({"paymentTermsId": "6f0c5a39-0000-4000-8000-000000000000"}, "Internal_RecordNotFound", "Payment Terms"),
    ({"shipmentMethodId": "6f0c5a39-0000-4000-8000-000000000000"}, "Internal_RecordNotFound", "Shipment Method"),
    ({"salespersonCode": "NOBODY"}, "Internal_RecordNotFound", "Salesperson/Purchaser"),
    ([{"displayName": "a list"}], "BadRequest", "JSON object"),
])
async def test_invalid_bodies_are_rejected_and_nothing_is_written(bc: httpx.AsyncClient, base: str, body: Any,
                                                                  code: str, words: str) -> None:
    before = await _count(bc, f"{base}customers")
    msg = assert_error(await bc.post(f"{base}customers", json=body), 400, code)
    assert words in msg
    assert await _count(bc, f"{base}customers") == before
    row = await _first(bc, f"{base}customers")
    patched = await bc.patch(f"{base}customers({row['id']})", json=body, headers={"If-Match": "*"})
    assert_error(patched, 400, code)
    assert (await bc.get(f"{base}customers({row['id']})")).json()["@odata.etag"] == row["@odata.etag"]


async def test_invalid_json_is_400(bc: httpx.AsyncClient, base: str) -> None:
    resp = await bc.post(f"{base}customers", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "BadRequest")


async def test_read_only_fields_are_ignored(bc: httpx.AsyncClient, base: str) -> None:
    resp = await bc.post(f"{base}customers", json={"displayName": "RO", "balanceDue": 999, "id": EMPTY_GUID,
                                                     "lastModifiedDateTime": "2001-01-01T00:00:00Z",
                                                     "@odata.etag": "W/\"x\""})
    body = resp.json()
    assert resp.status_code == 201 and body["balanceDue"] == 0 and body["id"] != EMPTY_GUID
    assert not body["lastModifiedDateTime"].startswith("2001")


async def test_currency_code_and_id_stay_consistent(bc: httpx.AsyncClient, base: str) -> None:
    currencies = {c["code"]: c["id"] for c in (await bc.get(f"{base}currencies")).json()["value"]}
    by_code = (await bc.post(f"{base}customers", json={"displayName": "A", "currencyCode": "gbp"})).json()
    assert by_code["currencyCode"] == "GBP" and by_code["currencyId"] == currencies["GBP"]
    by_id = (await bc.post(f"{base}customers", json={"displayName": "B", "currencyId": currencies["DKK"]})).json()
    assert by_id["currencyCode"] == "DKK"
    cleared = await bc.patch(f"{base}customers({by_id['id']})", json={"currencyCode": ""}, headers={"If-Match": "*"})
    assert cleared.json()["currencyId"] == EMPTY_GUID
    mismatch = await bc.post(f"{base}customers", json={"currencyCode": "EUR", "currencyId": currencies["SEK"]})
    assert_error(mismatch, 400, "Application_DialogException")


async def test_codes_must_be_unique_and_present(bc: httpx.AsyncClient, base: str) -> None:
    assert_error(await bc.post(f"{base}currencies", json={"code": "EUR"}), 400, "Internal_EntityWithSameKeyExists")
    assert_error(await bc.post(f"{base}currencies", json={"displayName": "No code"}), 400,
                 "Application_DialogException")
    made = await bc.post(f"{base}currencies", json={"code": "PLN", "displayName": "Polish zloty"})
    assert made.status_code == 201


async def test_contact_person_links_to_company(bc: httpx.AsyncClient, base: str) -> None:
    company = await _first(bc, f"{base}contacts", **{"$filter": "type eq 'Company'"})
    person = await bc.post(f"{base}contacts", json={"type": "Person", "displayName": "Nils Hansen",
                                                    "companyNumber": company["number"], "jobTitle": "Buyer"})
    assert person.status_code == 201
    assert person.json()["companyName"] == company["displayName"]
    assert person.json()["number"].startswith("CT")
    assert_error(await bc.post(f"{base}contacts", json={"type": "Person", "companyNumber": "NOPE"}), 400,
                 "Internal_RecordNotFound")


async def test_sales_order_with_lines(bc: httpx.AsyncClient, base: str) -> None:
    cust = await _first(bc, f"{base}customers")
    item = await _first(bc, f"{base}items", **{"$filter": "type eq 'Inventory'"})
    order = await bc.post(f"{base}salesOrders", json={"customerNumber": cust["number"], "orderDate": "2025-03-01"})
    assert order.status_code == 201, order.text
    doc = order.json()
    assert doc["customerId"] == cust["id"] and doc["customerName"] == cust["displayName"]
    assert doc["number"].startswith("S-ORD") and doc["currencyCode"] == cust["currencyCode"]
    line = await bc.post(f"{base}salesOrders({doc['id']})/salesOrderLines",
                         json={"itemId": item["id"], "quantity": 3})
    assert line.status_code == 201, line.text
    ln = line.json()
    assert ln["documentId"] == doc["id"] and ln["sequence"] == 10000
    assert ln["description"] == item["displayName"] and ln["unitOfMeasureCode"] == item["baseUnitOfMeasureCode"]
    assert ln["amountExcludingTax"] == pytest.approx(3 * item["unitPrice"])
    second = await bc.post(f"{base}salesOrderLines", json={"documentId": doc["id"], "itemId": item["id"],
                                                           "quantity": 1, "unitPrice": 10})
    assert second.json()["sequence"] == 20000
    header = (await bc.get(f"{base}salesOrders({doc['id']})")).json()
    assert header["totalAmountExcludingTax"] == pytest.approx(3 * item["unitPrice"] + 10)
    assert_error(await bc.post(f"{base}salesOrderLines", json={"itemId": item["id"]}), 400,
                 "Internal_RecordNotFound")
    assert_error(await bc.post(f"{base}salesOrders", json={"customerNumber": "NOPE"}), 400,
                 "Internal_RecordNotFound")
    deleted = await bc.delete(f"{base}salesOrders({doc['id']})", headers={"If-Match": header["@odata.etag"]})
    assert deleted.status_code == 204
    assert_error(await bc.get(f"{base}salesOrderLines({ln['id']})"), 404, "BadRequest_NotFound")


@pytest.mark.parametrize(("method", "path"), [("POST", "customers({id})"), ("PATCH", "customers"),
                                              ("DELETE", "customers"), ("PUT", "customers({id})")])
async def test_unsupported_methods_are_405(bc: httpx.AsyncClient, base: str, method: str, path: str) -> None:
    row = await _first(bc, f"{base}customers")
    resp = await bc.request(method, base + path.format(id=row["id"]), json={}, headers={"If-Match": "*"})
    assert_error(resp, 405, "BadRequest_MethodNotAllowed")


async def test_companies_are_read_only(bc: httpx.AsyncClient, company: str, base: str) -> None:
    assert_error(await bc.post(base.rsplit("companies", 1)[0] + "companies", json={"name": "X"}), 405,
                 "BadRequest_MethodNotAllowed")


async def test_the_caller_is_recorded_as_modifier(app: Starlette, bc: httpx.AsyncClient, base: str) -> None:
    store = app.state.emulator.store
    made = (await bc.post(f"{base}customers", json={"displayName": "Who made me"})).json()
    assert store.changes[-1].actor.user_id == "5b1c3a2e-0d4f-4e61-9a7b-2c8d9e0f1a01"  # dualsync-integration
    bc.headers["Authorization"] = f"Bearer {await token(bc, 'bc-user-annie')}"
    await bc.patch(f"{base}customers({made['id']})", json={"city": "Aarhus"}, headers={"If-Match": "*"})
    change = store.changes[-1]
    assert change.actor.name == "ANNIE" and change.kind == "updated" and change.changed_fields == {"city"}
    admin = (await bc.get(f"/_admin/tables/customers/{made['id']}")).json()
    assert admin["_modifiedBy"] == "5b1c3a2e-0d4f-4e61-9a7b-2c8d9e0f1a02"
