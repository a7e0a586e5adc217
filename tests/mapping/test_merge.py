"""Per-field diff, snapshots and the three-way merge."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import ConflictPolicy, Side, Snapshot, diff, field_values, map_record, three_way_merge

NAME, PHONE, STATE, CUR = "displayName ⇄ name", "phoneNumber ⇄ telephone1", "blocked ⇄ statecode", \
    "currencyId ⇄ transactioncurrencyid"
ERP = {"number": "C1", "displayName": "Contoso", "phoneNumber": "1", "blocked": " ", "currencyId": "e-1"}
CRM = {"accountnumber": "C1", "name": "Contoso", "telephone1": "1", "statecode": 0,
       "_transactioncurrencyid_value": "c-1"}


@pytest.fixture
def customers(bc_sales):
    return bc_sales.mapping("customers")


@pytest.fixture
def base(customers):
    return Snapshot(field_values(customers, ERP, Side.ERP), field_values(customers, CRM, Side.CRM))


def test_field_values_read_lookups_as_returned(customers):
    values = field_values(customers, CRM, Side.CRM)
    assert values[CUR] == "c-1" and values[NAME] == "Contoso"


def test_diff_is_per_field_and_treats_null_as_empty_string():
    assert diff({"a": 1, "b": "x", "c": None}, {"a": 1.0, "b": "y", "c": ""}) == {"b"}
    assert diff({"a": 1}, {}) == {"a"}


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.integers(), st.text(), st.booleans())))
def test_unchanged_record_has_empty_diff(values):
    assert diff(values, dict(values)) == set()


@given(st.fixed_dictionaries({k: st.one_of(st.none(), st.text(max_size=8)) for k in
                              ("displayName", "phoneNumber", "email", "city")}))
def test_unchanged_record_merges_to_nothing(bc_sales, record):
    customers = bc_sales.mapping("customers")
    erp = {**ERP, **record}
    crm = map_record(customers, erp, "to_crm").payload
    base = Snapshot(field_values(customers, erp, Side.ERP), field_values(customers, crm, Side.CRM))
    result = three_way_merge(customers, base, base.erp, base.crm)
    assert result.unchanged


def test_changes_on_different_fields_both_survive(customers, base):
    erp = field_values(customers, {**ERP, "displayName": "Contoso Ltd"}, Side.ERP)
    crm = field_values(customers, {**CRM, "telephone1": "2"}, Side.CRM)
    result = three_way_merge(customers, base, erp, crm)
    assert (result.to_crm, result.to_erp, result.conflicts) == ({NAME}, {PHONE}, [])
    assert map_record(customers, {**ERP, "displayName": "Contoso Ltd"}, "to_crm", only=result.to_crm).payload == {
        "name": "Contoso Ltd"}


def test_same_change_on_both_sides_is_no_conflict(customers, base):
    erp = field_values(customers, {**ERP, "blocked": "All"}, Side.ERP)
    crm = field_values(customers, {**CRM, "statecode": 1}, Side.CRM)
    assert three_way_merge(customers, base, erp, crm, ConflictPolicy.ERROR).unchanged


@pytest.mark.parametrize(("policy", "to_crm", "to_erp", "winner"), [
    (ConflictPolicy.ERROR, set(), set(), None),
    (ConflictPolicy.ERP_WINS, {NAME}, set(), Side.ERP),
    (ConflictPolicy.CRM_WINS, set(), {NAME}, Side.CRM),
])
def test_conflict_policies(customers, base, policy, to_crm, to_erp, winner):
    erp = field_values(customers, {**ERP, "displayName": "A"}, Side.ERP)
    crm = field_values(customers, {**CRM, "name": "B"}, Side.CRM)
    result = three_way_merge(customers, base, erp, crm, policy)
    assert (result.to_crm, result.to_erp) == (to_crm, to_erp)
    [conflict] = result.conflicts
    assert (conflict.field, conflict.base, conflict.erp, conflict.crm, conflict.winner) == (
        NAME, "Contoso", "A", "B", winner)
    assert bool(result.unresolved) is (winner is None)


def test_newest_wins_uses_modified_times(customers, base):
    erp = field_values(customers, {**ERP, "displayName": "A"}, Side.ERP)
    crm = field_values(customers, {**CRM, "name": "B"}, Side.CRM)
    t1, t2 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    newer_crm = three_way_merge(customers, base, erp, crm, ConflictPolicy.NEWEST_WINS, erp_modified=t1,
                                crm_modified=t2)
    assert newer_crm.to_erp == {NAME} and not newer_crm.to_crm
    newer_erp = three_way_merge(customers, base, erp, crm, ConflictPolicy.NEWEST_WINS, erp_modified=t2,
                                crm_modified=t1)
    assert newer_erp.to_crm == {NAME}
    unknown = three_way_merge(customers, base, erp, crm, ConflictPolicy.NEWEST_WINS)
    assert unknown.unresolved


def test_one_way_fields_only_travel_their_way(bc_sales):
    customers = bc_sales.mapping("customers")  # salespersonCode → ownerid is to_crm only
    erp_rec = {**ERP, "salespersonCode": "JR"}
    crm_rec = {**CRM, "_ownerid_value": "u-1"}
    base = Snapshot(field_values(customers, erp_rec, Side.ERP), field_values(customers, crm_rec, Side.CRM))
    owner = "salespersonCode ⇄ ownerid"
    new_owner = field_values(customers, {**crm_rec, "_ownerid_value": "u-2"}, Side.CRM)
    crm_changed = three_way_merge(customers, base, base.erp, new_owner)
    assert crm_changed.unchanged  # a CRM owner change does not flow back to BC
    new_code = field_values(customers, {**erp_rec, "salespersonCode": "PS"}, Side.ERP)
    erp_changed = three_way_merge(customers, base, new_code, base.crm)
    assert erp_changed.to_crm == {owner}


def test_snapshot_round_trips_and_hashes(base):
    again = Snapshot.from_json(base.to_json())
    assert again == base and again.digest() == base.digest()
    assert Snapshot(erp={**base.erp, NAME: "x"}, crm=base.crm).digest() != base.digest()
