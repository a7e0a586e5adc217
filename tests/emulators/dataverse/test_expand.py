"""`$expand`: single- and collection-valued navigation properties, nested options, paging of expanded
collections and their nextLinks, filtered collections, `$ref`, and the documented refusals."""

from __future__ import annotations

from collections import defaultdict

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.dataverse.core import Emulator
from emulators.dataverse.expand import ONLY_SELECT_FILTER, REF_ONLY_LOOKUP
from tests.emulators.dataverse.conftest import API, BASE


def _contacts_by_account(emu: Emulator) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for c in emu.store.table("contacts").all():
        if c.get("_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname") == "account":
            out[c["_parentcustomerid_value"]].append(c)
    return out


def _error(r: httpx.Response, code: str) -> str:
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code, r.text
    return r.json()["error"]["message"]


async def test_single_valued_navigation_properties(dv: httpx.AsyncClient, emu: Emulator) -> None:
    r = await dv.get("accounts?$select=name&$expand=primarycontactid($select=fullname),createdby($select=fullname),"
                     "transactioncurrencyid($select=isocurrencycode)")
    body = r.json()
    assert body["@odata.context"] == (f"{BASE}{API}/$metadata#accounts(name,primarycontactid(fullname),"
                                      "createdby(fullname),transactioncurrencyid(isocurrencycode))")
    for row in body["value"]:
        account = emu.store.table("accounts").get(row["accountid"])
        contact = row["primarycontactid"]
        if account["_primarycontactid_value"] is None:
            assert contact is None
        else:
            assert contact == {"fullname": emu.store.table("contacts").get(contact["contactid"])["fullname"],
                               "contactid": account["_primarycontactid_value"]}  # no etag, as documented
        assert row["createdby"]["systemuserid"] == account["_createdby_value"]
        currency = emu.store.table("transactioncurrencies").get(account["_transactioncurrencyid_value"])
        assert row["transactioncurrencyid"]["isocurrencycode"] == currency["isocurrencycode"]
        assert "_primarycontactid_value" not in row  # not selected


async def test_polymorphic_lookup_expands_only_its_own_table(dv: httpx.AsyncClient, emu: Emulator) -> None:
    parent = next(emu.store.table("contacts").all())
    r = await dv.post("contacts", json={"lastname": "Child", "parentcustomerid_contact@odata.bind":
                                        f"/contacts({parent['contactid']})"},
                      headers={"Prefer": "return=representation"})
    child = r.json()["contactid"]
    r = await dv.get(f"contacts({child})?$select=lastname&$expand=parentcustomerid_contact($select=lastname),"
                     "parentcustomerid_account($select=name)")
    row = r.json()
    assert row["parentcustomerid_account"] is None
    assert row["parentcustomerid_contact"]["contactid"] == parent["contactid"]


async def test_collection_valued_with_filter_orderby_top(dv: httpx.AsyncClient, emu: Emulator) -> None:
    by_account = _contacts_by_account(emu)
    aid = max(by_account, key=lambda a: len(by_account[a]))
    r = await dv.get(f"accounts?$select=name&$filter=accountid eq {aid}&$expand=contact_customer_accounts("
                     "$select=lastname;$filter=statecode eq 0;$orderby=lastname desc;$top=2)")
    row = r.json()["value"][0]
    expected = sorted((c for c in by_account[aid] if c["statecode"] == 0), key=lambda c: c["lastname"],
                      reverse=True)[:2]
    assert [c["contactid"] for c in row["contact_customer_accounts"]] == [c["contactid"] for c in expected]
    for c in row["contact_customer_accounts"]:
        assert set(c) == {"@odata.etag", "lastname", "_parentcustomerid_value", "contactid"}
    link = row["contact_customer_accounts@odata.nextLink"]
    assert link == (f"{BASE}{API}/accounts({aid})/contact_customer_accounts?$select=lastname&$filter=statecode%20"
                    "eq%200&$orderby=lastname%20desc&$top=2")
    followed = (await dv.get(link)).json()  # "returns the same rows that were returned in your original request"
    assert [(c["contactid"], c["lastname"]) for c in followed["value"]] == [
        (c["contactid"], c["lastname"]) for c in row["contact_customer_accounts"]]


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(0, 19), min_size=1, max_size=5, unique=True))
async def test_expanded_collection_is_the_referencing_rows(dv: httpx.AsyncClient, emu: Emulator,
                                                           picks: list[int]) -> None:
    accounts = sorted(a["accountid"] for a in emu.store.table("accounts").all())
    chosen = [accounts[i % len(accounts)] for i in picks]
    filt = " or ".join(f"accountid eq {a}" for a in chosen)
    body = (await dv.get(f"accounts?$select=name&$filter={filt}&$expand=contact_customer_accounts($select=fullname)"
                         )).json()
    by_account = _contacts_by_account(emu)
    assert {row["accountid"] for row in body["value"]} == set(chosen)
    for row in body["value"]:
        assert sorted(c["contactid"] for c in row["contact_customer_accounts"]) == sorted(
            c["contactid"] for c in by_account[row["accountid"]])


async def test_single_record_expansions_carry_no_next_link(dv: httpx.AsyncClient, emu: Emulator) -> None:
    aid = next(iter(_contacts_by_account(emu)))
    row = (await dv.get(f"accounts({aid})?$select=name&$expand=contact_customer_accounts($select=fullname)")).json()
    assert row["@odata.context"] == f"{BASE}{API}/$metadata#accounts(name,contact_customer_accounts(fullname))/$entity"
    assert row["contact_customer_accounts"] and "contact_customer_accounts@odata.nextLink" not in row


