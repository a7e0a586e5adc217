"""map_record: directions, defaults, constants, value maps, lookups, not-null and per-record errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.mapping import Direction, Side, convert, load_pack, map_record

from .conftest import ROOT, table

ROUND_TRIP = load_pack(ROOT / "tests/mapping/packs/round_trip.yaml")


@pytest.fixture
def directions(build):
    pack = build(table(fields=[
        {"erp": "number", "crm": "accountnumber"},
        {"erp": "displayName", "crm": "name", "direction": "to_crm"},
        {"erp": "email", "crm": "emailaddress1", "direction": "to_erp"},
        {"crm": "customertypecode", "constant": 3, "direction": "to_crm"},
        {"erp": "type", "constant": "Company", "direction": "to_erp"},
        {"erp": "disabledField", "crm": "x", "enabled": False},
    ]))
    return pack.mapping("customers")


def test_direction_rules_pick_fields_per_flow(directions):
    record_erp = {"number": "C1", "displayName": "Ann", "email": "a@b.c", "disabledField": "d"}
    assert map_record(directions, record_erp, "to_crm").payload == {
        "accountnumber": "C1", "name": "Ann", "customertypecode": 3}
    record_crm = {"accountnumber": "C1", "name": "Ann", "emailaddress1": "a@b.c", "x": "d"}
    assert map_record(directions, record_crm, Direction.TO_ERP).payload == {
        "number": "C1", "email": "a@b.c", "type": "Company"}


def test_cli_spelling_and_bad_direction(directions):
    assert map_record(directions, {"number": "C1"}, "to-crm").payload["accountnumber"] == "C1"
    with pytest.raises(ValueError):
        map_record(directions, {}, "bidirectional")


def test_absent_source_fields_are_not_written_but_nulls_are(directions):
    assert "name" not in map_record(directions, {"number": "C1"}, "to_crm").payload
    assert map_record(directions, {"displayName": None}, "to_crm").payload["name"] is None


def test_defaults_apply_only_to_empty_sources(build):
    m = build(table(direction="to_erp", fields=[
        {"crm": "name", "erp": "displayName"},
        {"crm": "msdyn_group", "erp": "CustomerGroupId", "default": "10"},
        {"erp": "LanguageId", "default": "en-us"},
    ])).mapping("customers")
    assert map_record(m, {"name": "A", "msdyn_group": None}, "to_erp").payload == {
        "displayName": "A", "CustomerGroupId": "10", "LanguageId": "en-us"}
    assert map_record(m, {"name": "A", "msdyn_group": ""}, "to_erp").payload["CustomerGroupId"] == "10"
    assert map_record(m, {"name": "A", "msdyn_group": "20"}, "to_erp").payload["CustomerGroupId"] == "20"


@pytest.fixture
def value_maps(build):
    return build(table(fields=[
        {"erp": "blocked", "crm": "statecode",
         "value_map": {"values": {" ": 0, "Ship": 0, "All": 1}, "reverse": {0: " ", 1: "All"}}},
        {"erp": "terms", "crm": "paymenttermscode", "direction": "to_crm",
         "value_map": {"values": {"30 DAYS": 1}, "unmapped": "blank"}},
        {"erp": "kind", "crm": "kindcode", "direction": "to_crm",
         "value_map": {"values": {"A": 1}, "unmapped": "fallback", "fallback": 99}},
        {"erp": "code", "crm": "codecode", "direction": "to_crm",
         "value_map": {"values": {"A": "a"}, "unmapped": "keep"}},
        {"erp": "flag", "crm": "flagcode", "value_map": {"values": {True: 1, False: 0}}},
        {"erp": "strict", "crm": "strictcode", "direction": "to_crm", "value_map": {"values": {"A": 1}}},
    ])).mapping("customers")


def test_value_maps_forward_reverse_and_unmapped(value_maps):
    result = map_record(value_maps, {"blocked": "Ship", "terms": "NET 7", "kind": "Z", "code": "B",
                                     "flag": True, "strict": "A"}, "to_crm")
    assert result.payload == {"statecode": 0, "paymenttermscode": None, "kindcode": 99, "codecode": "B",
                              "flagcode": 1, "strictcode": 1}
    back = map_record(value_maps, {"statecode": 1, "flagcode": 0}, "to_erp")
    assert back.payload == {"blocked": "All", "flag": False}


def test_value_map_keeps_bools_and_numbers_apart(value_maps):
    # True == 1 in Python; a value map must not confuse them.
    result = map_record(value_maps, {"flagcode": True}, "to_erp")
    assert result.payload == {} and "not in the value map" in result.errors[0].message


def test_unmapped_error_is_a_per_record_field_error(value_maps):
    result = map_record(value_maps, {"strict": "B", "blocked": "All"}, "to_crm")
    assert result.payload == {"statecode": 1}
    [error] = result.errors
    assert (error.mapping, error.field) == ("customers", "strict ⇄ strictcode")
    assert error.file.endswith("pack.yaml") and "'B' is not in the value map" in error.message


def test_transform_failures_are_per_record_and_clear_on_fail(build):
    m = build(table(direction="to_crm", fields=[
        {"erp": "code", "crm": "isocurrencycode", "transforms": [{"type": "regex_match", "pattern": "^[A-Z]{3}$"}]},
        {"erp": "date", "crm": "d", "clear_on_fail": True, "transforms": [{"type": "date_format", "format": "%Y"}]},
        {"erp": "displayName", "crm": "name", "not_null": True},
    ])).mapping("customers")
    records = [{"code": "EURO", "date": "bad", "displayName": "X"}, {"code": "EUR", "date": "2024-01-01"},
               {"code": "NOK", "date": None, "displayName": ""}]
    results = [map_record(m, r, "to_crm") for r in records]  # one bad record does not stop the others
    assert [r.ok for r in results] == [False, True, False]
    assert results[0].payload == {"d": None, "name": "X"}
    assert "does not match" in results[0].errors[0].message
    assert results[1].payload == {"isocurrencycode": "EUR", "d": "2024"}
    assert results[2].errors[0].field == "displayName ⇄ name" and "not_null" in results[2].errors[0].message


def test_bidirectional_transforms_map_back_through_inverses(build):
    m = build(table(fields=[
        {"erp": "postingDate", "crm": "new_posting", "transforms": [{"type": "date_format", "format": "%d.%m.%Y"}]},
        {"erp": "code", "crm": "new_code", "transforms": [{"type": "replace", "old": "-", "new": "_"},
                                                         {"type": "uppercase"}]},
        {"erp": "name", "crm": "new_name", "transforms": [{"type": "substring", "length": 3}],
         "reverse_transforms": [{"type": "lowercase"}]},
    ])).mapping("customers")
    forward = map_record(m, {"postingDate": "2024-03-01", "code": "us-1", "name": "Abcdef"}, "to_crm").payload
    assert forward == {"new_posting": "01.03.2024", "new_code": "US_1", "new_name": "Abc"}
    back = map_record(m, forward, "to_erp").payload
    assert back == {"postingDate": "2024-03-01", "code": "US-1", "name": "abc"}


def test_on_create_values_and_only(build):
    m = build(table(on_create={"crm": {"customertypecode": 3, "name": "template"}}, fields=[
        {"erp": "displayName", "crm": "name"}, {"erp": "number", "crm": "accountnumber"}])).mapping("customers")
    record = {"displayName": "Ann", "number": "C1"}
    assert map_record(m, record, "to_crm", creating=True).payload == {
        "customertypecode": 3, "name": "Ann", "accountnumber": "C1"}
    assert map_record(m, record, "to_crm").payload == {"name": "Ann", "accountnumber": "C1"}
    assert map_record(m, record, "to_crm", only={"number ⇄ accountnumber"}).payload == {"accountnumber": "C1"}


def test_lookups_are_requested_then_written_as_each_api_expects(bc_sales):
    customers = bc_sales.mapping("customers")
    erp = {"currencyId": "bc-eur", "salespersonCode": "JR", "paymentTermsId": "bc-pt"}
    pending = map_record(customers, erp, "to_crm")
    assert {(lk.field, lk.mapping, lk.value, lk.by) for lk in pending.lookups} == {
        ("transactioncurrencyid", "currencies", "bc-eur", None), ("ownerid", "salespeople", "JR", "code"),
        ("paymenttermscode", "payment-terms", "bc-pt", None)}
    assert pending.ok and not pending.complete and pending.payload == {}
    done = map_record(customers, erp, "to_crm",
                      resolved={"transactioncurrencyid": "c-1", "ownerid": "u-1", "paymenttermscode": 2})
    assert done.complete
    assert done.payload == {"transactioncurrencyid@odata.bind": "/transactioncurrencies(c-1)",
                            "ownerid@odata.bind": "/systemusers(u-1)", "paymenttermscode": 2}
    back = map_record(customers, {"_transactioncurrencyid_value": "c-1"}, "to_erp",
                      resolved={"currencyId": "bc-eur"})
    assert back.payload == {"currencyId": "bc-eur"}
    contact = map_record(bc_sales.mapping("contacts"), {"companyNumber": "C1"}, "to_crm",
                         resolved={"parentcustomerid": "a-1"})
    assert contact.payload == {"parentcustomerid_account@odata.bind": "/accounts(a-1)"}


def test_uncoupled_lookup_is_a_field_error_and_empty_lookup_clears(bc_sales):
    customers = bc_sales.mapping("customers")
    result = map_record(customers, {"salespersonCode": "JR", "currencyId": None}, "to_crm",
                        resolved={"ownerid": None})
    assert result.payload == {"transactioncurrencyid@odata.bind": None}
    [error] = result.errors
    assert error.field == "salespersonCode ⇄ ownerid" and "not coupled" in error.message
    # Business Central's fields are not nullable: an id that refers to nothing is the nil GUID.
    nil = map_record(customers, {"currencyId": "00000000-0000-0000-0000-000000000000"}, "to_crm")
    assert nil.payload == {"transactioncurrencyid@odata.bind": None} and not nil.lookups
    invoice = map_record(bc_sales.mapping("sales-invoices"), {"customerId": None}, "to_crm")
    assert invoice.errors[0].field == "customerId ⇄ customerid" and "not_null" in invoice.errors[0].message


@settings(max_examples=60)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20),
       st.dates().map(lambda d: d.isoformat()),
       st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False).map(float),
       st.sampled_from([" ", "All"]))
def test_bidirectional_fields_round_trip(code, day, amount, blocked):
    """Mapping ERP → CRM then back gives the ERP values again, field by field."""
    m = ROUND_TRIP.mapping("rt")
    record = {"code": code, "day": day, "amount": amount, "blocked": blocked, "name": code.lower()}
    crm = map_record(m, record, "to_crm")
    assert crm.ok
    back = map_record(m, crm.payload, "to_erp")
    assert back.ok and back.payload == record


def test_convert_raises_where_map_record_collects(build):
    m = build(table(fields=[{"erp": "a", "crm": "b", "value_map": {"values": {"x": 1}}}])).mapping("customers")
    f = m.fields[0]
    assert convert(m, f, "x", Direction.TO_CRM) == 1
    assert convert(m, f, 1, Direction.TO_ERP) == "x"
    with pytest.raises(ValueError):
        convert(m, f, "y", Direction.TO_CRM)
    assert Side.ERP.other is Side.CRM
