"""Writes: 201 + Location, number sequences per company, F&O validation errors, ETags, keys, read-only
fields and entities, admin writes as a named user."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from emulators.finance_operations.core import Emulator
from tests.emulators.finance_operations.conftest import DATA, inner

WRITE_FAILED = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"


async def test_create_uses_number_sequences_per_company(fo: httpx.AsyncClient) -> None:
    r = await fo.post("CustomersV3", json={"CustomerGroupId": "10", "OrganizationName": "New Org"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["dataAreaId"] == "usmf" and body["CustomerAccount"] == "US-000031"
    assert body["@odata.etag"].startswith('W/"') and body["PartyNumber"]
    assert r.headers["Location"] == f"{DATA}/CustomersV3(dataAreaId='usmf',CustomerAccount='US-000031')"
    assert body["LanguageId"] == "en-us" and body["CreditLimitIsMandatory"] == "No" and body["AddressCity"] == ""
    r = await fo.post("CustomersV3", json={"dataAreaId": "DEMF", "CustomerAccount": "", "CustomerGroupId": "20",
                                           "OrganizationName": "Neue GmbH"})
    assert r.status_code == 201 and r.json()["CustomerAccount"] == "DE-000008"
    r = await fo.post("VendorsV2", json={"dataAreaId": "gbsi", "VendorGroupId": "10",
                                         "VendorOrganizationName": "Supplier"})
    assert r.status_code == 201 and r.json()["VendorAccountNumber"].startswith("GBV-")


async def test_person_customer_gets_a_name(fo: httpx.AsyncClient) -> None:
    r = await fo.post("CustomersV3", json={"CustomerGroupId": "30", "PartyType": "Person", "PersonFirstName": "Ada",
                                           "PersonLastName": "Lovelace"})
    assert r.status_code == 201 and r.json()["OrganizationName"] == "Ada Lovelace"
    r = await fo.post("CustomersV3", json={"CustomerGroupId": "30", "PartyType": "Person", "PersonFirstName": "Ada"})
    assert r.status_code == 400 and "'Last name' must be filled in" in inner(r)


async def test_validation_errors_have_fo_shape(fo: httpx.AsyncClient) -> None:
    r = await fo.post("CustomersV3", json={"OrganizationName": "No Group"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["message"] == "An error has occurred." and err["innererror"]["type"] == WRITE_FAILED
    assert err["innererror"]["message"] == ("Write failed for table row of type 'CustCustomerV3Entity'. Infolog: "
                                            "Warning: Field 'Customer group' must be filled in.; Error: Validation "
                                            "failed.")
    r = await fo.post("CustomersV3", json={"OrganizationName": "Bad Group", "CustomerGroupId": "99"})
    assert r.status_code == 400
    assert ("Error: The value '99' in field 'Customer group' is not found in the related table 'Customer groups'."
            in inner(r))
    r = await fo.post("CustomersV3", json={"OrganizationName": "x", "CustomerGroupId": "10", "dataAreaId": "zzzz"})
    assert r.status_code == 400 and r.json()["error"]["innererror"]["type"] == WRITE_FAILED
    r = await fo.post("ContactPersonsV2", json={"LastName": "X", "ContactForParty": "NOPE"})
    assert r.status_code == 400 and "related table 'Customers'" in inner(r)
    r = await fo.post("CustomersV3", json={"OrganizationName": "x", "CustomerGroupId": "10", "Foo": 1})
    assert r.status_code == 400
    assert inner(r).startswith("The property 'Foo' does not exist on type 'Microsoft.Dynamics.DataEntities.CustomerV3'")
    r = await fo.post("CustomersV3", json={"OrganizationName": "x", "CustomerGroupId": "10", "PartyNumber": "1"})
    assert r.status_code == 400
    r = await fo.post("CustomersV3", json={"OrganizationName": "x", "CustomerGroupId": "10",
                                           "CreditLimitIsMandatory": "Maybe"})
    assert r.status_code == 400 and "NoYes" in inner(r)
    r = await fo.post("CustomersV3", json={"OrganizationName": "x", "CustomerGroupId": "10", "CreditLimit": "lots"})
    assert r.status_code == 400


async def test_duplicate_key_is_refused(fo: httpx.AsyncClient) -> None:
    r = await fo.post("CustomersV3", json={"CustomerAccount": "C-1001", "CustomerGroupId": "10",
                                           "OrganizationName": "Again"})
    assert r.status_code == 400 and "The record already exists." in inner(r)
    # the same account in a company that does not have it yet is fine
    r = await fo.post("CustomersV3", json={"dataAreaId": "gbsi", "CustomerAccount": "C-1001", "CustomerGroupId": "10",
                                           "OrganizationName": "UK twin"})
    assert r.status_code == 201


async def test_patch_delete_etags_and_keys(fo: httpx.AsyncClient) -> None:
    url = "CustomersV3(dataAreaId='usmf',CustomerAccount='US-000003')"
    etag = (await fo.get(url)).json()["@odata.etag"]
    r = await fo.patch(url, json={"NameAlias": "A"})  # no If-Match: accepted
    assert r.status_code == 204 and r.content == b""
    r = await fo.patch(url, json={"NameAlias": "B"}, headers={"If-Match": etag})
    assert r.status_code == 412 and r.json()["error"]["innererror"]["message"]
    current = (await fo.get(url)).json()["@odata.etag"]
    assert (await fo.patch(url, json={"NameAlias": "C"}, headers={"If-Match": current})).status_code == 204
    assert (await fo.patch(url, json={"NameAlias": "D"}, headers={"If-Match": "*"})).status_code == 204
    r = await fo.patch(url, json={"NameAlias": "E"}, headers={"Prefer": "return=representation"})
    assert r.status_code == 200 and r.json()["NameAlias"] == "E"
    assert (await fo.patch(url, json={"CustomerAccount": "OTHER"})).status_code == 400
    assert (await fo.patch(url, json={"CustomerAccount": "us-000003", "dataAreaId": "USMF"})).status_code == 204
    assert (await fo.patch(url, json={"CustomerGroupId": "99"})).status_code == 400
    assert (await fo.patch(url, json={"FullPrimaryAddress": "x"})).status_code == 400
    missing = "CustomersV3(dataAreaId='usmf',CustomerAccount='NOPE')"
    r = await fo.patch(missing, json={"NameAlias": "x"})
    assert r.status_code == 404 and inner(r) == "No resources were found when selecting for update."
    assert (await fo.delete(missing)).status_code == 404
    stale = (await fo.get(url)).json()["@odata.etag"]
    await fo.patch(url, json={"NameAlias": "F"})
    assert (await fo.delete(url, headers={"If-Match": stale})).status_code == 412
    assert (await fo.delete(url)).status_code == 204
    assert (await fo.get(url)).status_code == 404


async def test_read_only_entity_refuses_writes(fo: httpx.AsyncClient) -> None:
    r = await fo.post("SalesInvoiceHeadersV2", json={"InvoiceCustomerAccountNumber": "US-000001"})
    assert r.status_code == 400


async def test_sales_documents(fo: httpx.AsyncClient) -> None:
    r = await fo.post("SalesOrderHeadersV2", json={"OrderingCustomerAccountNumber": "US-000001", "CurrencyCode": "USD"})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["SalesOrderNumber"].startswith("USSO-") and order["SalesOrderStatus"] == "Backorder"
    r = await fo.post("SalesOrderLines", json={"SalesOrderNumber": order["SalesOrderNumber"], "ItemNumber": "D0001",
                                               "OrderedSalesQuantity": 3, "SalesPrice": 10.5, "LineNumber": 1})
    assert r.status_code == 201, r.text
    assert r.json()["LineAmount"] == 31.5 and r.json()["InventoryLotId"].startswith("USLOT-")
    lines = await fo.get(f"SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='{order['SalesOrderNumber']}')"
                         "?$expand=SalesOrderLines")
    assert len(lines.json()["SalesOrderLines"]) == 1
    r = await fo.get("SalesInvoiceLines", params={"$top": "1"})
    line = r.json()["value"][0]
    key = f"dataAreaId='usmf',InvoiceNumber='{line['InvoiceNumber']}',LineNumber={int(line['LineNumber'])}"
    assert (await fo.get(f"SalesInvoiceLines({key})")).status_code == 200


async def test_admin_writes_as_a_user_validate_and_number(anon: httpx.AsyncClient, emu: Emulator) -> None:
    r = await anon.post("/_admin/tables/CustomersV3?as=fo-user-ava", json={"CustomerGroupId": "10",
                                                                          "OrganizationName": "By Ava"})
    assert r.status_code == 201, r.text
    row = r.json()
    assert row["CustomerAccount"] == "US-000031" and row["@key"] == "dataAreaId='usmf',CustomerAccount='US-000031'"
    assert emu.store.changes[-1].actor.user_id == "5a1d0c6e-7b2f-4c1e-9a3d-00000000f002"
    r = await anon.post("/_admin/tables/CustomersV3?as=fo-user-ava", json={"OrganizationName": "No group"})
    assert r.status_code == 400 and r.json()["error"]["innererror"]["type"] == WRITE_FAILED
    path = "/_admin/tables/CustomersV3/" + quote(row["@key"], safe="")
    assert (await anon.get(path)).json()["OrganizationName"] == "By Ava"
    r = await anon.patch(path + "?as=fo-user-max", json={"NameAlias": "Ava's"})
    assert r.status_code == 200 and r.json()["NameAlias"] == "Ava's"
    assert (await anon.delete(path + "?as=fo-user-max")).status_code == 204
    assert (await anon.get(path)).status_code == 404
