"""The API root's service document, `$metadata` read as CSDL v4 with `xml.etree.ElementTree` and checked
against what GETs return, the `/$count` segment, entity sets at the root with `company=`, and the refusal
of every query option the emulator does not honour."""

from __future__ import annotations

import asyncio
import datetime as dt
import operator
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from emulators.business_central import create_app
from tests.emulators.business_central.conftest import API, make_settings, token
from tests.emulators.business_central.receiver import Receiver
from tests.emulators.business_central.test_reads import assert_error

NS = {"edmx": "http://docs.oasis-open.org/odata/ns/edmx", "edm": "http://docs.oasis-open.org/odata/ns/edm"}
USA = "CRONUS USA, Inc."
# The entity sets the emulator serves (PROTOCOLS.md §3 and the API v2.0 reference), in no particular order.
COMPANY_SETS = ["customers", "vendors", "contacts", "items", "currencies", "unitsOfMeasure", "paymentTerms",
                "shipmentMethods", "salespeoplePurchasers", "opportunities", "salesOrders", "salesOrderLines",
                "salesInvoices", "salesInvoiceLines"]
SERVED = ["companies", *COMPANY_SETS, "subscriptions"]
FORMS = [API, "/v2.0/cronus.onmicrosoft.com/production/api/v2.0/", "/v2.0/production/api/v2.0/"]


@dataclass
class Api:
    app: Starlette
    http: httpx.AsyncClient
    company: str
    base: str  # the company's URL, ending in "/"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    """An emulator with one subscription (so every entity set has rows), its webhook calls answered in-process."""
    receiver = Receiver()
    out = httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app))
    app = create_app(make_settings(), http=out)
    company = next(r["id"] for r in app.state.emulator.store.table("companies").all() if r["name"] == USA)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bc.test") as http:
        http.headers["Authorization"] = f"Bearer {await token(http)}"
        sub = await http.post(f"{API}subscriptions", json={
            "notificationUrl": "http://receiver.test/hook", "clientState": "s",
            "resource": f"/api/v2.0/companies({company})/customers"})
        assert sub.status_code == 201, sub.text
        yield Api(app, http, company, f"{API}companies({company})/")
    await app.state.emulator.webhooks.aclose()
    await out.aclose()


# ----- CSDL, read with a standard XML parser

@dataclass
class Csdl:
    namespace: str
    alias: str | None
    types: dict[str, ET.Element]  # EntityType by name
    enums: dict[str, list[str]]  # EnumType → member names
    sets: dict[str, ET.Element]  # EntitySet by name

    def qualified(self, name: str) -> str:
        """`Microsoft.NAV.customer` or `NAV.customer` → `customer` (a type of this schema)."""
        for prefix in (self.namespace, self.alias):
            if prefix and name.startswith(prefix + "."):
                return name[len(prefix) + 1:]
        raise AssertionError(f"{name} is not in namespace {self.namespace}")

    def type_of(self, entity_set: str) -> ET.Element:
        return self.types[self.qualified(self.sets[entity_set].get("EntityType", ""))]

    def properties(self, entity_type: ET.Element) -> dict[str, ET.Element]:
        return {p.get("Name", ""): p for p in entity_type.findall("edm:Property", NS)}

    def navigation(self, entity_type: ET.Element) -> dict[str, ET.Element]:
        return {p.get("Name", ""): p for p in entity_type.findall("edm:NavigationProperty", NS)}

    def target(self, nav: ET.Element) -> tuple[str, bool]:
        """(entity type name, is a collection) of a navigation property."""
        t = nav.get("Type", "")
        m = re.fullmatch(r"Collection\((.+)\)", t)
        return self.qualified(m.group(1) if m else t), m is not None


def parse_csdl(text: str) -> Csdl:
    root = ET.fromstring(text)
    assert root.tag == f"{{{NS['edmx']}}}Edmx" and root.get("Version") == "4.0"
    schemas = root.findall("edmx:DataServices/edm:Schema", NS)
    assert len(schemas) == 1
    schema = schemas[0]
    containers = schema.findall("edm:EntityContainer", NS)
    assert len(containers) == 1
    return Csdl(schema.get("Namespace", ""), schema.get("Alias"),
                {t.get("Name", ""): t for t in schema.findall("edm:EntityType", NS)},
                {e.get("Name", ""): [m.get("Name", "") for m in e.findall("edm:Member", NS)]
                 for e in schema.findall("edm:EnumType", NS)},
                {s.get("Name", ""): s for s in containers[0].findall("edm:EntitySet", NS)})


