"""Reads: $select/$filter/$orderby/$top/$count, server-driven paging, Preference-Applied, single records."""

from __future__ import annotations

import httpx

from emulators.dataverse.core import Emulator
from tests.emulators.dataverse.conftest import API, BASE


async def _all_pages(dv: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[list[dict], int]:
    rows, pages = [], 0
    while url:
        r = await dv.get(url, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["value"]
        pages += 1
        url = body.get("@odata.nextLink")
        if url:
            assert url.startswith(f"{BASE}{API}/") and "$skiptoken=" in url
    return rows, pages


async def test_select_limits_columns_but_keeps_key_and_etag(dv: httpx.AsyncClient) -> None:
    r = await dv.get("accounts?$select=name,_transactioncurrencyid_value")
    body = r.json()
    assert body["@odata.context"] == f"{BASE}{API}/$metadata#accounts(name,_transactioncurrencyid_value)"
    assert set(body["value"][0]) == {"@odata.etag", "name", "_transactioncurrencyid_value", "accountid"}
    assert (await dv.get("accounts?$select=nosuch")).status_code == 400


async def test_filter_orderby_top_count(dv: httpx.AsyncClient, emu: Emulator) -> None:
    rows = list(emu.store.table("accounts").all())
    expected = sorted((a["name"] for a in rows if a["customertypecode"] == 3), reverse=True)
    r = await dv.get("accounts?$filter=customertypecode eq 3&$orderby=name desc&$count=true&$select=name")
    body = r.json()
    assert [a["name"] for a in body["value"]] == expected and body["@odata.count"] == len(expected)
    r = await dv.get("accounts?$orderby=name desc&$top=3&$select=name")
    assert [a["name"] for a in r.json()["value"]] == sorted((a["name"] for a in rows), reverse=True)[:3]
    assert "@odata.nextLink" not in r.json()


async def test_filter_on_lookup_and_datetime(dv: httpx.AsyncClient, emu: Emulator) -> None:
    account = next(emu.store.table("accounts").all())
    r = await dv.get(f"contacts?$filter=_parentcustomerid_value eq {account['accountid']}")
    assert [c["_parentcustomerid_value"] for c in r.json()["value"]] == [account["accountid"]]
    r = await dv.get("accounts?$filter=modifiedon gt 2000-01-01T00:00:00Z&$count=true")
    assert r.json()["@odata.count"] == len(emu.store.table("accounts"))
    r = await dv.get("accounts?$filter=modifiedon gt 2999-01-01T00:00:00Z")
    assert r.json()["value"] == []


async def test_bad_filter_and_unknown_field_are_400(dv: httpx.AsyncClient) -> None:
    for query in ("$filter=name eq", "$filter=nosuch eq 1", "$orderby=nosuch", "$top=x", "$skip=5"):
        r = await dv.get(f"accounts?{query}")
        assert r.status_code == 400, query
        assert r.json()["error"]["code"].startswith("0x8006")


async def test_paging_returns_every_row_once(dv: httpx.AsyncClient, emu: Emulator) -> None:
    headers = {"Prefer": "odata.maxpagesize=7"}
    first = await dv.get("contacts?$select=lastname", headers=headers)
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=7"
    rows, pages = await _all_pages(dv, "contacts?$select=lastname", headers)
    total = len(emu.store.table("contacts"))
    assert sorted(r["contactid"] for r in rows) == sorted(c["contactid"] for c in emu.store.table("contacts").all())
    assert pages == -(-total // 7)


async def test_paging_with_filter_and_top(dv: httpx.AsyncClient) -> None:
    rows, pages = await _all_pages(dv, "accounts?$filter=statecode eq 0&$top=10&$orderby=name",
                                   {"Prefer": "odata.maxpagesize=4"})
    assert len(rows) == 10 and pages == 3
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)


async def test_page_size_is_capped_at_5000_and_default(dv: httpx.AsyncClient) -> None:
    r = await dv.get("accounts", headers={"Prefer": "odata.maxpagesize=9000"})
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=5000"
    assert "Preference-Applied" not in (await dv.get("accounts")).headers
    assert (await dv.get("accounts", headers={"Prefer": "odata.maxpagesize=abc"})).status_code == 400


async def test_tampered_skiptoken_is_400(dv: httpx.AsyncClient) -> None:
    assert (await dv.get("accounts?$skiptoken=%%%garbage")).status_code == 400


async def test_single_record_by_id_and_alternate_key(dv: httpx.AsyncClient, emu: Emulator) -> None:
    account = next(emu.store.table("accounts").all())
    by_id = await dv.get(f"accounts({account['accountid'].upper()})?$select=name")
    by_key = await dv.get(f"accounts(accountnumber='{account['accountnumber'].lower()}')?$select=name")
    assert by_id.status_code == by_key.status_code == 200
    assert by_id.json() == by_key.json()
    assert by_id.json()["@odata.context"] == f"{BASE}{API}/$metadata#accounts(name)/$entity"
    etag = by_id.headers["ETag"]
    assert (await dv.get(f"accounts({account['accountid']})", headers={"If-None-Match": etag})).status_code == 304


async def test_seeded_reference_data(dv: httpx.AsyncClient) -> None:
    codes = {c["isocurrencycode"] for c in (await dv.get("transactioncurrencies")).json()["value"]}
    assert {"USD", "EUR", "GBP", "DKK", "NOK", "SEK"} <= codes
    uoms = {u["name"] for u in (await dv.get("uoms")).json()["value"]}
    assert {"Primary Unit", "PCS", "BOX", "HOUR"} <= uoms
    users = (await dv.get("systemusers?$filter=isdisabled eq true")).json()["value"]
    assert len(users) == 1
    for entity_set in ("products", "pricelevels", "productpricelevels", "opportunities", "salesorders",
                       "salesorderdetails", "invoices", "invoicedetails", "uomschedules"):
        assert (await dv.get(entity_set)).json()["value"], entity_set
