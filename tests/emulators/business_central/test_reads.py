"""Reads: routes, shapes, $filter/$select/$orderby/$top/$count, paging, auth and BC-shaped 401/404s."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.business_central.schema import ENTITY_SETS
from tests.emulators.business_central.conftest import API, TENANT

CORRELATION = re.compile(r"  CorrelationId:  [0-9a-f-]{36}\.$")


def assert_error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code
    assert CORRELATION.search(err["message"]), err["message"]
    return err["message"]


async def test_without_token_is_401(anon: httpx.AsyncClient) -> None:
    assert_error(await anon.get(f"{API}companies"), 401, "Authentication_InvalidCredentials")
    anon.headers["Authorization"] = "Bearer not-a-token"
    assert_error(await anon.get(f"{API}companies"), 401, "Authentication_InvalidCredentials")


async def test_wrong_secret_gets_no_token(anon: httpx.AsyncClient) -> None:
    resp = await anon.post(f"/{TENANT}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": "dualsync-integration", "client_secret": "wrong",
        "scope": "https://api.businesscentral.dynamics.com/.default"})
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


async def test_companies(bc: httpx.AsyncClient, company: str) -> None:
    resp = await bc.get(f"{API}companies")
    assert resp.status_code == 200
    body = resp.json()
    assert body["@odata.context"].endswith("/api/v2.0/$metadata#companies")
    names = {c["name"] for c in body["value"]}
    assert names == {"CRONUS USA, Inc.", "CRONUS International Ltd."}
    one = (await bc.get(f"{API}companies({company})")).json()
    assert one["name"] == "CRONUS USA, Inc." and one["id"] == company


@pytest.mark.parametrize("path", ["/v2.0/other-tenant/production/api/v2.0/companies",
                                  f"/v2.0/{TENANT}/sandbox/api/v2.0/companies"])
async def test_unknown_tenant_or_environment_is_404(bc: httpx.AsyncClient, path: str) -> None:
    assert_error(await bc.get(path), 404, "BadRequest_NotFound")


async def test_tenant_domain_and_short_form_are_accepted(bc: httpx.AsyncClient) -> None:
    assert (await bc.get("/v2.0/cronus.onmicrosoft.com/production/api/v2.0/companies")).status_code == 200
    assert (await bc.get("/v2.0/production/api/v2.0/companies")).status_code == 200


async def test_unknown_company_entity_set_and_id_are_404(bc: httpx.AsyncClient, base: str) -> None:
    assert_error(await bc.get(f"{API}companies(6f0c5a39-0000-4000-8000-000000000000)/customers"), 404,
                 "BadRequest_NotFound")
    assert_error(await bc.get(f"{base}salespeople"), 404, "BadRequest_NotFound")
    msg = assert_error(await bc.get(f"{base}customers(6f0c5a39-0000-4000-8000-000000000000)"), 404,
                       "BadRequest_NotFound")
    assert "6f0c5a39" in msg


@pytest.mark.parametrize("name", sorted(ENTITY_SETS))
async def test_every_entity_set_returns_its_documented_fields(bc: httpx.AsyncClient, base: str, name: str) -> None:
    resp = await bc.get(f"{base}{name}")
    assert resp.status_code == 200, resp.text
    rows = resp.json()["value"]
    assert rows, f"{name} is seeded"
    for row in rows:
        assert set(row) == {"@odata.etag", *ENTITY_SETS[name].fields}
        assert re.fullmatch(r"[0-9a-f-]{36}", row["id"])
        if "lastModifiedDateTime" in row:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["lastModifiedDateTime"])


async def test_single_record_has_context_and_etag_header(bc: httpx.AsyncClient, base: str) -> None:
    first = (await bc.get(f"{base}customers", params={"$top": "1"})).json()["value"][0]
    resp = await bc.get(f"{base}customers({first['id'].upper()})")  # GUID keys are case-insensitive
    assert resp.status_code == 200
    body = resp.json()
    assert body["@odata.context"].endswith("/customers/$entity")
    assert resp.headers["ETag"] == body["@odata.etag"] == first["@odata.etag"]
    assert body["@odata.etag"].startswith('W/"')


async def test_seeded_reference_data(bc: httpx.AsyncClient, base: str) -> None:
    codes = {c["code"] for c in (await bc.get(f"{base}currencies")).json()["value"]}
    assert {"USD", "EUR", "GBP", "DKK", "NOK", "SEK"} <= codes
    terms = {c["code"] for c in (await bc.get(f"{base}paymentTerms")).json()["value"]}
    assert {"14 DAYS", "30 DAYS", "CM", "COD"} <= terms
    ships = {c["code"] for c in (await bc.get(f"{base}shipmentMethods")).json()["value"]}
    assert {"EXW", "FOB", "CIF", "DDP"} <= ships
    uoms = {c["code"] for c in (await bc.get(f"{base}unitsOfMeasure")).json()["value"]}
    assert {"PCS", "BOX", "HOUR"} <= uoms
    people = (await bc.get(f"{base}salespeoplePurchasers")).json()["value"]
    assert all(p["code"] and p["displayName"] and "@" in p["email"] for p in people)
    customers = (await bc.get(f"{base}customers")).json()["value"]
    assert len(customers) == 20
    persons = (await bc.get(f"{base}contacts", params={"$filter": "type eq 'Person' and companyNumber ne ''"}))
    companies = {c["number"]: c["displayName"] for c in (await bc.get(
        f"{base}contacts", params={"$filter": "type eq 'Company'"})).json()["value"]}
    linked = persons.json()["value"]
    assert linked and all(companies[p["companyNumber"]] == p["companyName"] for p in linked)


async def test_filter_operators(bc: httpx.AsyncClient, base: str) -> None:
    everyone = (await bc.get(f"{base}customers")).json()["value"]

    async def numbers(expr: str) -> set[str]:
        resp = await bc.get(f"{base}customers", params={"$filter": expr})
        assert resp.status_code == 200, resp.text
        return {r["number"] for r in resp.json()["value"]}

    def expect(pred: object) -> set[str]:
        return {r["number"] for r in everyone if pred(r)}  # type: ignore[operator]

    probe = everyone[3]
    assert await numbers(f"number eq '{probe['number']}'") == {probe["number"]}
    assert await numbers(f"number ne '{probe['number']}'") == expect(lambda r: r["number"] != probe["number"])
    assert await numbers("creditLimit gt 10000") == expect(lambda r: r["creditLimit"] > 10000)
    assert await numbers("creditLimit ge 10000") == expect(lambda r: r["creditLimit"] >= 10000)
    assert await numbers("creditLimit lt 10000") == expect(lambda r: r["creditLimit"] < 10000)
    assert await numbers("creditLimit le 10000") == expect(lambda r: r["creditLimit"] <= 10000)
    word = probe["displayName"].split()[0]
    assert await numbers(f"contains(displayName, '{word.lower()}')") == expect(
        lambda r: word.lower() in r["displayName"].lower())
    assert await numbers(f"startswith(displayName, '{word}')") == expect(lambda r: r["displayName"].startswith(word))
    assert await numbers("currencyCode eq 'EUR' or currencyCode eq 'GBP'") == expect(
        lambda r: r["currencyCode"] in ("EUR", "GBP"))
    assert await numbers("not (currencyCode eq '') and creditLimit gt 0") == expect(
        lambda r: r["currencyCode"] != "" and r["creditLimit"] > 0)


async def test_last_modified_filter_finds_what_changed(bc: httpx.AsyncClient, base: str) -> None:
    rows = (await bc.get(f"{base}customers", params={"$orderby": "lastModifiedDateTime desc", "$top": "1"})).json()
    since = rows["value"][0]["lastModifiedDateTime"]
    target = (await bc.get(f"{base}customers", params={"$top": "1"})).json()["value"][0]
    patched = await bc.patch(f"{base}customers({target['id']})", json={"phoneNumber": "+1 555 0100"},
                             headers={"If-Match": target["@odata.etag"]})
    assert patched.status_code == 200
    found = (await bc.get(f"{base}customers", params={"$filter": f"lastModifiedDateTime gt {since}"})).json()
    assert [r["id"] for r in found["value"]] == [target["id"]]


@pytest.mark.parametrize("params", [{"$filter": "displayName eq"}, {"$filter": "nosuchfield eq 1"},
                                    {"$select": "number,nosuchfield"}, {"$orderby": "nosuchfield"},
                                    {"$top": "-1"}, {"$count": "maybe"}, {"$apply": "groupby((city))"},
                                    {"$expand": "customers"}])
async def test_bad_query_options_are_400(bc: httpx.AsyncClient, base: str, params: dict[str, str]) -> None:
    assert_error(await bc.get(f"{base}customers", params=params), 400, "BadRequest")


async def test_select_orderby_top_count(bc: httpx.AsyncClient, base: str) -> None:
    resp = await bc.get(f"{base}customers", params={"$select": "number,displayName", "$orderby": "displayName desc",
                                                      "$top": "5", "$count": "true"})
    body = resp.json()
    assert body["@odata.count"] == 20
    assert len(body["value"]) == 5
    assert all(set(r) == {"@odata.etag", "number", "displayName"} for r in body["value"])
    names = [r["displayName"] for r in body["value"]]
    assert names == sorted(names, key=str.casefold, reverse=True) or names == sorted(names, reverse=True)


async def test_paging_with_maxpagesize(bc: httpx.AsyncClient, base: str) -> None:
    everyone = {r["id"] for r in (await bc.get(f"{base}contacts")).json()["value"]}
    seen: list[str] = []
    url: str | None = f"{base}contacts"
    pages = 0
    while url:
        resp = await bc.get(url, headers={"Prefer": "odata.maxpagesize=7"})
        assert resp.status_code == 200
        assert resp.headers["Preference-Applied"] == "odata.maxpagesize=7"
        body = resp.json()
        assert len(body["value"]) <= 7
        seen += [r["id"] for r in body["value"]]
        url = body.get("@odata.nextLink")
        if url:
            assert url.startswith("http://bc.test/v2.0/") and "$skiptoken=" in url
        pages += 1
    assert sorted(seen) == sorted(everyone) and len(seen) == len(everyone)
    assert pages == -(-len(everyone) // 7)


async def test_nextlink_works_without_repeating_prefer(bc: httpx.AsyncClient, base: str) -> None:
    first = (await bc.get(f"{base}items", params={"$filter": "type eq 'Inventory'"},
                          headers={"Prefer": "odata.maxpagesize=5"})).json()
    second = (await bc.get(first["@odata.nextLink"])).json()
    assert len(second["value"]) == 5
    assert all(r["type"] == "Inventory" for r in second["value"])
    assert not {r["id"] for r in first["value"]} & {r["id"] for r in second["value"]}


async def test_default_page_holds_everything(bc: httpx.AsyncClient, base: str) -> None:
    body = (await bc.get(f"{base}contacts")).json()
    assert "@odata.nextLink" not in body and len(body["value"]) > 20


async def test_oversized_page_is_413(bc: httpx.AsyncClient, base: str) -> None:
    assert_error(await bc.get(f"{base}customers", headers={"Prefer": "odata.maxpagesize=20001"}), 413,
                 "Request_EntityTooLarge")
    ok = await bc.get(f"{base}customers", headers={"Prefer": "odata.maxpagesize=20000"})
    assert ok.status_code == 200 and ok.headers["Preference-Applied"] == "odata.maxpagesize=20000"
    assert_error(await bc.get(f"{base}customers", headers={"Prefer": "odata.maxpagesize=abc"}), 400, "BadRequest")


async def test_document_lines_by_document_and_expand(bc: httpx.AsyncClient, base: str) -> None:
    order = (await bc.get(f"{base}salesOrders", params={"$top": "1"})).json()["value"][0]
    lines = (await bc.get(f"{base}salesOrders({order['id']})/salesOrderLines")).json()["value"]
    assert lines and all(line["documentId"] == order["id"] for line in lines)
    all_lines = (await bc.get(f"{base}salesOrderLines")).json()["value"]
    assert len(all_lines) > len(lines)
    expanded = (await bc.get(f"{base}salesOrders({order['id']})", params={"$expand": "salesOrderLines"})).json()
    assert sorted(r["id"] for r in expanded["salesOrderLines"]) == sorted(r["id"] for r in lines)
    assert order["totalAmountExcludingTax"] == pytest.approx(sum(r["amountExcludingTax"] for r in lines))
    assert_error(await bc.get(f"{base}salesOrders({order['id']})/salesInvoiceLines"), 404, "BadRequest_NotFound")


async def test_date_and_guid_filters(bc: httpx.AsyncClient, base: str) -> None:
    orders = (await bc.get(f"{base}salesOrders")).json()["value"]
    late = {o["id"] for o in orders if o["orderDate"] >= "2025-06-01"}
    got = (await bc.get(f"{base}salesOrders", params={"$filter": "orderDate ge 2025-06-01"})).json()["value"]
    assert {o["id"] for o in got} == late
    cust = orders[0]["customerId"]
    got = (await bc.get(f"{base}salesOrders", params={"$filter": f"customerId eq {cust.upper()}"})).json()["value"]
    assert {o["id"] for o in got} == {o["id"] for o in orders if o["customerId"] == cust}


_APP = None


def _shared_app() -> tuple[object, str]:
    global _APP
    if _APP is None:
        from emulators.business_central import create_app
        from tests.emulators.business_central.conftest import make_settings
        _APP = create_app(make_settings(records=40))
    company = next(r["id"] for r in _APP.state.emulator.store.table("companies").all()
                   if r["name"] == "CRONUS USA, Inc.")
    return _APP, company


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), limit=st.integers(0, 1600),
       size=st.integers(1, 15))
def test_numeric_filters_and_paging_agree_with_python(op: str, limit: int, size: int) -> None:
    import asyncio
    import operator

    app, company = _shared_app()
    py = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
          "le": operator.le}[op]
    expected = {r["id"] for r in app.state.emulator.rows("items", company) if py(r["unitPrice"], limit)}

    async def fetch() -> list[str]:
        from tests.emulators.business_central.conftest import token
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bc.test") as h:
            h.headers["Authorization"] = f"Bearer {await token(h)}"
            url: str | None = f"{API}companies({company})/items?$filter=unitPrice {op} {limit}&$orderby=unitPrice"
            seen: list[str] = []
            while url:
                body = (await h.get(url, headers={"Prefer": f"odata.maxpagesize={size}"})).json()
                seen += [r["id"] for r in body["value"]]
                url = body.get("@odata.nextLink")
            return seen

    seen = asyncio.run(fetch())
    assert len(seen) == len(set(seen)) and set(seen) == expected


async def test_every_field_is_answered_for_a_row_seeded_without_some(bc: httpx.AsyncClient, base: str,
                                                                     company: str) -> None:
    """BC never omits a property (unset text is "", GUIDs all zeros): a row seeded through `/_admin` with only
    a few fields reads, and answers a PATCH, with every field of the entity — clients rely on it to skip a
    read-back after a write."""
    seeded = (await bc.post("/_admin/tables/customers", json={"displayName": "Seeded", "number": "S-1",
                                                                     "_companyId": company})).json()
    read = (await bc.get(f"{base}customers({seeded['id']})")).json()
    assert read["addressLine1"] == "" and read["paymentTermsId"] == "00000000-0000-0000-0000-000000000000"
    patched = (await bc.patch(f"{base}customers({seeded['id']})", json={"phoneNumber": "+1 555"},
                              headers={"If-Match": "*"})).json()
    assert {k for k in read if not k.startswith("@")} <= set(patched)
    assert patched["website"] == "" and patched["phoneNumber"] == "+1 555"