def check_value(csdl: Csdl, prop: ET.Element, value: Any) -> None:
    """`value`, as a GET returned it, is a value of the declared property."""
    name, edm = prop.get("Name"), prop.get("Type", "")
    where = f"{name}={value!r} ({edm})"
    if value is None:
        assert prop.get("Nullable") != "false", where
        return
    if not edm.startswith("Edm."):
        # BC sends an enum value as the member name `$metadata` declares (`_x0020_`, `Non_x002D_Inventory`).
        assert value in csdl.enums[csdl.qualified(edm)], where
        return
    if edm == "Edm.String":
        assert isinstance(value, str), where
        if prop.get("MaxLength") not in (None, "max"):
            assert len(value) <= int(prop.get("MaxLength", "")), where
    elif edm == "Edm.Guid":
        assert isinstance(value, str) and str(uuid.UUID(value)) == value, where
    elif edm == "Edm.Decimal":
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    elif edm in ("Edm.Int32", "Edm.Int64"):
        bits = 31 if edm == "Edm.Int32" else 63
        assert isinstance(value, int) and not isinstance(value, bool) and -2 ** bits <= value < 2 ** bits, where
    elif edm == "Edm.Boolean":
        assert isinstance(value, bool), where
    elif edm == "Edm.Date":
        assert isinstance(value, str) and dt.date.fromisoformat(value), where
    elif edm == "Edm.DateTimeOffset":
        assert isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z", value), where
    else:
        raise AssertionError(f"unexpected type {where}")


def check_entity(csdl: Csdl, entity_type: ET.Element, row: dict[str, Any]) -> None:
    """Every property a GET returned is declared (and the reverse), each value of its declared type."""
    props = csdl.properties(entity_type)
    returned = {k for k in row if not k.startswith("@odata.") and k not in csdl.navigation(entity_type)}
    assert returned == set(props), (entity_type.get("Name"), returned ^ set(props))
    for name in returned:
        check_value(csdl, props[name], row[name])


async def get_csdl(http: httpx.AsyncClient, root: str = API) -> Csdl:
    resp = await http.get(f"{root}$metadata")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].split(";")[0] == "application/xml"
    assert resp.headers["OData-Version"] == "4.0"
    return parse_csdl(resp.text)


async def rows_of(api: Api, name: str, **params: str) -> list[dict[str, Any]]:
    url = f"{API}{name}" if name in ("companies", "subscriptions") else f"{api.base}{name}"
    resp = await api.http.get(url, params=params)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["value"])


# ----- service document

@pytest.mark.parametrize("root", FORMS)
async def test_service_document_lists_every_entity_set(api: Api, root: str) -> None:
    resp = await api.http.get(root)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["@odata.context"] == f"http://bc.test{root}$metadata"
    assert sorted(e["name"] for e in body["value"]) == sorted(SERVED)
    assert all(e["kind"] == "EntitySet" and e["url"] == e["name"] for e in body["value"])
    csdl = await get_csdl(api.http, root)
    assert set(csdl.sets) == {e["name"] for e in body["value"]}


async def test_service_document_urls_can_be_followed(api: Api) -> None:
    """The root entity sets answer; a company's entity sets at the root take BC's `company=<name>`."""
    for entry in (await api.http.get(API)).json()["value"]:
        resp = await api.http.get(f"{API}{entry['url']}", params={"company": USA})
        assert resp.status_code == 200, (entry, resp.text)
        if entry["name"] in COMPANY_SETS:
            assert resp.json()["@odata.context"].endswith(f"$metadata#{entry['name']}")
            assert sorted(r["id"] for r in resp.json()["value"]) == sorted(r["id"] for r in await rows_of(
                api, entry["name"]))


async def test_service_document_refusals(api: Api) -> None:
    assert_error(await api.http.post(API, json={}), 405, "BadRequest_MethodNotAllowed")
    assert_error(await api.http.get(API, params={"$top": "1"}), 400, "BadRequest")
    assert_error(await api.http.get(API, params={"$format": "xml"}), 406, "BadRequest")


