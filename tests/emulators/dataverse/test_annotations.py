"""`Prefer: odata.include-annotations`: exactly the requested annotations, formatted values, lookup annotations,
count annotations, `Preference-Applied`, on reads, writes, `$expand`, delta reads."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.dataverse.annotations import format_datetime, money, parse
from emulators.dataverse.core import Emulator

FORMATTED = "OData.Community.Display.V1.FormattedValue"
NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"
LOGICAL = "Microsoft.Dynamics.CRM.lookuplogicalname"
TOTAL = "Microsoft.Dynamics.CRM.totalrecordcount"
EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
SELECT = ("name,customertypecode,creditonhold,numberofemployees,createdon,creditlimit,_primarycontactid_value,"
          "_transactioncurrencyid_value,statecode")


def _prefer(value: str) -> dict[str, str]:
    return {"Prefer": f'odata.include-annotations="{value}"'}


def _terms(body: dict) -> set[str]:
    """The annotation terms present on the keys of a row or a collection."""
    return {k.split("@", 1)[1] for k in body if "@" in k and not k.startswith("@odata")}


async def _account(dv: httpx.AsyncClient, emu: Emulator, prefer: dict[str, str]) -> tuple[dict, httpx.Response]:
    account = next(a for a in emu.store.table("accounts").all() if a["_primarycontactid_value"])
    r = await dv.get(f"accounts({account['accountid']})?$select={SELECT}", headers=prefer)
    assert r.status_code == 200, r.text
    return account, r


async def test_without_the_preference_no_annotations(dv: httpx.AsyncClient, emu: Emulator) -> None:
    _, r = await _account(dv, emu, {})
    assert _terms(r.json()) == set() and "Preference-Applied" not in r.headers
    body = (await dv.get(f"accounts?$select={SELECT}")).json()
    assert all(_terms(row) == set() for row in body["value"]) and _terms(body) == set()


async def test_star_gives_formatted_values_and_lookup_annotations(dv: httpx.AsyncClient, emu: Emulator) -> None:
    chosen = next(a for a in emu.store.table("accounts").all() if a["_primarycontactid_value"])
    emu.store.table("accounts").update(chosen["accountid"], {"creditlimit": 1234.5}, emu.integration)
    account, r = await _account(dv, emu, _prefer("*"))
    row = r.json()
    assert r.headers["Preference-Applied"] == 'odata.include-annotations="*"'
    labels = emu.tables["accounts"].attrs["customertypecode"]
    assert row[f"customertypecode@{FORMATTED}"] == labels.label(account["customertypecode"])
    assert row[f"statecode@{FORMATTED}"] == "Active"
    assert row[f"creditonhold@{FORMATTED}"] == ("Yes" if account["creditonhold"] else "No")
    assert row[f"numberofemployees@{FORMATTED}"] == f"{account['numberofemployees']:,}"
    assert row[f"createdon@{FORMATTED}"] == format_datetime(account["createdon"])
    contact = emu.store.table("contacts").get(account["_primarycontactid_value"])
    assert row[f"_primarycontactid_value@{FORMATTED}"] == contact["fullname"]
    assert row[f"_primarycontactid_value@{NAV}"] == "primarycontactid"
    assert row[f"_primarycontactid_value@{LOGICAL}"] == "contact"
    currency = emu.store.table("transactioncurrencies").get(account["_transactioncurrencyid_value"])
    assert row[f"_transactioncurrencyid_value@{FORMATTED}"] == currency["currencyname"]
    assert row[f"creditlimit@{FORMATTED}"] == money(1234.5, currency["currencysymbol"], currency["currencyprecision"])
    # Each annotation sits right before its value, as the service writes them.
    keys = list(row)
    assert keys.index(f"customertypecode@{FORMATTED}") == keys.index("customertypecode") - 1
    assert "name@" + FORMATTED not in row  # text has no formatted value


def test_documented_formats() -> None:
    assert money(20000.0, "$") == "$20,000.00" and money(-5, "€") == "-€5.00"
    assert format_datetime("2023-04-07T21:59:01Z") == "4/7/2023 9:59 PM"
    assert format_datetime("2023-03-25T00:05:00Z") == "3/25/2023 12:05 AM"


async def test_a_single_term_gives_only_that_term(dv: httpx.AsyncClient, emu: Emulator) -> None:
    _, r = await _account(dv, emu, _prefer(FORMATTED))
    assert _terms(r.json()) == {FORMATTED}
    assert r.headers["Preference-Applied"] == f'odata.include-annotations="{FORMATTED}"'
    _, r = await _account(dv, emu, _prefer(f"{NAV},{LOGICAL}"))
    assert _terms(r.json()) == {NAV, LOGICAL}
    assert r.headers["Preference-Applied"] == f'odata.include-annotations="{NAV},{LOGICAL}"'


async def test_wildcard_prefixes_and_exclusions(dv: httpx.AsyncClient, emu: Emulator) -> None:
    _, r = await _account(dv, emu, _prefer("OData.Community.Display.V1.*"))
    assert _terms(r.json()) == {FORMATTED}
    _, r = await _account(dv, emu, _prefer("Microsoft.Dynamics.CRM.*"))
    assert _terms(r.json()) == {NAV, LOGICAL}
    body = (await dv.get("accounts?$select=name&$top=1", headers=_prefer("Microsoft.Dynamics.CRM.*"))).json()
    assert body[f"@{TOTAL}"] == -1 and body[f"@{EXCEEDED}"] is False  # -1 without $count
    _, r = await _account(dv, emu, _prefer(f"*,-{LOGICAL}"))
    assert _terms(r.json()) == {FORMATTED, NAV}


TERMS = [FORMATTED, NAV, LOGICAL, TOTAL, EXCEEDED, "OData.Community.Display.V1.*", "Microsoft.Dynamics.CRM.*",
         "Microsoft.*", "*", "Other.Term"]


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(asked=st.lists(st.sampled_from(TERMS), min_size=1, max_size=4, unique=True))
async def test_exactly_what_was_asked(dv: httpx.AsyncClient, emu: Emulator, asked: list[str]) -> None:
    r = await dv.get(f"accounts?$select={SELECT}&$count=true&$top=3", headers=_prefer(",".join(asked)))
    body = r.json()
    wanted = parse(",".join(asked))
    got = _terms(body) | {t for row in body["value"] for t in _terms(row)}
    assert got == {t for t in (FORMATTED, NAV, LOGICAL, TOTAL, EXCEEDED) if wanted.wants(t)}
    assert r.headers["Preference-Applied"] == f'odata.include-annotations="{",".join(asked)}"'
    if wanted.wants(TOTAL):
        assert body[f"@{TOTAL}"] == body["@odata.count"] == len(emu.store.table("accounts"))


async def test_polymorphic_lookup_names_its_navigation_property(dv: httpx.AsyncClient, emu: Emulator) -> None:
    contact = next(c for c in emu.store.table("contacts").all() if c["_parentcustomerid_value"])
    r = await dv.get(f"contacts({contact['contactid']})?$select=_parentcustomerid_value", headers=_prefer("*"))
    row = r.json()
    assert row[f"_parentcustomerid_value@{NAV}"] == "parentcustomerid_account"
    assert row[f"_parentcustomerid_value@{LOGICAL}"] == "account"
    account = emu.store.table("accounts").get(contact["_parentcustomerid_value"])
    assert row[f"_parentcustomerid_value@{FORMATTED}"] == account["name"]


async def test_writes_with_representation(dv: httpx.AsyncClient, emu: Emulator) -> None:
    currency = next(c for c in emu.store.table("transactioncurrencies").all() if c["isocurrencycode"] == "EUR")
    bind = f"/transactioncurrencies({currency['transactioncurrencyid']})"
    r = await dv.post("accounts?$select=name,creditlimit,customertypecode",
                      json={"name": "Annotated", "creditlimit": 1234.5, "customertypecode": 3,
                            "transactioncurrencyid@odata.bind": bind},
                      headers={"Prefer": f'return=representation,odata.include-annotations="{FORMATTED}"'})
    assert r.status_code == 201, r.text
    assert r.headers["Preference-Applied"] == f'return=representation,odata.include-annotations="{FORMATTED}"'
    row = r.json()
    assert row[f"creditlimit@{FORMATTED}"] == money(1234.5, currency["currencysymbol"])
    assert row[f"customertypecode@{FORMATTED}"] == "Customer"
    plain = await dv.post("accounts", json={"name": "Plain"}, headers={"Prefer": "return=representation"})
    assert plain.headers["Preference-Applied"] == "return=representation" and _terms(plain.json()) == set()


async def test_delta_and_expanded_rows_are_annotated(dv: httpx.AsyncClient, emu: Emulator) -> None:
    headers = {"Prefer": f'odata.track-changes,odata.include-annotations="{FORMATTED}"'}
    body = (await dv.get("accounts?$select=customertypecode", headers=headers)).json()
    account = next(emu.store.table("accounts").all())
    await dv.patch(f"accounts({account['accountid']})", json={"customertypecode": 1})
    r = await dv.get(body["@odata.deltaLink"], headers={"Prefer": f'odata.include-annotations="{FORMATTED}"'})
    assert r.headers["Preference-Applied"] == f'odata.include-annotations="{FORMATTED}"'
    assert r.json()["value"][0][f"customertypecode@{FORMATTED}"] == "Competitor"
    r = await dv.get(f"accounts({account['accountid']})?$select=name&$expand=contact_customer_accounts("
                     "$select=statecode),transactioncurrencyid($select=currencyprecision)", headers=_prefer(FORMATTED))
    row = r.json()
    assert row["contact_customer_accounts"]
    assert all(c[f"statecode@{FORMATTED}"] == "Active" for c in row["contact_customer_accounts"])
    precision = row["transactioncurrencyid"]["currencyprecision"]
    assert row["transactioncurrencyid"][f"currencyprecision@{FORMATTED}"] == f"{precision:,}"
