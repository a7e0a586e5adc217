"""Filters in-process and as `$filter`, and the P2C routing rule."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.mapping import Side, matches, select_mappings, source_filter
from shared.odata import evaluate_filter, parse_filter

from .conftest import table

USER = {"isdisabled": False, "islicensed": True, "applicationid": None, "fullname": "Ann"}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, True), ({"isdisabled": True}, False), ({"islicensed": False}, False),
    ({"applicationid": "5b1c7a51-7cc4-4b5e-9b0e-21f0a9a2f0aa"}, False), ({"islicensed": None}, False),
])
def test_salespeople_filter_in_process(bc_sales, changes, expected):
    assert matches(bc_sales.mapping("salespeople"), {**USER, **changes}, Side.CRM) is expected


def test_no_filter_matches_everything(bc_sales):
    assert matches(bc_sales.mapping("salespeople"), {}, "erp")
    assert source_filter(bc_sales.mapping("salespeople"), Side.ERP) is None


@pytest.mark.parametrize(("mapping", "side", "record", "expected"), [
    ("contacts", "erp", {"type": "Person", "companyNumber": "C1"}, True),
    ("contacts", "erp", {"type": "Company", "companyNumber": "C1"}, False),
    ("contacts", "erp", {"type": "Person", "companyNumber": ""}, False),
    ("customers", "crm", {"customertypecode": 3, "statecode": 0}, True),
    ("customers", "crm", {"customertypecode": 11, "statecode": 0}, False),
    ("sales-orders", "erp", {"status": "Released"}, True),
    ("sales-orders", "erp", {"status": "Open"}, False),
    ("items", "crm", {"producttypecode": 1}, True),
    ("items", "crm", {"producttypecode": 3}, False),
])
def test_default_filters_of_bc_sales(bc_sales, mapping, side, record, expected):
    assert matches(bc_sales.mapping(mapping), record, side) is expected


def test_source_filter_is_valid_odata_with_the_same_meaning(bc_sales):
    m = bc_sales.mapping("salespeople")
    text = source_filter(m, Side.CRM)
    assert text == "isdisabled eq false and islicensed eq true and applicationid eq null"
    parse_filter(text)
    for record in (USER, {**USER, "isdisabled": True}):
        assert evaluate_filter(text, record) is matches(m, record, Side.CRM)


def test_source_filter_adds_the_incremental_window(bc_sales):
    since = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    m = bc_sales.mapping("customers")
    text = source_filter(m, Side.CRM, modified_field=bc_sales.modified_field(m, Side.CRM), modified_since=since)
    assert text == "(customertypecode eq 3 and statecode eq 0) and (modifiedon ge 2024-05-01T12:00:00.000Z)"
    record = {"customertypecode": 3, "statecode": 0, "modifiedon": "2024-05-01T12:00:00Z"}
    assert evaluate_filter(text, record)
    assert not evaluate_filter(text, {**record, "modifiedon": "2024-04-30T23:59:59Z"})
    erp_only = source_filter(m, Side.ERP, modified_field="lastModifiedDateTime", modified_since=since)
    assert erp_only == "lastModifiedDateTime ge 2024-05-01T12:00:00.000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        source_filter(m, Side.ERP, modified_field="x", modified_since=dt.datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="modified-on field"):
        source_filter(m, Side.ERP, modified_since=since)


def test_or_filters_keep_their_precedence_when_combined(build):
    m = build(table(filters={"erp": "type eq 'A' or type eq 'B'"})).mapping("customers")
    since = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    text = source_filter(m, "erp", modified_field="lastModifiedDateTime", modified_since=since)
    old = {"type": "A", "lastModifiedDateTime": "2023-01-01T00:00:00Z"}
    assert not evaluate_filter(text, old)  # without parentheses `A or (B and new)` would let it through


# --- Prospect to cash: one Sales contact feeds either F&O customers or contact persons ----------------

@pytest.mark.parametrize(("contact", "expected"), [
    ({"msdyn_isactivecustomer": True, "msdyn_iscompanyanaccount": True}, ["contacts-to-customers"]),
    ({"msdyn_isactivecustomer": True, "msdyn_iscompanyanaccount": False}, ["contacts-to-customers"]),
    ({"msdyn_isactivecustomer": False, "msdyn_iscompanyanaccount": True}, ["contacts-to-contact-persons"]),
    ({"msdyn_isactivecustomer": False, "msdyn_iscompanyanaccount": False}, []),
    ({"msdyn_isactivecustomer": None}, []),
])
def test_p2c_contact_routing(p2c, contact, expected):
    chosen = select_mappings(p2c, Side.CRM, "contacts", {"msdyn_contactnumber": "CON-01000-BVRCPS", **contact})
    assert [m.name for m in chosen] == expected
    assert p2c.route_for(Side.CRM, "contacts").otherwise == "skip"


def test_p2c_routed_contact_maps_with_defaults(p2c):
    from shared.mapping import map_record

    contact = {"msdyn_contactnumber": "CON-01000-BVRCPS", "msdyn_isactivecustomer": True,
               "firstname": "Ann", "lastname": "Smith", "fullname": "Ann Smith", "emailaddress1": "a@b.c"}
    [mapping] = select_mappings(p2c, "crm", "contacts", contact)
    payload = map_record(mapping, contact, "to_erp").payload
    assert payload["CustomerAccount"] == "CON-01000-BVRCPS" and payload["PartyType"] == "Person"
    assert payload["CustomerGroupId"] == "10" and payload["LanguageId"] == "en-us"
    bad = map_record(mapping, {**contact, "msdyn_contactnumber": "C-1"}, "to_erp")
    assert bad.errors and bad.errors[0].field == "CustomerAccount ⇄ msdyn_contactnumber"


def test_unrouted_entities_go_to_every_matching_mapping(bc_sales):
    chosen = select_mappings(bc_sales, "erp", "salesOrders", {"status": "Released"})
    assert [m.name for m in chosen] == ["sales-orders", "sales-order-status"]
    assert [m.name for m in select_mappings(bc_sales, "erp", "salesOrders", {"status": "Open"})] == [
        "sales-order-status"]
    # salespeople only flow CRM → ERP: an ERP salesperson feeds nothing.
    assert select_mappings(bc_sales, "erp", "salespeoplePurchasers", {}) == []
    # disabled mappings take nothing
    assert select_mappings(bc_sales, "crm", "products", {"producttypecode": 3}) == []