# ----- $metadata

async def test_metadata_is_csdl_in_microsoft_nav(api: Api) -> None:
    csdl = await get_csdl(api.http)
    assert csdl.namespace == "Microsoft.NAV"
    assert sorted(csdl.sets) == sorted(SERVED)
    for name, entity_set in csdl.sets.items():
        entity_type = csdl.type_of(name)
        keys = [k.get("Name") for k in entity_type.findall("edm:Key/edm:PropertyRef", NS)]
        assert keys == (["subscriptionId"] if name == "subscriptions" else ["id"]), name
        assert csdl.properties(entity_type)[keys[0]].get("Nullable") == "false"
        for binding in entity_set.findall("edm:NavigationPropertyBinding", NS):
            nav = csdl.navigation(entity_type)[binding.get("Path", "")]
            assert csdl.target(nav)[0] == csdl.type_of(binding.get("Target", "")).get("Name")
        bound = {b.get("Path") for b in entity_set.findall("edm:NavigationPropertyBinding", NS)}
        assert bound == set(csdl.navigation(entity_type)), name
    # The documented types and navigation: NAV.contactType / NAV.customerBlocked, lines under documents,
    # each of a company's entity sets under the company.
    customer = csdl.properties(csdl.types["customer"])
    assert csdl.qualified(customer["type"].get("Type", "")) == "contactType"
    assert csdl.enums["customerBlocked"] == ["_x0020_", "Ship", "Invoice", "All"]
    assert csdl.enums["itemType"] == ["Inventory", "Service", "Non_x002D_Inventory"]
    assert customer["number"].get("Type") == "Edm.String" and customer["number"].get("MaxLength") == "20"
    assert customer["lastModifiedDateTime"].get("Type") == "Edm.DateTimeOffset"
    assert csdl.target(csdl.navigation(csdl.types["salesOrder"])["salesOrderLines"]) == ("salesOrderLine", True)
    assert csdl.target(csdl.navigation(csdl.types["customer"])["currency"]) == ("currency", False)
    company_nav = csdl.navigation(csdl.types["company"])
    assert {n: csdl.target(company_nav[n]) for n in company_nav} == {
        n: (csdl.type_of(n).get("Name"), True) for n in COMPANY_SETS}


@pytest.mark.parametrize("name", SERVED)
async def test_metadata_declares_exactly_what_get_returns(api: Api, name: str) -> None:
    csdl = await get_csdl(api.http)
    entity_type = csdl.type_of(name)
    rows = await rows_of(api, name)
    assert rows, f"{name} has rows"
    key = entity_type.find("edm:Key/edm:PropertyRef", NS).get("Name")  # type: ignore[union-attr]
    for row in rows:
        check_entity(csdl, entity_type, row)
    assert len({r[key] for r in rows}) == len(rows)
    # The declared key addresses the record.
    first = rows[0][key]
    url = f"{API}{name}('{first}')" if name == "subscriptions" else (
        f"{API}{name}({first})" if name == "companies" else f"{api.base}{name}({first})")
    one = await api.http.get(url)
    assert one.status_code == 200 and one.json()[key] == first
    check_entity(csdl, entity_type, one.json())


@pytest.mark.parametrize("name", SERVED)
async def test_every_navigation_property_expands_to_its_target(api: Api, name: str) -> None:
    csdl = await get_csdl(api.http)
    entity_type = csdl.type_of(name)
    navs = csdl.navigation(entity_type)
    if not navs:
        assert_error(await api.http.get(f"{api.base}{name}" if name in COMPANY_SETS else f"{API}{name}",
                                        params={"$expand": "currency"}), 400, "BadRequest")
        return
    rows = await rows_of(api, name, **{"$expand": ",".join(navs), "$top": "8"})
    seen_single = False
    for row in rows:
        check_entity(csdl, entity_type, row)
        for nav_name, nav in navs.items():
            target_name, many = csdl.target(nav)
            value = row[nav_name]
            if many:
                assert isinstance(value, list)
                for item in value:
                    check_entity(csdl, csdl.types[target_name], item)
                    if name == "companies":  # the company's own records
                        assert item["id"] in {r["id"] for r in await rows_of_company(api, row["id"], nav_name)}
                    else:
                        assert item["documentId"] == row["id"]
            elif value is not None:
                seen_single = True
                check_entity(csdl, csdl.types[target_name], value)
                constraint = nav.find("edm:ReferentialConstraint", NS)
                assert constraint is not None
                assert value[constraint.get("ReferencedProperty", "")] == row[constraint.get("Property", "")]
    has_single = any(not csdl.target(n)[1] for n in navs.values())
    assert seen_single or not has_single, f"no {name} row had a reference to expand"
    if name == "companies":
        counts = {r["name"]: len(r["customers"]) for r in rows}
        assert counts[USA] == len(await rows_of(api, "customers"))


