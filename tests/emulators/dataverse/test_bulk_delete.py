"""BulkDelete: the asynchronous job over a QueryExpression set, its asyncoperations / bulkdeleteoperations rows
while it waits, runs and after, the records it deletes (exactly those the same `$filter` selects), what sees each
delete (Delete steps, change tracking), failures, refusals that write nothing, and its `$metadata` declaration."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.common.faults import Faults
from emulators.dataverse import bulk_delete
from emulators.dataverse.core import Emulator, user_id_for
from emulators.dataverse.query_expression import OPERATORS
from emulators.dataverse.seed import reseed
from tests.emulators.dataverse.conftest import API, BASE
from tests.emulators.dataverse.test_batch import batch, op, parse_response
from tests.emulators.dataverse.test_delta import TRACK, _delta_link
from tests.emulators.dataverse.test_webhooks import Receiver, register, settle

CRM = "Microsoft.Dynamics.CRM."
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
RECORDS = 20


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"records": RECORDS, "async_delay_ms": 0}


@pytest.fixture(autouse=True)
async def _no_job_outlives_its_test(emu: Emulator) -> AsyncIterator[None]:
    yield
    await bulk_delete.runner(emu).aclose()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with r.server:
        yield r


def condition(attribute: str, operator: str, *values: Any, net_type: str = "System.String") -> dict[str, Any]:
    return {"@odata.type": f"{CRM}ConditionExpression", "AttributeName": attribute, "Operator": operator,
            "Values": [{"Value": v, "Type": net_type} for v in values]}


def query(entity: str = "account", *conditions: dict[str, Any], operator: str = "And",
          filters: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"@odata.type": f"{CRM}QueryExpression", "EntityName": entity,
            "ColumnSet": {"@odata.type": f"{CRM}ColumnSet", "AllColumns": False, "Columns": []},
            "Criteria": {"@odata.type": f"{CRM}FilterExpression", "FilterOperator": operator,
                         "Conditions": list(conditions), "Filters": filters or []}, **extra}


def request(*queries: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A BulkDelete body as Microsoft Learn's examples send it."""
    return {"QuerySet": list(queries), "JobName": "Delete test data", "SendEmailNotification": False,
            "ToRecipients": [], "CCRecipients": [], "RecurrencePattern": "",
            "StartDateTime": "2023-03-07T05:00:00Z", **overrides}


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    r = await client.post("BulkDelete", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["OData-Version"] == "4.0" and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["@odata.context"] == f"{BASE}{API}/$metadata#Microsoft.Dynamics.CRM.BulkDeleteResponse"
    return str(r.json()["JobId"])


async def job_rows(client: httpx.AsyncClient, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(asyncoperation, bulkdeleteoperation) of a job, read through the API as a client polls them."""
    job = await client.get(f"asyncoperations({job_id})")
    assert job.status_code == 200, job.text
    ops = (await client.get(f"bulkdeleteoperations?$filter=_asyncoperationid_value eq {job_id}")).json()["value"]
    assert len(ops) == 1
    return job.json(), ops[0]


def account_ids(emu: Emulator) -> set[str]:
    return {r["accountid"] for r in emu.store.table("accounts").all()}


def numbered(emu: Emulator, *numbers: str) -> set[str]:
    return {r["accountid"] for r in emu.store.table("accounts").all() if r.get("accountnumber") in numbers}


# ----- the job, its rows and what it deletes

async def test_submit_answers_the_job_id_and_deletes_exactly_the_matching_rows(login, emu: Emulator) -> None:
    anna = await login("dv-sales-anna")
    emu.settings.async_delay_ms = 500  # the job waits a moment, long enough to be seen waiting
    doomed = numbered(emu, "ACC-10001", "ACC-10002", "ACC-10003")
    before = account_ids(emu)
    job_id = await submit(anna, request(query("account", condition(
        "accountnumber", "In", "ACC-10001", "ACC-10002", "ACC-10003"))))
    job, operation = await job_rows(anna, job_id)
    # The JobId is the asyncoperationid; the bulk delete operation points at it.
    assert job["asyncoperationid"] == job_id and operation["_asyncoperationid_value"] == job_id
    assert (job["name"], job["operationtype"], job["messagename"]) == ("Delete test data", 13, "BulkDelete")
    assert (job["statecode"], job["statuscode"]) == (0, 0)  # Ready / Waiting For Resources
    assert (operation["statecode"], operation["statuscode"], operation["successcount"]) == (0, 0, 0)
    assert job["startedon"] is None and job["completedon"] is None
    assert job["_createdby_value"] == job["_ownerid_value"] == user_id_for("dv-sales-anna")
    assert account_ids(emu) == before  # asynchronous: nothing deleted yet
    await bulk_delete.runner(emu).drain()
    assert account_ids(emu) == before - doomed
    job, operation = await job_rows(anna, job_id)
    assert (job["statecode"], job["statuscode"]) == (3, 30)  # Completed / Succeeded
    assert (operation["statecode"], operation["statuscode"]) == (3, 30)
    assert (operation["successcount"], operation["failurecount"]) == (3, 0)
    assert job["startedon"] and job["completedon"] and job["completedon"] >= job["startedon"]
    assert "accountnumber" in operation["orderedquerysetxml"]  # the query set, kept as FetchXml
    listed = (await anna.get("asyncoperations?$filter=operationtype eq 13 and statecode eq 3")).json()["value"]
    assert [j["asyncoperationid"] for j in listed] == [job_id]


async def test_job_states_are_visible_while_it_runs(dv: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.reconfigure(Faults(batch_op_latency_ms=40))  # each record takes a moment
    job_id = await submit(dv, request(query("account", condition("accountnumber", "BeginsWith", "ACC-1000"))))
    seen: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job, operation = await job_rows(dv, job_id)
        seen.append((job["statecode"], job["statuscode"], operation["successcount"]))
        if job["statecode"] == 2:
            assert job["startedon"] and job["completedon"] is None
            assert (operation["statecode"], operation["statuscode"]) == (2, 20)
        if job["statecode"] == 3:
            break
        await asyncio.sleep(0.02)
    # Waiting (or already running), then Locked / In Progress with counts growing, then Completed / Succeeded.
    running = [count for state, status, count in seen if (state, status) == (2, 20)]
    assert running and running == sorted(running) and running[-1] < 9
    assert seen[-1] == (3, 30, 9)  # ACC-10001 … ACC-10009


async def test_a_later_start_date_time_postpones_the_job(dv: httpx.AsyncClient, emu: Emulator) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    before = account_ids(emu)
    job_id = await submit(dv, request(query("account", condition("accountnumber", "Equal", "ACC-10001")),
                                      StartDateTime=start.strftime("%Y-%m-%dT%H:%M:%SZ")))
    job, operation = await job_rows(dv, job_id)
    assert (job["statecode"], job["statuscode"]) == (1, 10)  # Suspended / Waiting (unconfirmed)
    assert job["postponeuntil"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    await asyncio.sleep(0.3)
    assert account_ids(emu) == before
    await bulk_delete.runner(emu).drain()
    assert dt.datetime.now(dt.UTC) >= start and len(account_ids(emu)) == len(before) - 1
    job, operation = await job_rows(dv, job_id)
    assert (job["statecode"], job["statuscode"], operation["successcount"]) == (3, 30, 1)


async def test_a_query_set_runs_query_by_query_in_each_query_order(dv: httpx.AsyncClient, emu: Emulator) -> None:
    contacts = sorted(r["contactid"] for r in emu.store.table("contacts").all())[:2]
    seq = emu.store.current_seq()
    job_id = await submit(dv, request(
        query("account", condition("accountnumber", "In", "ACC-10004", "ACC-10002", "ACC-10003"),
              Orders=[{"@odata.type": f"{CRM}OrderExpression", "AttributeName": "accountnumber",
                       "OrderType": "Descending"}]),
        query("contact", condition("contactid", "In", *contacts, net_type="System.Guid"))))
    await bulk_delete.runner(emu).drain()
    deleted = [(c.table, c.before["accountnumber"] if c.table == "accounts" else c.record_id)
               for c in emu.store.changes_since(seq) if c.kind == "deleted" and c.before is not None]
    assert deleted == [("accounts", "ACC-10004"), ("accounts", "ACC-10003"), ("accounts", "ACC-10002"),
                       ("contacts", contacts[0]), ("contacts", contacts[1])]  # without Orders: by key
    _, operation = await job_rows(dv, job_id)
    assert (operation["successcount"], operation["processingqeindex"]) == (5, 1)


async def test_operators_and_nested_filters(dv: httpx.AsyncClient, emu: Emulator) -> None:
    rows = {r["accountnumber"]: r for r in emu.store.table("accounts").all()}
    # A column compared with another column (CompareColumns): only the account whose name is its number.
    await dv.patch(f"accounts({rows['ACC-10005']['accountid']})", json={"name": "ACC-10005"})
    await submit(dv, request(query("account", {**condition("name", "Equal", "accountnumber"),
                                               "CompareColumns": True})))
    await bulk_delete.runner(emu).drain()
    assert numbered(emu, "ACC-10005") == set()
    assert len(account_ids(emu)) == RECORDS - 1
    # (numberofemployees between 1 and 1000 and customertypecode = 3) or accountnumber ends with 7 — Or of a
    # nested And, integers and option values given as text and as numbers.
    expected = {r["accountid"] for r in emu.store.table("accounts").all()
                if (1 <= r["numberofemployees"] <= 1000 and r["customertypecode"] == 3)
                or r["accountnumber"].endswith("7")}
    await submit(dv, request(query("account", condition("accountnumber", "EndsWith", "7"), operator="Or", filters=[
        {"FilterOperator": "And", "Conditions": [
            condition("numberofemployees", "Between", 1, 1000, net_type="System.Int32"),
            condition("customertypecode", "Equal", "3")]}])))
    before = account_ids(emu)
    await bulk_delete.runner(emu).drain()
    assert before - account_ids(emu) == expected and expected


async def test_more_than_a_page_of_records(dv: httpx.AsyncClient, emu: Emulator) -> None:
    # The job reads its set 1,000 records at a time: every record of a larger set is deleted once.
    r = await dv.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [
        {"@odata.type": f"{CRM}account", "name": f"Bulk {i}", "accountnumber": f"BULK-{i:05}"} for i in range(2100)]})
    assert r.status_code == 200, r.text
    created = set(r.json()["Ids"])
    job_id = await submit(dv, request(query("account", condition("accountnumber", "BeginsWith", "BULK-"))))
    await bulk_delete.runner(emu).drain(timeout=60)
    assert not created & account_ids(emu) and len(account_ids(emu)) == RECORDS
    _, operation = await job_rows(dv, job_id)
    assert (operation["successcount"], operation["failurecount"]) == (2100, 0)


# ----- deletes exactly what the same $filter selects

_FIELDS = {"name": "string", "address1_city": "string", "address1_stateorprovince": "string",
           "description": "string", "accountnumber": "string", "numberofemployees": "int",
           "customertypecode": "option", "creditlimit": "money", "creditonhold": "bool"}


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _not_null(field: str, expr: str) -> str:
    # QueryExpression compares as SQL does: a null column satisfies no comparison, negative ones included.
    return f"({expr} and {field} ne null)"


@st.composite
def _leaf(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """(ConditionExpression, the OData $filter selecting the same rows)."""
    field = draw(st.sampled_from(sorted(_FIELDS)))
    kind = _FIELDS[field]
    if kind == "string":
        text = draw(st.sampled_from(["ACC-1000", "ACC-10012", "a", "e", "Co", "in", "zz", "Main", "CA", "NY"]))
        ops = {"Equal": f"{field} eq {_literal(text)}", "NotEqual": _not_null(field, f"{field} ne {_literal(text)}"),
               "BeginsWith": f"startswith({field},{_literal(text)})",
               "DoesNotBeginWith": _not_null(field, f"not startswith({field},{_literal(text)})"),
               "EndsWith": f"endswith({field},{_literal(text)})",
               "DoesNotEndWith": _not_null(field, f"not endswith({field},{_literal(text)})"),
               "Like": f"contains({field},{_literal(text)})",
               "NotLike": _not_null(field, f"not contains({field},{_literal(text)})"),
               "Null": f"{field} eq null", "NotNull": f"{field} ne null"}
        name = draw(st.sampled_from(sorted(ops)))
        values = [] if name in ("Null", "NotNull") else [f"%{text}%" if "Like" in name else text]
        return condition(field, name, *values), ops[name]
    if kind == "bool":
        flag = draw(st.booleans())
        name = draw(st.sampled_from(["Equal", "NotEqual"]))
        expr = f"{field} eq {_literal(flag)}" if name == "Equal" else _not_null(field, f"{field} ne {_literal(flag)}")
        return condition(field, name, flag, net_type="System.Boolean"), expr
    numbers = {"int": [5, 100, 500, 1000, 1500, 2000], "option": [3, 5, 8, 9],
               "money": [5000, 10000, 25000, 50000, 100000]}[kind]
    a, b = sorted(draw(st.lists(st.sampled_from(numbers), min_size=2, max_size=2, unique=True)))
    ops = {"Equal": f"{field} eq {a}", "NotEqual": _not_null(field, f"{field} ne {a}"),
           "GreaterThan": f"{field} gt {a}", "LessThan": f"{field} lt {a}", "GreaterEqual": f"{field} ge {a}",
           "LessEqual": f"{field} le {a}", "In": f"{field} in ({a},{b})",
           "NotIn": _not_null(field, f"not ({field} in ({a},{b}))"), "Between": f"({field} ge {a} and {field} le {b})",
           "NotBetween": _not_null(field, f"not ({field} ge {a} and {field} le {b})")}
    name = draw(st.sampled_from(sorted(ops)))
    values = [a, b] if name in ("In", "NotIn", "Between", "NotBetween") else [a]
    net_type = draw(st.sampled_from(["System.Int32", "System.String"]))  # numbers as JSON numbers or as text
    return condition(field, name, *(v if net_type == "System.Int32" else str(v) for v in values),
                     net_type=net_type), ops[name]


@st.composite
def _criteria(draw: st.DrawFn, depth: int = 0) -> tuple[dict[str, Any], str]:
    """(FilterExpression, $filter): conditions and nested filters joined by And / Or."""
    joiner = draw(st.sampled_from(["And", "Or"]))
    leaves = draw(st.lists(_leaf(), min_size=1, max_size=3))
    children = draw(st.lists(_criteria(depth + 1), max_size=0 if depth else 2))
    parts = [f"({expr})" for _, expr in leaves] + [f"({expr})" for _, expr in children]
    return ({"FilterOperator": joiner, "Conditions": [c for c, _ in leaves], "Filters": [f for f, _ in children]},
            f" {joiner.lower()} ".join(parts))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(criteria=_criteria())
async def test_deletes_exactly_what_the_same_filter_selects(dv: httpx.AsyncClient, emu: Emulator,
                                                            criteria: tuple[dict[str, Any], str]) -> None:
    reseed(emu, RECORDS, 1)
    flt, odata = criteria
    r = await dv.get("accounts", params={"$select": "accountid", "$filter": odata})
    assert r.status_code == 200, (odata, r.text)
    expected = {row["accountid"] for row in r.json()["value"]}
    before = account_ids(emu)
    job_id = await submit(dv, request({"EntityName": "account", "Criteria": flt}))
    await bulk_delete.runner(emu).drain()
    assert before - account_ids(emu) == expected, odata
    _, operation = await job_rows(dv, job_id)
    assert (operation["successcount"], operation["failurecount"]) == (len(expected), 0)


# ----- what sees each delete, failures

async def test_each_delete_fires_delete_steps_and_change_tracking(login, dv: httpx.AsyncClient, emu: Emulator,
                                                                  receiver: Receiver) -> None:
    receiver.calls.clear()
    await register(dv, receiver.url, message="Delete", table="account")
    link = await _delta_link(dv, "accounts?$select=name", TRACK)
    doomed = numbered(emu, "ACC-10001", "ACC-10002", "ACC-10003")
    ben = await login("dv-sales-ben")
    await submit(ben, request(query("account", condition("accountnumber", "In", "ACC-10001", "ACC-10002",
                                                         "ACC-10003"))))
    await bulk_delete.runner(emu).drain()
    await settle(emu, receiver, 3)
    bodies = [c["body"] for c in receiver.calls]
    assert {b["MessageName"] for b in bodies} == {"Delete"}
    assert {b["PrimaryEntityId"] for b in bodies} == doomed
    assert {b["UserId"] for b in bodies} == {user_id_for("dv-sales-ben")}  # the job deletes as the caller
    rows = (await dv.get(link)).json()["value"]
    assert {r["id"] for r in rows if "$deletedEntity" in r.get("@odata.context", "")} == doomed
    assert {c.actor.user_id for c in emu.store.changes if c.kind == "deleted"} == {user_id_for("dv-sales-ben")}


async def test_records_that_cannot_be_deleted_count_as_failures(dv: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.reconfigure(Faults(batch_op_latency_ms=30))
    last = numbered(emu, "ACC-10009").pop()
    job_id = await submit(dv, request(
        query("account", condition("accountnumber", "BeginsWith", "ACC-1000"),
              Orders=[{"AttributeName": "accountnumber", "OrderType": "Ascending"}]),
        # The system job tables refuse deletes through the API here, so the job's own row cannot be deleted.
        query("asyncoperation")))
    for _ in range(200):  # once the job is running, a client deletes the last record it selected
        job, _ = await job_rows(dv, job_id)
        if job["statecode"] == 2:
            break
        await asyncio.sleep(0.01)
    assert (await dv.delete(f"accounts({last})")).status_code == 204
    # A record created while the job runs is not in its set ("only deletes records … created before the job").
    late = await dv.post("accounts", json={"name": "Late", "accountnumber": "ACC-1000Z"})
    assert late.status_code == 204
    await bulk_delete.runner(emu).drain()
    assert numbered(emu, "ACC-1000Z")
    job, operation = await job_rows(dv, job_id)
    assert (operation["successcount"], operation["failurecount"]) == (8, 2)
    assert (job["statecode"], job["statuscode"]) == (3, 30)  # deletes not rolled back; the job completes


async def test_a_job_submitted_in_a_change_set_runs_only_if_it_commits(dv: httpx.AsyncClient, emu: Emulator) -> None:
    body = request(query("account", condition("accountnumber", "Equal", "ACC-10001")))
    before, doomed = account_ids(emu), numbered(emu, "ACC-10001")
    payload, headers = batch([[op("POST", f"{API}/BulkDelete", body, "1"),
                               op("POST", f"{API}/accounts", {"name": "Bad", "nosuch": 1}, "2")]])
    assert (await dv.post("$batch", content=payload, headers=headers)).status_code == 400
    await bulk_delete.runner(emu).drain()
    assert account_ids(emu) == before and len(emu.store.table("asyncoperations")) == 0
    payload, headers = batch([[op("POST", f"{API}/BulkDelete", body, "1")]])
    r = await dv.post("$batch", content=payload, headers=headers)
    [(status, _, answer)] = parse_response(r)
    assert status == 200 and json.loads(answer)["JobId"]
    await bulk_delete.runner(emu).drain()
    assert before - account_ids(emu) == doomed


# ----- refusals: the request's error, nothing written, nothing deleted

_REFUSED: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("no JobName", {"JobName": None}, 400, "0x80040203", "Required parameter 'JobName'"),
    ("no QuerySet", {"QuerySet": None}, 400, "0x80040203", "Required parameter 'QuerySet'"),
    ("no StartDateTime", {"StartDateTime": None}, 400, "0x80040203", "Required parameter 'StartDateTime'"),
    ("no recipients", {"ToRecipients": None}, 400, "0x80040203", "Required parameter 'ToRecipients'"),
    ("empty QuerySet", {"QuerySet": []}, 400, "0x80040203", "at least one query"),
    ("unknown parameter", {"Jobname": "x"}, 400, "0x80048d19", "'Jobname' in the request payload"),
    ("bad StartDateTime", {"StartDateTime": "tomorrow"}, 400, "0x80048d19", "Edm.DateTimeOffset"),
    ("JobName not text", {"JobName": 5}, 400, "0x80048d19", "Edm.String"),
    ("recurrence", {"RecurrencePattern": "FREQ=DAILY;INTERVAL=1;"}, 400, "0x80040203", "recurring jobs"),
    ("email", {"SendEmailNotification": True}, 400, "0x80040203", "email notifications"),
    ("import", {"SourceImportId": "00000000-0000-0000-0000-000000000001"}, 400, "0x80040203", "SourceImportId"),
    ("sandbox", {"Options": {"RunJobForSandbox": True}}, 400, "0x80040203", "sandbox fast delete"),
    ("unknown table", {"QuerySet": [query("nosuchtable")]}, 400, "0x80041102",
     "The entity with a name = 'nosuchtable' with namemapping = 'Logical' was not found in the MetadataCache."),
    ("no EntityName", {"QuerySet": [{"Criteria": None}]}, 400, "0x80040203",
     "The EntityName of a QueryExpression must be specified."),
    ("no AttributeName", {"QuerySet": [query("account", condition("", "Null"))]}, 400, "0x80040203",
     "The AttributeName of a ConditionExpression must be specified."),
    ("no Operator", {"QuerySet": [query("account", {"AttributeName": "name"})]}, 400, "0x80040203",
     "The Operator of a ConditionExpression must be specified."),
    ("unknown column", {"QuerySet": [query("account", condition("nosuch", "Equal", "x"))]}, 400, "0x80041103",
     "'account' entity doesn't contain attribute with Name = 'nosuch' and NameMapping = 'Logical'."),
    ("unknown operator", {"QuerySet": [query("account", condition("name", "Resembles", "x"))]}, 400, "0x80048d19",
     "Microsoft.Dynamics.CRM.ConditionOperator"),
    ("operator not emulated", {"QuerySet": [query("account", condition("createdon", "Today"))]}, 400, "0x80040203",
     "'Today'"),
    ("link entities", {"QuerySet": [query("account", LinkEntities=[{"LinkToEntityName": "contact"}])]}, 400,
     "0x80040203", "LinkEntities"),
    ("top count", {"QuerySet": [query("account", TopCount=5)]}, 400, "0x80040203", "TopCount"),
    ("retained data", {"QuerySet": [query("account", DataSource="retained")]}, 400, "0x80040203", "retained"),
    ("unknown property", {"QuerySet": [query("account", Criterion={})]}, 400, "0x80060888",
     "The property 'Criterion' does not exist on type 'Microsoft.Dynamics.CRM.QueryExpression'."),
    ("wrong value type", {"QuerySet": [query("account", condition("numberofemployees", "Equal", "many"))]}, 400,
     "0x80040203", "expected argument(s) of type 'Edm.Int32' but received 'many'"),
    ("operator on the wrong type", {"QuerySet": [query("account", condition("numberofemployees", "BeginsWith",
                                                                            "1"))]}, 400, "0x80040203",
     "can't be used with the attribute 'numberofemployees'"),
    ("null value", {"QuerySet": [query("account", condition("name", "Equal", None))]}, 400, "0x80040203",
     "Null or NotNull"),
    ("wrong arity", {"QuerySet": [query("account", condition("numberofemployees", "Between", 1))]}, 400,
     "0x80040203", "value(s)"),
    ("quick find", {"QuerySet": [{"EntityName": "account", "Criteria": {"IsQuickFindFilter": True}}]}, 400,
     "0x80040203", "quick find"),
    ("another type", {"QuerySet": [{"@odata.type": "Microsoft.Dynamics.CRM.FetchExpression",
                                    "EntityName": "account"}]}, 400, "0x80048d19", "QueryExpression"),
    ("second query bad", {"QuerySet": [query("account"), query("contact", condition("nosuch", "Null"))]}, 400,
     "0x80041103", "'contact' entity doesn't contain attribute"),
]


@pytest.mark.parametrize(("case", "overrides", "status", "code", "message"), _REFUSED, ids=[c[0] for c in _REFUSED])
async def test_refused_requests_write_and_delete_nothing(dv: httpx.AsyncClient, emu: Emulator, case: str,
                                                         overrides: dict[str, Any], status: int, code: str,
                                                         message: str) -> None:
    before, seq = account_ids(emu), emu.store.current_seq()
    body = {k: v for k, v in request(query("account"), **overrides).items() if v is not None}
    r = await dv.post("BulkDelete", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and message in r.json()["error"]["message"], r.text
    await bulk_delete.runner(emu).drain()
    assert emu.store.current_seq() == seq and account_ids(emu) == before
    assert len(emu.store.table("asyncoperations")) == len(emu.store.table("bulkdeleteoperations")) == 0


async def test_bulk_delete_is_an_unbound_post_action(dv: httpx.AsyncClient, emu: Emulator) -> None:
    assert (await dv.get("BulkDelete")).status_code == 405
    r = await dv.post("BulkDelete?$select=JobId", json=request(query("account")))
    assert r.status_code == 400 and r.json()["error"]["message"] == "The query parameter $select is not supported"
    r = await dv.post("accounts/Microsoft.Dynamics.CRM.BulkDelete", json=request(query("account")))
    assert r.status_code == 404
    r = await dv.post("BulkDelete", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80048d19"
    await bulk_delete.runner(emu).drain()
    assert len(account_ids(emu)) == RECORDS


async def test_the_job_tables_are_read_only_through_the_api(dv: httpx.AsyncClient, emu: Emulator) -> None:
    job_id = await submit(dv, request(query("account", condition("accountnumber", "Equal", "ACC-10001"))))
    await bulk_delete.runner(emu).drain()
    _, operation = await job_rows(dv, job_id)
    refused = [
        ("POST", "asyncoperations", {"name": "x"}, "Create", "asyncoperation"),
        ("PATCH", f"asyncoperations({job_id})", {"statecode": 3, "statuscode": 32}, "Update", "asyncoperation"),
        ("DELETE", f"asyncoperations({job_id})", None, "Delete", "asyncoperation"),
        ("DELETE", f"bulkdeleteoperations({operation['bulkdeleteoperationid']})", None, "Delete",
         "bulkdeleteoperation"),
        ("POST", "bulkdeleteoperations/Microsoft.Dynamics.CRM.CreateMultiple",
         {"Targets": [{"@odata.type": f"{CRM}bulkdeleteoperation", "name": "x"}]}, "CreateMultiple",
         "bulkdeleteoperation"),
    ]
    seq = emu.store.current_seq()
    for method, path, body, message, logical in refused:
        r = await dv.request(method, path, json=body)
        assert r.status_code == 400 and r.json()["error"] == {
            "code": "0x80040203", "message": f"The '{message}' method does not support entities of type '{logical}'."}
    assert emu.store.current_seq() == seq
    jobs = (await dv.get("asyncoperations?$select=name,statecode,statuscode&$filter=statuscode eq 30")).json()
    assert [j["asyncoperationid"] for j in jobs["value"]] == [job_id]
    labels = (await dv.get(f"asyncoperations({job_id})?$select=operationtype,statuscode", headers={
        "Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'})).json()
    assert labels["operationtype@OData.Community.Display.V1.FormattedValue"] == "Bulk Delete"
    assert labels["statuscode@OData.Community.Display.V1.FormattedValue"] == "Succeeded"


async def test_csdl_declares_bulk_delete(dv: httpx.AsyncClient) -> None:
    root = ET.fromstring((await dv.get("$metadata")).content)
    [schema] = root.iter(f"{EDM}Schema")
    [action] = [a for a in schema.findall(f"{EDM}Action") if a.get("Name") == "BulkDelete"]
    assert action.get("IsBound") is None  # unbound ("BulkDelete action is not bound to any entity types")
    params = {p.get("Name"): (p.get("Type"), p.get("Nullable")) for p in action.findall(f"{EDM}Parameter")}
    assert params["QuerySet"] == ("Collection(mscrm.QueryExpression)", "false")
    assert params["JobName"] == ("Edm.String", "false") and params["StartDateTime"] == ("Edm.DateTimeOffset", "false")
    assert params["SourceImportId"] == ("Edm.Guid", None)
    assert action.find(f"{EDM}ReturnType").get("Type") == "mscrm.BulkDeleteResponse"  # type: ignore[union-attr]
    [container] = schema.iter(f"{EDM}EntityContainer")
    assert [i.get("Action") for i in container.findall(f"{EDM}ActionImport")] == ["mscrm.BulkDelete"]
    types = {t.get("Name"): t for t in schema if t.tag == f"{EDM}ComplexType"}
    props = {p.get("Name"): p.get("Type") for p in types["BulkDeleteResponse"].findall(f"{EDM}Property")}
    assert props == {"JobId": "Edm.Guid"}
    query_props = {p.get("Name") for p in types["QueryExpression"].findall(f"{EDM}Property")}
    assert {"EntityName", "ColumnSet", "Criteria", "Orders", "PageInfo"} <= query_props
    enums = {e.get("Name"): {m.get("Name"): int(m.get("Value", "-1")) for m in e.findall(f"{EDM}Member")}
             for e in schema.findall(f"{EDM}EnumType")}
    assert enums["LogicalOperator"] == {"And": 0, "Or": 1}
    # The members "ConditionOperator EnumType" documents, as far as the emulator evaluates them.
    assert {k: enums["ConditionOperator"][k] for k in ("Equal", "NotEqual", "GreaterThan", "LessThan", "Like",
                                                        "In", "NotIn", "Null", "NotNull")} == {
        "Equal": 0, "NotEqual": 1, "GreaterThan": 2, "LessThan": 3, "Like": 6, "In": 8, "NotIn": 9, "Null": 12,
        "NotNull": 13}
    assert set(enums["ConditionOperator"]) == set(OPERATORS)
