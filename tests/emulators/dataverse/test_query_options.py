"""Query options: refusals of what the Web API does not take, parameter aliases, single-record limits, `$apply`."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.dataverse.core import Emulator
from emulators.dataverse.options import NOT_A_COLLECTION

ANNOTATE = {"Prefer": 'odata.include-annotations="*"'}


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    return r.json()["error"]["message"]


async def test_documented_unsupported_and_unknown_options_are_refused(dv: httpx.AsyncClient) -> None:
    # Microsoft Learn: $skip, $search, $format unsupported; option names are case-sensitive; the preview `sql`
    # option answers as an environment without it; any other parameter "is not supported".
    for name, value in [("$skip", "5"), ("$search", "x"), ("$format", "json"), ("$levels", "2"),
                        ("$compute", "x"), ("$Select", "name"), ("sql", "SELECT name FROM account"),
                        ("utm_source", "x")]:
        r = await dv.get(f"accounts?{name}={quote(value)}")
        assert _error(r, 400, "0x80060888") == f"The query parameter {name} is not supported", name


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.from_regex(r"\$?[a-z][a-zA-Z]{0,10}", fullmatch=True))
async def test_any_unknown_option_is_refused_never_ignored(dv: httpx.AsyncClient, name: str) -> None:
    known = {"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$apply", "$skiptoken",
             "$deltatoken", "fetchXml", "savedQuery", "userQuery"}
    if name in known:
        return
    r = await dv.get(f"accounts?{name}=1")
    assert _error(r, 400, "0x80060888") == f"The query parameter {name} is not supported"


async def test_saved_and_user_views_that_do_not_exist(dv: httpx.AsyncClient) -> None:
    rid = str(uuid.uuid4())
    r = await dv.get(f"accounts?savedQuery={rid}")
    assert _error(r, 404, "0x80040217") == f"Entity 'savedquery' With Id = {rid} Does Not Exist"
    assert (await dv.get(f"accounts?userQuery={rid}")).status_code == 404
    assert (await dv.get("accounts?savedQuery=nope")).status_code == 400


async def test_single_record_takes_select_and_expand_only(dv: httpx.AsyncClient, emu: Emulator) -> None:
    aid = next(emu.store.table("accounts").all())["accountid"]
    for query in ("$filter=name eq 'x'", "$top=1", "$orderby=name", "$count=true", "$skiptoken=abc",
                  "$apply=aggregate($count as n)", "fetchXml=%3Cfetch/%3E"):
        r = await dv.get(f"accounts({aid})?{query}")
        assert _error(r, 400, "0x80060888") == NOT_A_COLLECTION, query
    r = await dv.get(f"accounts({aid})?$foo=1")
    assert _error(r, 400, "0x80060888") == "The query parameter $foo is not supported"
    r = await dv.get(f"accounts({aid})?$select=name&$expand=primarycontactid($select=fullname)")
    assert r.status_code == 200 and "primarycontactid" in r.json()


async def test_parameter_aliases_in_filter_and_orderby(dv: httpx.AsyncClient, emu: Emulator) -> None:
    name = next(emu.store.table("accounts").all())["name"]
    direct = await dv.get(f"accounts?$select=name&$filter=name eq '{quote(name)}'&$orderby=name desc")
    aliased = await dv.get(f"accounts?$select=name&$filter=@p1 eq @p2&$orderby=@p1 desc&@p1=name"
                           f"&@p2='{quote(name)}'")
    assert aliased.status_code == 200, aliased.text
    assert aliased.json()["value"] == direct.json()["value"] and len(direct.json()["value"]) == 1
    # An alias given no value is null; a quoted '@p1' stays text.
    unset = await dv.get("accounts?$select=name&$filter=telephone2 eq @missing&$count=true")
    nulls = await dv.get("accounts?$select=name&$filter=telephone2 eq null&$count=true")
    assert unset.json()["@odata.count"] == nulls.json()["@odata.count"]
    literal = await dv.get("accounts?$filter=name eq '@p1'&@p1=name")
    assert literal.json()["value"] == []


async def test_aliases_survive_paging(dv: httpx.AsyncClient, emu: Emulator) -> None:
    headers = {"Prefer": "odata.maxpagesize=3"}
    url, seen = "accounts?$select=name&$filter=@f eq 0&@f=statecode", []
    while url:
        body = (await dv.get(url, headers=headers)).json()
        seen += [a["accountid"] for a in body["value"]]
        url = body.get("@odata.nextLink")
    active = [a for a in emu.store.table("accounts").all() if a["statecode"] == 0]
    assert sorted(seen) == sorted(a["accountid"] for a in active)


async def test_combinations_the_service_refuses(dv: httpx.AsyncClient) -> None:
    fetch = quote("<fetch><entity name='account'><attribute name='name'/></entity></fetch>")
    for query in (f"fetchXml={fetch}&$select=name", f"fetchXml={fetch}&$filter=name eq 'x'",
                  f"fetchXml={fetch}&$top=1", "$apply=aggregate($count as n)&$select=name",
                  "$apply=aggregate($count as n)&$filter=statecode eq 0"):
        assert (await dv.get(f"accounts?{query}")).status_code == 400, query
    assert (await dv.get(f"accounts?fetchXml={fetch}&$count=true")).status_code == 200  # documented pairing
    track = {"Prefer": "odata.track-changes"}
    for query in ("$apply=aggregate($count as n)", f"fetchXml={fetch}"):
        r = await dv.get(f"accounts?{query}", headers=track)
        assert r.status_code == 400, query


async def test_count_is_capped_at_5000(dv: httpx.AsyncClient, emu: Emulator) -> None:
    table = emu.store.table("uomschedules")
    for i in range(5001 - len(table)):
        table.insert({"name": f"Schedule {i}"}, emu.integration)
    body = (await dv.get("uomschedules?$select=name&$count=true&$top=1",
                         headers={"Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.*"'})).json()
    assert body["@odata.count"] == 5000
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == 5000
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is True


# ----- $apply

async def test_apply_groupby_with_count_and_sum(dv: httpx.AsyncClient, emu: Emulator) -> None:
    rows = list(emu.store.table("accounts").all())
    r = await dv.get("accounts?$apply=groupby((customertypecode),aggregate($count as n,numberofemployees with sum "
                     "as staff))", headers=ANNOTATE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"].endswith("/$metadata#accounts")
    assert r.headers["Preference-Applied"] == 'odata.include-annotations="*"'
    expected = {}
    for a in rows:
        n, staff = expected.get(a["customertypecode"], (0, 0))
        expected[a["customertypecode"]] = (n + 1, staff + (a["numberofemployees"] or 0))
    assert {g["customertypecode"]: (g["n"], g["staff"]) for g in body["value"]} == expected
    assert [g["customertypecode"] for g in body["value"]] == sorted(expected)
    attr = emu.tables["accounts"].attrs["customertypecode"]
    for group in body["value"]:
        assert group["customertypecode@OData.Community.Display.V1.FormattedValue"] == attr.label(
            group["customertypecode"])
        assert group["n@OData.Community.Display.V1.FormattedValue"] == f"{group['n']:,}"
        assert group["staff@OData.Community.Display.V1.FormattedValue"] == f"{group['staff']:,}"


async def test_apply_distinct_values_filter_and_aggregate(dv: httpx.AsyncClient, emu: Emulator) -> None:
    rows = list(emu.store.table("accounts").all())
    r = await dv.get("accounts?$apply=groupby((statecode,statuscode))")
    assert {(g["statecode"], g["statuscode"]) for g in r.json()["value"]} == {
        (a["statecode"], a["statuscode"]) for a in rows}
    r = await dv.get("accounts?$apply=filter(customertypecode eq 3)/aggregate(createdon with max as last,"
                     "numberofemployees with average as avg)")
    customers = [a for a in rows if a["customertypecode"] == 3]
    value = r.json()["value"]
    assert value == [{"last": max(a["createdon"] for a in customers),
                      "avg": sum(a["numberofemployees"] for a in customers) / len(customers)}]
    r = await dv.get("accounts?$apply=groupby((customertypecode))&$orderby=customertypecode desc&$top=1")
    assert r.json()["value"] == [{"customertypecode": max(a["customertypecode"] for a in rows)}]


async def test_apply_documented_limits(dv: httpx.AsyncClient) -> None:
    r = await dv.get("accounts?$apply=groupby((statuscode),aggregate($count as n))&$orderby=n")
    assert _error(r, 400, "0x80060888") == "The query node SingleValueOpenPropertyAccess is not supported"
    for apply in ("groupby((createdon))", "aggregate(name with countdistinct as n)", "groupby((nosuch))",
                  "groupby((primarycontactid/fullname))", "aggregate(name with sum as n)", "topcount(1,name)",
                  "groupby((statuscode))/filter(statuscode eq 1)", "filter(statecode eq 0)"):
        assert (await dv.get(f"accounts?$apply={apply}")).status_code == 400, apply


async def test_apply_record_limit(dv: httpx.AsyncClient, monkeypatch: object) -> None:
    from emulators.dataverse import aggregate

    monkeypatch.setattr(aggregate, "RECORD_LIMIT", 5)  # type: ignore[attr-defined]
    r = await dv.get("accounts?$apply=aggregate($count as n)")
    assert _error(r, 400, "0x8004E023") == "AggregateQueryRecordLimit exceeded. Cannot perform this operation."
