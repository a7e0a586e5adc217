"""F&O record ids: composite keys encoded once (`key_predicate`), read back exactly, and never able to break a
URL or a `$filter`; key-order reads that resume after a composite key."""

from __future__ import annotations

import uuid
from decimal import Decimal
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.connectors.base import PermanentError
from shared.connectors.finance_operations import FinanceOperationsConnector, pack_keys
from shared.connectors.odata import key_predicate, parse_key_predicate
from shared.mapping import load_pack
from tests.support.credentials import EmulatorCredential
from tests.sync.conftest import ROOT

_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@given(company=st.sampled_from(["usmf", "demf", "GBSI"]), account=_text)
def test_a_composite_key_round_trips_whatever_it_holds(company: str, account: str) -> None:
    key = {"dataAreaId": company, "CustomerAccount": account}
    text = key_predicate(key)
    assert parse_key_predicate(text) == key


def test_quotes_are_doubled_and_numbers_stay_numbers() -> None:
    assert key_predicate({"dataAreaId": "usmf", "CustomerAccount": "O'Brien"}) == \
        "dataAreaId='usmf',CustomerAccount='O''Brien'"
    assert parse_key_predicate("dataAreaId='usmf',LineNumber=3,Qty=1.5") == \
        {"dataAreaId": "usmf", "LineNumber": 3, "Qty": Decimal("1.5")}
    assert parse_key_predicate("Flag=Microsoft.Dynamics.DataEntities.NoYes'Yes'") == {"Flag": "Yes"}


@pytest.mark.parametrize("bad", ["", "CustomerAccount", "A='x", "A='x',A='y'", "A='x' B='y'", "A=x", "1A='x'"])
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(PermanentError):
        parse_key_predicate(bad)


def connector(**kwargs: object) -> FinanceOperationsConnector:
    http = httpx.AsyncClient()
    credential = EmulatorCredential(http, "http://fo.test", "t", "c", "s")
    return FinanceOperationsConnector(http, credential, base_url="http://fo.test", **kwargs)  # type: ignore[arg-type]


@given(account=_text)
def test_a_key_url_names_exactly_one_record_whatever_the_value(account: str) -> None:
    fo = connector()
    record_id = key_predicate({"dataAreaId": "usmf", "CustomerAccount": account})
    url = fo.url("CustomersV3", record_id)
    path = httpx.URL(url).raw_path.decode()  # what goes on the wire
    segment = path.split("/data/CustomersV3", 1)[1]
    assert "/" not in segment and "?" not in segment and "#" not in segment
    assert parse_key_predicate(unquote(segment)[1:-1]) == {"dataAreaId": "usmf", "CustomerAccount": account}


def test_an_id_of_another_entity_is_refused() -> None:
    fo = connector()
    with pytest.raises(PermanentError, match="does not name the key of CustomersV3"):
        fo.url("CustomersV3", "VendorAccountNumber='V1',dataAreaId='usmf'")
    with pytest.raises(PermanentError, match="not known"):
        fo.url("UnknownThings", "A='1'")


def test_records_get_their_id_from_the_key_in_declared_order() -> None:
    fo = connector()
    record = fo.record("CustomersV3", {"@odata.etag": 'W/"x"', "CustomerAccount": "US-001", "dataAreaId": "usmf",
                                       "OrganizationName": "Contoso"})
    assert record.id == "dataAreaId='usmf',CustomerAccount='US-001'"
    assert record.etag == 'W/"x"' and "@odata.etag" not in record.values
    with pytest.raises(PermanentError, match="key property CustomerAccount"):
        fo.record("CustomersV3", {"dataAreaId": "usmf"})


def test_keyset_resumes_after_a_composite_key() -> None:
    fo = connector()
    orderby, after = fo.keyset("CustomersV3", "dataAreaId='usmf',CustomerAccount='US-0''7'")
    assert orderby == "dataAreaId asc,CustomerAccount asc"
    assert after == "(dataAreaId gt 'usmf') or (dataAreaId eq 'usmf' and CustomerAccount gt 'US-0''7')"
    assert fo.keyset("Currencies", None) == ("CurrencyCode asc", None)


def test_guid_keysets_stay_bare() -> None:
    from shared.connectors.dataverse import DataverseConnector
    from tests.support.connectors import DV_URL
    http = httpx.AsyncClient()
    credential = EmulatorCredential(http, DV_URL, "t", "c", "s")
    dv = DataverseConnector(http, credential, base_url=DV_URL)
    rid = str(uuid.uuid4())
    assert dv.keyset("accounts", rid) == ("accountid asc", f"accountid gt {rid}")


def test_ids_from_a_location_header() -> None:
    fo = connector()
    link = "http://fo.test/data/CustomersV3(dataAreaId='usmf',CustomerAccount='A%2F1')"
    assert fo.id_from_headers({"location": link}) == "dataAreaId='usmf',CustomerAccount='A/1'"
    assert fo.id_from_headers({}) is None


def test_pack_keys_cover_every_fo_entity_of_the_packs() -> None:
    for name in ("fo-dataverse", "prospect-to-cash"):
        pack = load_pack(ROOT / "templates" / f"{name}.yaml")
        keys = pack_keys(pack)
        assert {m.erp.entity for m in pack.mappings} == set(keys)
        assert keys["CustomersV3"] == ("dataAreaId", "CustomerAccount")
    assert pack_keys(load_pack(ROOT / "templates" / "bc-sales.yaml")) == {}