async def rows_of_company(api: Api, company: str, name: str) -> list[dict[str, Any]]:
    resp = await api.http.get(f"{API}companies({company})/{name}")
    return list(resp.json()["value"])


@pytest.mark.parametrize(("params", "status"), [({"$format": "json"}, 406), ({"$format": "application/json"}, 406),
                                                ({"$top": "1"}, 400), ({"$foo": "1"}, 400), ({"$filter": "x"}, 400)])
async def test_metadata_variants_are_refused(api: Api, params: dict[str, str], status: int) -> None:
    assert_error(await api.http.get(f"{API}$metadata", params=params), status, "BadRequest")


async def test_metadata_accepts_xml_format_only_get(api: Api) -> None:
    for fmt in ("xml", "application/xml"):
        resp = await api.http.get(f"{API}$metadata", params={"$format": fmt})
        assert resp.status_code == 200 and parse_csdl(resp.text).namespace == "Microsoft.NAV"
    assert_error(await api.http.post(f"{API}$metadata", json={}), 405, "BadRequest_MethodNotAllowed")


# ----- /$count

async def count(http: httpx.AsyncClient, url: str, **params: str) -> int:
    resp = await http.get(url, params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].split(";")[0] == "text/plain"
    assert re.fullmatch(r"\d+", resp.text)
    return int(resp.text)


@pytest.mark.parametrize("name", SERVED)
async def test_count_segment_counts_every_collection(api: Api, name: str) -> None:
    url = f"{API}{name}" if name in ("companies", "subscriptions") else f"{api.base}{name}"
    assert await count(api.http, f"{url}/$count") == len(await rows_of(api, name))


async def test_count_honours_filter_and_ignores_paging_options(api: Api) -> None:
    everyone = await rows_of(api, "customers")
    rich = len([c for c in everyone if c["creditLimit"] > 10000])
    url = f"{api.base}customers/$count"
    assert await count(api.http, url, **{"$filter": "creditLimit gt 10000"}) == rich
    # OData: the count is not affected by $top, $skip or $orderby.
    assert await count(api.http, url, **{"$filter": "creditLimit gt 10000", "$top": "1", "$skip": "1",
                                         "$orderby": "number desc"}) == rich
    root = await count(api.http, f"{API}customers/$count", company=USA)
    assert root == len(everyone)


async def test_count_of_document_lines(api: Api) -> None:
    order = (await rows_of(api, "salesOrders", **{"$top": "1"}))[0]
    lines = f"{api.base}salesOrders({order['id']})/salesOrderLines"
    assert await count(api.http, f"{lines}/$count") == len((await api.http.get(lines)).json()["value"])
    assert await count(api.http, f"{lines}/$count", **{"$filter": "quantity gt 1000000"}) == 0


async def test_count_refusals(api: Api) -> None:
    first = (await rows_of(api, "customers", **{"$top": "1"}))[0]["id"]
    assert_error(await api.http.get(f"{api.base}customers({first})/$count"), 400, "BadRequest")
    for params in ({"$select": "number"}, {"$expand": "currency"}, {"$count": "true"}, {"$skiptoken": "x.1"},
                   {"$filter": "nosuchfield eq 1"}, {"$skip": "-1"}, {"$foo": "1"}):
        assert_error(await api.http.get(f"{api.base}customers/$count", params=params), 400, "BadRequest")
    assert_error(await api.http.post(f"{api.base}customers/$count", json={}), 405, "BadRequest_MethodNotAllowed")
    assert_error(await api.http.get(f"{api.base}customers/$count/$count"), 404, "BadRequest_NotFound")


