"""Reads: companies and cross-company, keys (composite, percent-encoded, shorthand), query options, paging,
$count, $expand, refusals of unsupported options."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from emulators.finance_operations.core import Emulator
from tests.emulators.finance_operations.conftest import DATA, inner


async def test_default_company_only_without_cross_company(fo: httpx.AsyncClient) -> None:
    r = await fo.get("CustomersV3")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json; odata.metadata=minimal")
    rows = r.json()["value"]
    assert rows and {c["dataAreaId"] for c in rows} == {"usmf"}
    assert all(c["@odata.etag"].startswith('W/"') for c in rows)
    assert "ModifiedDateTime" not in rows[0]
    r = await fo.get("CustomersV3", params={"cross-company": "true"})
    assert {c["dataAreaId"] for c in r.json()["value"]} == {"usmf", "demf", "gbsi"}
    # without cross-company a filter on another company finds nothing (unconfirmed); with it, that company's rows
    r = await fo.get("CustomersV3", params={"$filter": "dataAreaId eq 'demf'"})
    assert r.json()["value"] == []
    r = await fo.get("CustomersV3", params={"$filter": "dataAreaId eq 'DEMF'", "cross-company": "true"})
    assert r.json()["value"] and {c["dataAreaId"] for c in r.json()["value"]} == {"demf"}


async def test_shared_account_exists_in_two_companies(fo: httpx.AsyncClient) -> None:
    r = await fo.get("CustomersV3", params={"$filter": "CustomerAccount eq 'C-1001'", "cross-company": "true"})
    assert sorted(c["dataAreaId"] for c in r.json()["value"]) == ["demf", "usmf"]


async def test_read_by_composite_key_any_company_and_order(fo: httpx.AsyncClient) -> None:
    r = await fo.get("CustomersV3(dataAreaId='demf',CustomerAccount='C-1001')")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dataAreaId"] == "demf" and body["@odata.context"].endswith("#CustomersV3/$entity")
    assert r.headers["ETag"] == body["@odata.etag"]
    r2 = await fo.get("CustomersV3(CustomerAccount='c-1001',dataAreaId='DEMF')")
    assert r2.status_code == 200 and r2.json()["CustomerAccount"] == "C-1001"
    r = await fo.get("CustomersV3(dataAreaId='usmf')")
    assert r.status_code == 400
    r = await fo.get("CustomersV3(dataAreaId='usmf',CustomerAccount='NOPE')")
    assert r.status_code == 404 and inner(r)


async def test_single_key_and_shorthand(fo: httpx.AsyncClient) -> None:
    for path in ("Currencies(CurrencyCode='USD')", "Currencies('USD')", "LegalEntities('USMF')"):
        r = await fo.get(path)
        assert r.status_code == 200, path


async def test_keys_with_awkward_characters(fo: httpx.AsyncClient) -> None:
    for account in ("A/B 1", "O'Neil & #2", "50%"):
        r = await fo.post("CustomersV3", json={"CustomerAccount": account, "CustomerGroupId": "10",
                                               "OrganizationName": "Awkward"})
        assert r.status_code == 201, r.text
        literal = account.replace("'", "''")
        path = "CustomersV3(" + quote(f"dataAreaId='usmf',CustomerAccount='{literal}'", safe="") + ")"
        got = await fo.get(path)
        assert got.status_code == 200 and got.json()["CustomerAccount"] == account
        assert (await fo.get(r.headers["Location"])).status_code == 200
        assert (await fo.patch(path, json={"NameAlias": "x"})).status_code == 204
        assert (await fo.delete(path)).status_code == 204


async def test_enum_literal_in_filter_and_key(fo: httpx.AsyncClient) -> None:
    await fo.patch("CustomersV3(dataAreaId='usmf',CustomerAccount='US-000001')", json={"CreditLimitIsMandatory": "Yes"})
    r = await fo.get("CustomersV3", params={
        "$filter": "CreditLimitIsMandatory eq Microsoft.Dynamics.DataEntities.NoYes'Yes'"})
    assert r.status_code == 200, r.text
    assert [c["CustomerAccount"] for c in r.json()["value"]] == ["US-000001"]
    ns = "Microsoft.Dynamics.DataEntities"
    r = await fo.get("CustomersV3", params={"$filter": f"PartyType eq {ns}.DirPartyBaseType'Person'"})
    assert r.json()["value"] and {c["PartyType"] for c in r.json()["value"]} == {"Person"}
    r = await fo.get("CustomersV3", params={"$filter": f"CreditLimitIsMandatory eq {ns}.NoYes'Maybe'"})
    assert r.status_code == 400
    # a string literal that merely looks like an enum literal is left alone
    r = await fo.get("CustomersV3", params={"$filter": "NameAlias eq 'Microsoft.Dynamics.DataEntities.NoYes''Yes'''"})
    assert r.status_code == 200 and r.json()["value"] == []


async def test_select_orderby_top_skip_count(fo: httpx.AsyncClient) -> None:
    r = await fo.get("CustomersV3", params={"$select": "CustomerAccount,OrganizationName",
                                            "$orderby": "CustomerAccount desc", "$top": "3", "$skip": "2",
                                            "$count": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    accounts = [c["CustomerAccount"] for c in body["value"]]
    assert len(accounts) == 3 and accounts == sorted(accounts, reverse=True)
    assert set(body["value"][0]) == {"@odata.etag", "CustomerAccount", "OrganizationName"}
    assert body["@odata.count"] == 31  # 30 seeded + C-1001
    assert body["@odata.context"].endswith("#CustomersV3(CustomerAccount,OrganizationName)")
    everything = [c["CustomerAccount"] for c in (await fo.get("CustomersV3", params={
        "$orderby": "CustomerAccount desc"})).json()["value"]]
    assert accounts == everything[2:5]
    r = await fo.get("CustomersV3/$count", params={"$filter": "CustomerGroupId eq '10'"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert int(r.text) == sum(1 for c in (await fo.get("CustomersV3")).json()["value"] if c["CustomerGroupId"] == "10")
    r = await fo.get("CustomersV3", params={"$filter": "startswith(OrganizationName,'a') or contains(NameAlias,'o')"})
    assert r.status_code == 200


async def test_paging_with_next_links(fo: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url: str | None = "CustomersV3?cross-company=true&$select=CustomerAccount,dataAreaId"
    pages = 0
    while url:
        r = await fo.get(url, headers={"Prefer": "odata.maxpagesize=10"})
        assert r.status_code == 200, r.text
        assert r.headers["Preference-Applied"] == "odata.maxpagesize=10"
        body = r.json()
        seen += [f"{c['dataAreaId']}/{c['CustomerAccount']}" for c in body["value"]]
        url = body.get("@odata.nextLink")
        if url:
            assert url.startswith(DATA + "/CustomersV3?") and "cross-company=true" in url and "$skiptoken=" in url
        pages += 1
    total = int((await fo.get("CustomersV3/$count?cross-company=true")).text)
    assert pages >= 3 and len(seen) == len(set(seen)) == total


async def test_expand_one_level(fo: httpx.AsyncClient) -> None:
    r = await fo.get("SalesOrderHeadersV2", params={"$expand": "SalesOrderLines($select=ItemNumber,LineAmount)",
                                                    "$top": "2"})
    assert r.status_code == 200, r.text
    order = r.json()["value"][0]
    assert order["SalesOrderLines"] and set(order["SalesOrderLines"][0]) == {"@odata.etag", "ItemNumber", "LineAmount"}
    one = await fo.get(f"SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='{order['SalesOrderNumber']}')",
                       params={"$expand": "SalesOrderLines"})
    assert len(one.json()["SalesOrderLines"]) == len(order["SalesOrderLines"])
    for bad in ("Nope", "SalesOrderLines/Foo", "SalesOrderLines($expand=Foo)"):
        r = await fo.get("SalesOrderHeadersV2", params={"$expand": bad})
        assert r.status_code == 400, bad
    assert (await fo.get("CustomersV3", params={"$expand": "SalesOrderLines"})).status_code == 400


async def test_unsupported_options_are_refused(fo: httpx.AsyncClient) -> None:
    for option in ("$apply", "$search", "$compute", "$foo"):
        r = await fo.get("CustomersV3", params={option: "x"})
        assert r.status_code == 400, option
        assert r.json()["error"]["message"] == "An error has occurred."
    for params in ({"$select": "Nope"}, {"$orderby": "Nope"}, {"$top": "-1"}, {"$filter": "Nope eq 1"}):
        assert (await fo.get("CustomersV3", params=params)).status_code == 400, params


async def test_etag_changes_on_every_write(fo: httpx.AsyncClient, emu: Emulator) -> None:
    url = "CustomersV3(dataAreaId='usmf',CustomerAccount='US-000002')"
    first = (await fo.get(url)).json()["@odata.etag"]
    await fo.patch(url, json={"NameAlias": "changed"})
    assert (await fo.get(url)).json()["@odata.etag"] != first


async def test_a_plain_string_compared_with_an_enum_is_refused(fo: httpx.AsyncClient) -> None:
    # F&O wants the enum literal (`Namespace.DirPartyBaseType'Person'`); the OData library refuses a string.
    r = await fo.get("CustomersV3", params={"$filter": "dataAreaId eq 'usmf' and PartyType ne 'Person'"})
    assert r.status_code == 400
    assert r.json()["error"]["innererror"]["message"] == (
        "A binary operator with incompatible types was detected. Found operand types "
        "'Microsoft.Dynamics.DataEntities.DirPartyBaseType' and 'Edm.String' for operator kind 'NotEqual'.")
