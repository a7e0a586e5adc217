"""Tokens (post and Basic), the service document, $metadata, the metadata API, case sensitivity, auth."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from urllib.parse import quote

import httpx

from tests.emulators.finance_operations.conftest import BASE, DATA

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()).decode()


async def test_token_by_post_and_by_basic(anon: httpx.AsyncClient) -> None:
    form = {"grant_type": "client_credentials", "scope": "https://dualsync-dev.operations.dynamics.com/.default"}
    r = await anon.post("/t/oauth2/v2.0/token", data={**form, "client_id": "fo-user-ava",
                                                     "client_secret": "fo-user-ava-secret"})
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
    r = await anon.post("/t/oauth2/v2.0/token", data=form,
                        headers={"Authorization": _basic("fo-user-ava", "fo-user-ava-secret")})
    assert r.status_code == 200, r.text
    ok = r.json()["access_token"]
    assert (await anon.get("/data/Currencies", headers={"Authorization": f"Bearer {ok}"})).status_code == 200
    # wrong secret by Basic, both methods at once, neither
    r = await anon.post("/t/oauth2/v2.0/token", data=form, headers={"Authorization": _basic("fo-user-ava", "x")})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await anon.post("/t/oauth2/v2.0/token", data={**form, "client_id": "fo-user-ava",
                                                     "client_secret": "fo-user-ava-secret"},
                        headers={"Authorization": _basic("fo-user-ava", "fo-user-ava-secret")})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await anon.post("/t/oauth2/v2.0/token", data={**form, "client_id": "fo-user-ava"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # the scope must be this environment's (configured URL or the URL called)
    r = await anon.post("/t/oauth2/v2.0/token", data={**form, "scope": "https://other.dynamics.com/.default",
                                                     "client_id": "fo-user-ava", "client_secret": "fo-user-ava-secret"})
    assert r.status_code == 400 and "AADSTS500011" in r.json()["error_description"]
    openid = (await anon.get("/t/v2.0/.well-known/openid-configuration")).json()
    assert "client_secret_basic" in openid["token_endpoint_auth_methods_supported"]


async def test_unauthenticated_is_401_with_fo_body(anon: httpx.AsyncClient) -> None:
    for path in ("/data/CustomersV3", "/data/$metadata", "/Metadata/PublicEntities", "/data"):
        r = await anon.get(path, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401, path
        assert r.json()["error"]["innererror"]["type"]


async def test_service_document(fo: httpx.AsyncClient) -> None:
    for path in (DATA, DATA + "/"):
        r = await fo.get(path)
        assert r.status_code == 200 and r.headers["OData-Version"] == "4.0"
        body = r.json()
        assert body["@odata.context"] == f"{DATA}/$metadata"
        names = {v["name"] for v in body["value"]}
        assert {"CustomersV3", "VendorsV2", "ContactPersonsV2", "CustomerGroups", "Currencies", "LegalEntities",
                "SalesOrderHeadersV2", "SalesOrderLines", "SalesInvoiceHeadersV2"} <= names
        assert all(v["kind"] == "EntitySet" and v["url"] == v["name"] for v in body["value"])


async def test_metadata_csdl(fo: httpx.AsyncClient) -> None:
    r = await fo.get("$metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    schema = root.find(f".//{EDM}Schema")
    assert schema is not None and schema.get("Namespace") == "Microsoft.Dynamics.DataEntities"
    customer = schema.find(f"{EDM}EntityType[@Name='CustomerV3']")
    assert customer is not None
    assert [p.get("Name") for p in customer.findall(f"{EDM}Key/{EDM}PropertyRef")] == ["dataAreaId", "CustomerAccount"]
    props = {p.get("Name"): p for p in customer.findall(f"{EDM}Property")}
    assert props["CreditLimit"].get("Type") == "Edm.Decimal"
    assert props["CreditLimitIsMandatory"].get("Type") == "Microsoft.Dynamics.DataEntities.NoYes"
    assert props["dataAreaId"].get("Nullable") == "false"
    assert "ModifiedDateTime" not in props
    noyes = schema.find(f"{EDM}EnumType[@Name='NoYes']")
    assert noyes is not None
    assert {(m.get("Name"), m.get("Value")) for m in noyes.findall(f"{EDM}Member")} == {("No", "0"), ("Yes", "1")}
    header = schema.find(f"{EDM}EntityType[@Name='SalesOrderHeaderV2']")
    assert header is not None
    nav = header.find(f"{EDM}NavigationProperty[@Name='SalesOrderLines']")
    assert nav is not None and nav.get("Type") == "Collection(Microsoft.Dynamics.DataEntities.SalesOrderLine)"
    sets = {s.get("Name"): s.get("EntityType") for s in schema.findall(f"{EDM}EntityContainer/{EDM}EntitySet")}
    assert sets["CustomersV3"] == "Microsoft.Dynamics.DataEntities.CustomerV3"


async def test_metadata_api(fo: httpx.AsyncClient) -> None:
    r = await fo.get(f"{BASE}/Metadata/PublicEntities")
    assert r.status_code == 200
    entities = {e["Name"]: e for e in r.json()["value"]}
    cust = entities["CustomerV3"]
    assert cust["EntitySetName"] == "CustomersV3" and cust["IsReadOnly"] is False
    props = {p["Name"]: p for p in cust["Properties"]}
    assert props["dataAreaId"]["IsKey"] and props["CustomerGroupId"]["IsMandatory"]
    assert props["CreditLimitIsMandatory"]["TypeName"] == "NoYes"
    one = await fo.get(f"{BASE}/Metadata/PublicEntities('CustomerV3')")
    assert one.status_code == 200 and one.json()["EntitySetName"] == "CustomersV3"
    assert (await fo.get(f"{BASE}/Metadata/PublicEntities('NoSuchEntity')")).status_code == 404
    data = (await fo.get(f"{BASE}/Metadata/DataEntities")).json()["value"]
    row = next(d for d in data if d["PublicEntityName"] == "CustomerV3")
    assert row["PublicCollectionName"] == "CustomersV3" and row["DataServiceEnabled"] is True
    assert {"Name", "EntityCategory", "DataManagementEnabled", "IsReadOnly"} <= set(row)
    enums = (await fo.get(f"{BASE}/Metadata/PublicEnumerations")).json()["value"]
    assert any(e["Name"] == "NoYes" for e in enums)
    noyes = (await fo.get(f"{BASE}/Metadata/PublicEnumerations('NoYes')")).json()
    assert noyes["Members"][:2] == [{"Name": "No", "Value": 0, "LabelId": "", "ConfigurationEnabled": True},
                                    {"Name": "Yes", "Value": 1, "LabelId": "", "ConfigurationEnabled": True}]


async def test_entity_set_names_are_case_sensitive(fo: httpx.AsyncClient) -> None:
    r = await fo.get("customersv3")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "", "message": "No HTTP resource was found that matches the request URI "
                                  f"'{DATA}/customersv3'."}}
    r = await fo.get("CustomersV3?$filter=customeraccount eq 'x'")
    assert r.status_code == 400
    assert "customeraccount" in r.json()["error"]["innererror"]["message"]


async def test_throttled_answers_429_with_retry_after(fo: httpx.AsyncClient, emu: object) -> None:
    emu.throttle.limits = emu.throttle.limits.model_copy(update={"window_requests": 2})  # type: ignore[attr-defined]
    statuses = [(await fo.get("Currencies")).status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]
    r = await fo.get("Currencies")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["innererror"]["message"]


async def test_injected_faults_and_admin_config(anon: httpx.AsyncClient, fo: httpx.AsyncClient) -> None:
    r = await anon.patch("/_admin/config", json={"faults": {"error_ratio": 1.0, "error_status": 503}})
    assert r.status_code == 200
    r = await fo.get("Currencies")
    assert r.status_code == 503 and r.json()["error"]["message"] == "An error has occurred."
    await anon.patch("/_admin/config", json={"faults": {"error_ratio": 0.0}})
    assert (await fo.get("Currencies")).status_code == 200