async def test_count_and_metadata_in_a_batch(api: Api) -> None:
    resp = await api.http.post(f"{API}$batch", json={"requests": [
        {"method": "GET", "id": "1", "url": "companies/$count"},
        {"method": "GET", "id": "2", "url": "$metadata"},
        {"method": "GET", "id": "3", "url": "companies?$top=1&$top=2"}]})
    answers = {r["id"]: r for r in resp.json()["responses"]}
    assert answers["1"]["status"] == 200 and answers["1"]["body"] == "2"
    assert answers["1"]["headers"]["content-type"] == "text/plain"
    assert parse_csdl(answers["2"]["body"]).namespace == "Microsoft.NAV"
    assert answers["3"]["status"] == 400 and "more than once" in answers["3"]["body"]["error"]["message"]


_SHARED: dict[str, Any] = {}


def _shared() -> tuple[Starlette, str]:
    if not _SHARED:
        app = create_app(make_settings(records=40))
        _SHARED["app"] = app
        _SHARED["company"] = next(r["id"] for r in app.state.emulator.store.table("companies").all()
                                  if r["name"] == USA)
    return _SHARED["app"], _SHARED["company"]


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), limit=st.integers(0, 1600),
       root=st.booleans())
def test_count_agrees_with_python(op: str, limit: int, root: bool) -> None:
    app, company = _shared()
    py = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
          "le": operator.le}[op]
    expected = sum(1 for r in app.state.emulator.rows("items", company) if py(r["unitPrice"], limit))

    async def fetch() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bc.test") as h:
            h.headers["Authorization"] = f"Bearer {await token(h)}"
            url = f"{API}items/$count" if root else f"{API}companies({company})/items/$count"
            return await count(h, url, **{"$filter": f"unitPrice {op} {limit}"}, **({"company": USA} if root else {}))

    assert asyncio.run(fetch()) == expected


# ----- entity sets at the API root: BC's `company=` option and Company header

async def test_root_entity_sets_take_the_company_by_name(api: Api) -> None:
    ids = sorted(r["id"] for r in await rows_of(api, "customers"))
    by_query = await api.http.get(f"{API}customers", params={"company": USA})
    by_header = await api.http.get(f"{API}customers", headers={"Company": USA})
    assert sorted(r["id"] for r in by_query.json()["value"]) == ids
    assert sorted(r["id"] for r in by_header.json()["value"]) == ids
    one = await api.http.get(f"{API}customers({ids[0]})", params={"company": USA})
    assert one.status_code == 200 and one.json()["@odata.context"].endswith("$metadata#customers/$entity")
    created = await api.http.post(f"{API}customers", params={"company": USA}, json={"displayName": "Root Co"})
    assert created.status_code == 201 and created.headers["Location"].endswith(f"/customers({created.json()['id']})")
    assert created.json()["id"] in {r["id"] for r in await rows_of(api, "customers")}


async def test_root_entity_sets_without_a_known_company_are_refused(api: Api) -> None:
    msg = assert_error(await api.http.get(f"{API}customers"), 400, "Internal_CompanyNotFound")
    assert 'query string in the form of "company=[name]"' in msg
    assert_error(await api.http.get(f"{API}customers", params={"company": "No Such Ltd."}), 400,
                 "Internal_CompanyNotFound")


async def test_documented_batch_with_company_header(api: Api) -> None:
    """The shape of "Tips for working with the APIs": root `items(<id>)` with a `Company` header."""
    item = (await rows_of(api, "items", **{"$top": "1"}))[0]
    resp = await api.http.post(f"{API}$batch", headers={"Isolation": "snapshot"}, json={"requests": [
        {"method": "PATCH", "url": f"items({item['id']})", "body": {"displayName": "Touring Bicycle v2"},
         "headers": {"Company": USA, "Content-Type": "application/json", "If-Match": "*"}}]})
    answer = resp.json()["responses"][0]
    assert answer["status"] == 200 and answer["body"]["displayName"] == "Touring Bicycle v2"


# ----- query options: honoured, or refused with BC's 400 — never silently dropped

