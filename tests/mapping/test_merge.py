"""Per-field diff, snapshots and the three-way merge."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import Side, Snapshot, diff, field_values

NAME, PHONE, STATE, CUR = "displayName ⇄ name", "phoneNumber ⇄ telephone1", "blocked ⇄ statecode", \
    "currencyId ⇄ transactioncurrencyid"
ERP = {"number": "C1", "displayName": "Contoso", "phoneNumber": "1", "blocked": "_x0020_", "currencyId": "e-1"}
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


def test_snapshot_round_trips_and_hashes(base):
    again = Snapshot.from_json(base.to_json())
    assert again == base and again.digest() == base.digest()
    assert Snapshot(erp={**base.erp, NAME: "x"}, crm=base.crm).digest() != base.digest()
