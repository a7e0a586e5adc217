"""`?fetchXml=`: columns, filters, orders, paging cookies, counts, annotations and the refusals; a property test
checks that random filters give the same rows as FetchXml and as `$filter`."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree as ET

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.common.query import Query, run_query
from emulators.dataverse.core import Emulator, user_id_for
from shared.odata import evaluate_filter, parse_filter
from tests.emulators.dataverse.conftest import API, BASE

PAGING = {"Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.fetchxmlpagingcookie,'
                    'Microsoft.Dynamics.CRM.morerecords"'}


def fetch_url(entity_set: str, xml: str, extra: str = "") -> str:
    return f"{entity_set}?fetchXml={quote(xml, safe='')}{extra}"


async def _fetch(dv: httpx.AsyncClient, xml: str, entity_set: str = "accounts",
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = await dv.get(fetch_url(entity_set, xml), headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()


def _error(r: httpx.Response, code: str) -> str:
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code, r.text
    return r.json()["error"]["message"]


async def test_columns_top_and_no_null_properties(dv: httpx.AsyncClient, emu: Emulator) -> None:
    body = await _fetch(dv, "<fetch top='5'><entity name='account'><attribute name='name'/>"
                            "<attribute name='telephone2'/><attribute name='primarycontactid'/></entity></fetch>")
    assert body["@odata.context"] == (f"{BASE}{API}/$metadata#accounts(name,telephone2,_primarycontactid_value,"
                                      "accountid)")
    assert len(body["value"]) == 5
    for row in body["value"]:
        stored = emu.store.table("accounts").get(row["accountid"])
        assert row["@odata.etag"] == emu.etag(stored) and row["name"] == stored["name"]
        assert ("telephone2" in row) == (stored["telephone2"] is not None)  # nulls are left out
        assert row.get("_primarycontactid_value") == stored["_primarycontactid_value"]
    every = await _fetch(dv, "<fetch top='1'><entity name='account'><all-attributes/></entity></fetch>")
    assert "accountnumber" in every["value"][0] and every["@odata.context"].endswith("#accounts")


async def test_conditions(dv: httpx.AsyncClient, emu: Emulator) -> None:
    rows = list(emu.store.table("accounts").all())
    first = rows[0]

    async def ids(filter_xml: str) -> set[str]:
        body = await _fetch(dv, f"<fetch><entity name='account'><attribute name='name'/>{filter_xml}</entity></fetch>")
        return {r["accountid"] for r in body["value"]}

    def where(test: Any) -> set[str]:
        return {r["accountid"] for r in rows if test(r)}

    cond = "<filter><condition attribute='{}' operator='{}' value='{}'/></filter>"
    assert await ids(cond.format("name", "eq", first["name"].upper().replace("'", "&apos;"))) == {first["accountid"]}
    assert await ids(cond.format("name", "like", "%o%")) == where(lambda r: "o" in r["name"].lower())
    assert await ids(cond.format("name", "begins-with", "w")) == where(lambda r: r["name"].lower().startswith("w"))
    assert await ids(cond.format("transactioncurrencyid", "eq", "{" + first["_transactioncurrencyid_value"].upper()
                                 + "}")) == where(lambda r: r["_transactioncurrencyid_value"] ==
                                                  first["_transactioncurrencyid_value"])
    assert await ids(cond.format("creditonhold", "eq", "1")) == where(lambda r: r["creditonhold"] is True)
    assert await ids("<filter><condition attribute='telephone2' operator='null'/></filter>") == where(
        lambda r: r["telephone2"] is None)
    assert await ids("<filter><condition attribute='customertypecode' operator='in'><value>1</value><value>8</value>"
                     "</condition></filter>") == where(lambda r: r["customertypecode"] in (1, 8))
    assert await ids("<filter><condition attribute='numberofemployees' operator='between'><value>10</value>"
                     "<value>500</value></condition></filter>") == where(
        lambda r: r["numberofemployees"] is not None and 10 <= r["numberofemployees"] <= 500)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert await ids(cond.format("createdon", "on-or-after", today)) == where(lambda r: r["createdon"][:10] >= today)
    assert await ids(cond.format("createdby", "eq-userid", "").replace(" value=''", "")) == where(
        lambda r: r["_createdby_value"] == user_id_for("dualsync-integration"))
    assert await ids("<filter type='or'><condition attribute='name' operator='eq' valueof='accountnumber'/>"
                     "<filter><condition attribute='statecode' operator='ne' value='0'/></filter></filter>") == where(
        lambda r: r["name"] == r["accountnumber"] or r["statecode"] != 0)


async def test_orders_choice_by_label_unless_raw(dv: httpx.AsyncClient, emu: Emulator) -> None:
    labels = emu.tables["accounts"].attrs["customertypecode"]
    xml = ("<fetch{}><entity name='account'><attribute name='customertypecode'/>"
           "<order attribute='customertypecode' descending='true'/></entity></fetch>")
    by_label = [r["customertypecode"] for r in (await _fetch(dv, xml.format("")))["value"]]
    assert [labels.label(v) for v in by_label] == sorted((labels.label(v) for v in by_label), reverse=True)
    raw = [r["customertypecode"] for r in (await _fetch(dv, xml.format(" useraworderby='true'")))["value"]]
    assert raw == sorted(raw, reverse=True)


async def test_paging_cookie_as_documented(dv: httpx.AsyncClient, emu: Emulator) -> None:
    """The Web API paging loop of "Page results using FetchXml": decode `pagingcookie` twice, set it as the
    fetch's paging-cookie, increment page, until morerecords is absent."""
    fetch = ET.fromstring("<fetch count='3' page='1'><entity name='account'><attribute name='name'/>"
                          "<order attribute='name' descending='true'/></entity></fetch>")
    seen, pages = [], 0
    while True:
        body = await _fetch(dv, ET.tostring(fetch, encoding="unicode"), headers=PAGING)
        seen += [(r["name"], r["accountid"]) for r in body["value"]]
        pages += 1
        if not body.get("@Microsoft.Dynamics.CRM.morerecords"):
            assert "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie" not in body
            break
        cookie = ET.fromstring(body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"])
        assert cookie.get("pagenumber") == str(pages + 1) and cookie.get("istracking") == "False"
        fetch.set("paging-cookie", unquote(unquote(cookie.get("pagingcookie") or "")))
        fetch.set("page", str(pages + 1))
    rows = list(emu.store.table("accounts").all())
    assert sorted(a for _, a in seen) == sorted(r["accountid"] for r in rows)
    assert [n for n, _ in seen] == sorted((r["name"] for r in rows), key=str.casefold, reverse=True)
    assert pages == -(-len(rows) // 3)


async def test_cookie_resumes_after_the_last_row_even_when_rows_move(dv: httpx.AsyncClient, emu: Emulator) -> None:
    xml = ("<fetch count='4' page='{page}'{cookie}><entity name='account'><attribute name='name'/>"
           "<order attribute='name'/></entity></fetch>")
    first = await _fetch(dv, xml.format(page=1, cookie=""), headers=PAGING)
    cookie = unquote(unquote(ET.fromstring(first["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]).get("pagingcookie")))
    await dv.post("accounts", json={"name": "0 sorts first"})  # before the page already read
    attr = " paging-cookie='" + cookie.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;") + "'"
    second = await _fetch(dv, xml.format(page=2, cookie=attr), headers=PAGING)
    simple = await _fetch(dv, xml.format(page=2, cookie=""))
    names = sorted((r["name"] for r in emu.store.table("accounts").all()), key=str.casefold)
    assert [r["name"] for r in second["value"]] == names[5:9]  # keyset: continues after the 4 rows read
    assert [r["name"] for r in simple["value"]] == names[4:8]  # simple paging shifts


async def test_without_the_preference_no_paging_annotations(dv: httpx.AsyncClient) -> None:
    body = await _fetch(dv, "<fetch count='2'><entity name='account'><attribute name='name'/></entity></fetch>")
    assert not [k for k in body if k.startswith("@Microsoft")] and len(body["value"]) == 2


async def test_counts(dv: httpx.AsyncClient, emu: Emulator) -> None:
    total = len(emu.store.table("accounts"))
    xml = "<fetch count='2' returntotalrecordcount='true'><entity name='account'/></fetch>"
    body = await _fetch(dv, xml, headers={"Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.*"'})
    assert body["@odata.count"] == body["@Microsoft.Dynamics.CRM.totalrecordcount"] == total
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is False
    r = await dv.get(fetch_url("accounts", "<fetch count='2'><entity name='account'/></fetch>", "&$count=true"))
    assert r.json()["@odata.count"] == total and len(r.json()["value"]) == 2


async def test_formatted_values_on_fetch_rows(dv: httpx.AsyncClient) -> None:
    body = await _fetch(dv, "<fetch top='2'><entity name='account'><attribute name='customertypecode'/>"
                            "<attribute name='transactioncurrencyid'/></entity></fetch>",
                        headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'})
    row = body["value"][0]
    assert row["customertypecode@OData.Community.Display.V1.FormattedValue"]
    assert row["_transactioncurrencyid_value@OData.Community.Display.V1.FormattedValue"]
    assert "@Microsoft.Dynamics.CRM.totalrecordcount" not in body


async def test_distinct(dv: httpx.AsyncClient, emu: Emulator) -> None:
    body = await _fetch(dv, "<fetch distinct='true'><entity name='account'><attribute name='statecode'/>"
                            "<order attribute='statecode'/></entity></fetch>")
    assert body["value"] == [{"statecode": s} for s in sorted({a["statecode"] for a in emu.store.table(
        "accounts").all()})]


async def test_refusals(dv: httpx.AsyncClient) -> None:
    assert _error(await dv.get(fetch_url("accounts", "<fetch><entity name='account'>")), "0x80040201") == \
        "Invalid XML."
    dtd = "<!DOCTYPE fetch [<!ENTITY x 'y'>]><fetch><entity name='account'/></fetch>"
    assert _error(await dv.get(fetch_url("accounts", dtd)), "0x80040201") == "Invalid XML."
    msg = _error(await dv.get(fetch_url("accounts", "<fetch><entity name='nosuch'/></fetch>")), "0x80041102")
    assert msg == "The entity with a name = 'nosuch' with namemapping = 'Logical' was not found in the MetadataCache."
    r = await dv.get(fetch_url("accounts", "<fetch><entity name='account'><attribute name='nosuch'/></entity></fetch>"))
    assert _error(r, "0x80041103") == ("'account' entity doesn't contain attribute with Name = 'nosuch' and "
                                       "NameMapping = 'Logical'.")
    for xml in ("<fetch><entity name='contact'/></fetch>",
                "<fetch><entity name='account'><link-entity name='contact' from='parentcustomerid' "
                "to='accountid'/></entity></fetch>",
                "<fetch aggregate='true'><entity name='account'><attribute name='name' aggregate='count' "
                "alias='n'/></entity></fetch>",
                "<fetch><entity name='account'><attribute name='name' alias='n'/></entity></fetch>",
                "<fetch><entity name='account'><filter><condition attribute='name' operator='last-x-days' "
                "value='1'/></filter></entity></fetch>",
                "<fetch><entity name='account'><filter><condition attribute='name' operator='frobnicate' "
                "value='1'/></filter></entity></fetch>",
                "<fetch><entity name='account'><filter><condition attribute='numberofemployees' operator='eq' "
                "value='many'/></filter></entity></fetch>",
                "<fetch><entity name='account'><filter><condition attribute='numberofemployees' operator='like' "
                "value='1%'/></filter></entity></fetch>",
                "<fetch><entity name='account'><filter><condition attribute='name' operator='in'/></filter>"
                "</entity></fetch>",
                "<fetch top='2' page='1'><entity name='account'/></fetch>",
                "<fetch top='2' returntotalrecordcount='true'><entity name='account'/></fetch>",
                "<fetch top='5001'><entity name='account'/></fetch>",
                "<fetch><entity name='account'><unknown/></entity></fetch>",
                "<fetch datasource='retained'><entity name='account'/></fetch>",
                "<query><entity name='account'/></query>"):
        r = await dv.get(fetch_url("accounts", xml))
        assert r.status_code == 400 and r.json()["error"]["code"].startswith("0x8004"), (xml, r.text)


# ----- property: the same filter as FetchXml and as $filter gives the same rows

def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _xml_value(value: Any) -> str:
    text = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return text.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;")


@st.composite
def conditions(draw: st.DrawFn, rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(FetchXml condition, the same as OData) over account columns, values mostly taken from the rows."""
    column = draw(st.sampled_from(["name", "numberofemployees", "customertypecode", "creditonhold", "telephone2",
                                   "_transactioncurrencyid_value", "statecode"]))
    attribute = column.strip("_").removesuffix("_value")
    present = [r[column] for r in rows if r[column] is not None]
    value = draw(st.sampled_from(present)) if present else None
    if column == "name":
        op = draw(st.sampled_from(["eq", "ne", "begins-with", "ends-with", "like", "null", "not-null", "lt"]))
        piece = draw(st.sampled_from([value[:2], value[-2:], value]))
        if op == "begins-with":
            return f"<condition attribute='name' operator='begins-with' value='{_xml_value(piece)}'/>", \
                f"startswith(name,{_literal(piece)})"
        if op == "ends-with":
            return f"<condition attribute='name' operator='ends-with' value='{_xml_value(piece)}'/>", \
                f"endswith(name,{_literal(piece)})"
        if op == "like":
            return f"<condition attribute='name' operator='like' value='%{_xml_value(piece)}%'/>", \
                f"contains(name,{_literal(piece)})"
    elif column in ("telephone2",):
        op = draw(st.sampled_from(["null", "not-null", "eq", "ne"]))
    elif column in ("numberofemployees", "customertypecode", "statecode"):
        op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "not-in"]))
        if op in ("in", "not-in"):
            values = draw(st.lists(st.sampled_from(present), min_size=1, max_size=3))
            odata = "(" + " or ".join(f"{column} eq {v}" for v in values) + ")"  # OData 4.0 has no `in`
            if op == "not-in":
                odata = f"(not {odata} and {column} ne null)"
            return (f"<condition attribute='{attribute}' operator='{op}'>"
                    + "".join(f"<value>{v}</value>" for v in values) + "</condition>", odata)
    else:
        op = draw(st.sampled_from(["eq", "ne"]))
    if op == "null":
        return f"<condition attribute='{attribute}' operator='null'/>", f"{column} eq null"
    if op == "not-null":
        return f"<condition attribute='{attribute}' operator='not-null'/>", f"{column} ne null"
    if value is None:
        return f"<condition attribute='{attribute}' operator='null'/>", f"{column} eq null"
    xml = f"<condition attribute='{attribute}' operator='{op}' value='{_xml_value(value)}'/>"
    odata = f"{column} {op} {_literal(value)}"
    if op == "ne":
        odata = f"({odata} and {column} ne null)"  # SQL: a null column satisfies no comparison
    return xml, odata


@st.composite
def filters(draw: st.DrawFn, rows: list[dict[str, Any]], depth: int = 0) -> tuple[str, str]:
    kind = draw(st.sampled_from(["and", "or"]))
    parts = [draw(filters(rows, depth + 1)) if depth < 2 and draw(st.booleans()) else draw(conditions(rows))
             for _ in range(draw(st.integers(1, 3)))]
    return (f"<filter type='{kind}'>" + "".join(x for x, _ in parts) + "</filter>",
            "(" + f" {kind} ".join(o for _, o in parts) + ")")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_fetchxml_and_filter_agree(dv: httpx.AsyncClient, emu: Emulator, data: st.DataObject) -> None:
    rows = list(emu.store.table("accounts").all())
    xml, odata = data.draw(filters(rows))
    fetched = await _fetch(dv, f"<fetch><entity name='account'><attribute name='name'/>{xml}</entity></fetch>")
    r = await dv.get(f"accounts?$select=name&$filter={quote(odata)}")
    assert r.status_code == 200, (odata, r.text)
    expected = {x["accountid"] for x in r.json()["value"]}
    # And both agree with the filter evaluated on the rows directly (no index shortcut).
    assert expected == {x["accountid"] for x in rows if evaluate_filter(parse_filter(odata), x, case_insensitive=True)}
    assert {x["accountid"] for x in fetched["value"]} == expected, (xml, odata)


def test_contradictory_equalities_in_one_and() -> None:
    rows = [{"id": "1", "name": "x", "n": 1}]
    q = Query(filter=parse_filter("name eq 'x' and name eq 'y' and n eq 1"))
    assert run_query(rows, q, key="id", page_size=10).rows == []