REFUSED_ON_COLLECTIONS = [
    ({"$foo": "1"}, 400), ({"$apply": "groupby((city))"}, 400), ({"$search": "adatum"}, 400),
    ({"$compute": "creditLimit mul 2 as double"}, 400), ({"$levels": "2"}, 400), ({"$index": "1"}, 400),
    ({"$deltatoken": "abc"}, 400), ({"$schemaversion": "1.0"}, 400), ({"$expand": "nosuchnav"}, 400),
    ({"$expand": "currency($select=code)"}, 400), ({"$expand": "*"}, 400), ({"$expand": "currency/$ref"}, 400),
    ({"$expand": "currency,"}, 400), ({"$skip": "-1"}, 400), ({"$skiptoken": "garbage"}, 400),
    ({"$format": "xml"}, 406), ({"$format": "application/json;odata.metadata=full"}, 406),
    ({"$format": "atom"}, 406),
]


@pytest.mark.parametrize(("params", "status"), REFUSED_ON_COLLECTIONS)
async def test_unsupported_options_on_collections_are_refused(api: Api, params: dict[str, str], status: int) -> None:
    assert_error(await api.http.get(f"{api.base}customers", params=params), status, "BadRequest")


@pytest.mark.parametrize("option", ["$filter", "$top", "$skip", "$orderby", "$count", "$skiptoken"])
async def test_collection_options_on_a_single_entity_are_refused(api: Api, option: str) -> None:
    first = (await rows_of(api, "customers", **{"$top": "1"}))[0]["id"]
    value = {"$filter": "number eq 'x'", "$top": "1", "$skip": "1", "$orderby": "number", "$count": "true",
             "$skiptoken": "x.1"}[option]
    for url in (f"{api.base}customers({first})", f"{API}companies({api.company})"):
        msg = assert_error(await api.http.get(url, params={option: value}), 400, "BadRequest")
        assert msg.startswith("The requested resource is not a collection.")
    sub = (await rows_of(api, "subscriptions"))[0]["subscriptionId"]
    assert_error(await api.http.get(f"{API}subscriptions('{sub}')", params={option: value}), 400, "BadRequest")


async def test_repeated_options_are_refused(api: Api) -> None:
    msg = assert_error(await api.http.get(f"{api.base}customers?$top=1&$top=2"), 400, "BadRequest")
    assert msg.startswith("Query option '$top' was specified more than once")


async def test_refused_writes_change_nothing(api: Api) -> None:
    customers = await rows_of(api, "customers")
    first = customers[0]
    assert_error(await api.http.post(f"{api.base}customers", params={"$top": "1"}, json={"displayName": "X"}),
                 400, "BadRequest")
    assert_error(await api.http.patch(f"{api.base}customers({first['id']})", params={"$filter": "number eq 'x'"},
                                      json={"displayName": "Changed"}, headers={"If-Match": "*"}), 400, "BadRequest")
    assert_error(await api.http.delete(f"{api.base}customers({first['id']})", params={"$select": "number"},
                                       headers={"If-Match": "*"}), 400, "BadRequest")
    after = await rows_of(api, "customers")
    assert after == customers


async def test_accepted_options_are_honoured(api: Api) -> None:
    plain = await rows_of(api, "customers")
    for params in ({"$format": "json"}, {"$format": "application/json;odata.metadata=minimal"},
                   {"$schemaversion": "2.0"}, {"$select": "*"}, {"custom": "ignored"}, {"company": "Other Ltd."}):
        assert await rows_of(api, "customers", **params) == plain, params
    body = (await api.http.get(f"{api.base}customers", params={"$count": "true", "$skip": "3", "$top": "2"})).json()
    assert body["@odata.count"] == len(plain) and len(body["value"]) == 2


async def test_select_and_expand_shape_write_answers(api: Api) -> None:
    created = await api.http.post(f"{api.base}customers", params={"$select": "number,displayName"},
                                  json={"displayName": "Selected Co", "currencyCode": "EUR"})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"@odata.context", "@odata.etag", "number", "displayName"}
    rid = (await rows_of(api, "customers", **{"$filter": "displayName eq 'Selected Co'"}))[0]["id"]
    patched = await api.http.patch(f"{api.base}customers({rid})", params={"$expand": "currency"},
                                   json={"phoneNumber": "+1 555 0101"}, headers={"If-Match": "*"})
    assert patched.status_code == 200 and patched.json()["currency"]["code"] == "EUR"