async def test_nested_expand_pages_each_collection(dv: httpx.AsyncClient, emu: Emulator) -> None:
    by_account = _contacts_by_account(emu)
    aid = next(a for a, cs in by_account.items() if len(cs) >= 1)
    extra = [await dv.post("contacts", json={"lastname": f"Extra {i}", "parentcustomerid_account@odata.bind":
                                             f"/accounts({aid})"}) for i in range(2)]
    assert all(r.status_code == 204 for r in extra)
    headers = {"Prefer": "odata.maxpagesize=1"}
    r = await dv.get(f"accounts?$select=name&$filter=accountid eq {aid}&$expand=contact_customer_accounts("
                     "$select=lastname;$expand=createdby($select=fullname))", headers=headers)
    row = r.json()["value"][0]
    seen = [c["contactid"] for c in row["contact_customer_accounts"]]
    assert len(seen) == 1 and row["contact_customer_accounts"][0]["createdby"]["fullname"]
    link = row["contact_customer_accounts@odata.nextLink"]
    assert "$skiptoken=" in link and "$expand=createdby($select=fullname)" in link
    while link:
        page = (await dv.get(link, headers=headers)).json()
        assert len(page["value"]) <= 1 and all("createdby" in c for c in page["value"])
        seen += [c["contactid"] for c in page["value"]]
        link = page.get("@odata.nextLink")
    expected = [c["contactid"] for c in _contacts_by_account(emu)[aid]]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)) == len(by_account[aid]) + 2


async def test_without_nested_expand_collections_are_not_paged(dv: httpx.AsyncClient, emu: Emulator) -> None:
    aid = next(iter(_contacts_by_account(emu)))
    for i in range(3):
        await dv.post("contacts", json={"lastname": f"More {i}", "parentcustomerid_account@odata.bind":
                                        f"/accounts({aid})"})
    r = await dv.get(f"accounts?$filter=accountid eq {aid}&$expand=contact_customer_accounts($select=lastname)",
                     headers={"Prefer": "odata.maxpagesize=1"})
    row = r.json()["value"][0]
    assert len(row["contact_customer_accounts"]) == len(_contacts_by_account(emu)[aid]) >= 4
    assert "$skiptoken" not in row["contact_customer_accounts@odata.nextLink"]


async def test_documented_expand_refusals(dv: httpx.AsyncClient) -> None:
    msg = _error(await dv.get("accounts?$expand=nosuch"), "0x80060888")
    assert msg == "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.account'."
    for query in ("$expand=primarycontactid($top=1)", "$expand=primarycontactid($orderby=fullname)",
                  "$expand=contact_customer_accounts($orderby=fullname;$expand=createdby)",
                  "$expand=contact_customer_accounts($top=2),primarycontactid($expand=createdby)"):
        assert _error(await dv.get(f"accounts?{query}"), "0x80060888") == ONLY_SELECT_FILTER, query
    assert _error(await dv.get("accounts?$expand=contact_customer_accounts/$ref"), "0x80060888") == REF_ONLY_LOOKUP
    for inner in ("$skip=1", "$count=true", "$search=x", "$levels=2", "$foo=1"):
        r = await dv.get(f"accounts?$expand=contact_customer_accounts({inner})")
        assert _error(r, "0x80060888").startswith("The query parameter"), inner
    for bad in ("primarycontactid(", "primarycontactid($select=nosuch)", "contact_customer_accounts($filter=x eq)",
                "primarycontactid($filter=fullname eq 'x')", "contact_customer_accounts($filter=@p1 eq 1)"):
        assert (await dv.get(f"accounts?$expand={bad}&@p1=1")).status_code == 400, bad


async def test_at_most_15_expand_options(dv: httpx.AsyncClient) -> None:
    def chain(n: int) -> str:
        return "createdby" if n == 1 else f"createdby($expand={chain(n - 1)})"

    assert (await dv.get(f"accounts?$select=name&$top=1&$expand={chain(15)}")).status_code == 200
    r = await dv.get(f"accounts?$select=name&$top=1&$expand={chain(16)}")
    assert _error(r, "0x8004430D") == "Number of link entities in query exceeded maximum limit."


async def test_ref_gives_the_related_url(dv: httpx.AsyncClient, emu: Emulator) -> None:
    account = next(a for a in emu.store.table("accounts").all() if a["_primarycontactid_value"])
    row = (await dv.get(f"accounts({account['accountid']})?$select=name&$expand=primarycontactid/$ref")).json()
    assert row["primarycontactid"] == {"@odata.id": f"{BASE}{API}/contacts({account['_primarycontactid_value']})"}
    assert row["_primarycontactid_value"] == account["_primarycontactid_value"]


async def test_related_records_by_path(dv: httpx.AsyncClient, emu: Emulator) -> None:
    account = next(a for a in emu.store.table("accounts").all() if a["_primarycontactid_value"])
    aid = account["accountid"]
    r = await dv.get(f"accounts({aid})/primarycontactid?$select=fullname")
    assert r.json()["@odata.context"] == f"{BASE}{API}/$metadata#contacts(fullname)/$entity"
    assert r.json()["contactid"] == account["_primarycontactid_value"]
    r = await dv.get(f"accounts({aid})/name")
    assert r.json() == {"@odata.context": f"{BASE}{API}/$metadata#accounts({aid})/name", "value": account["name"]}
    r = await dv.get(f"accounts({aid})/contact_customer_accounts?$select=lastname&$count=true")
    assert r.json()["@odata.count"] == len(_contacts_by_account(emu)[aid])
    assert (await dv.get(f"accounts({aid})/nosuch")).status_code == 404
    assert (await dv.get(f"accounts({aid})/contact_customer_accounts?$foo=1")).status_code == 400
    missing = "00000000-0000-0000-0000-0000000000aa"
    assert (await dv.get(f"accounts({missing})/contact_customer_accounts")).status_code == 404
