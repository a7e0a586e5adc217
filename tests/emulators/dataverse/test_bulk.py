"""Bulk operation messages: CreateMultiple / UpdateMultiple / UpsertMultiple over HTTP, their refusals, all-or-
nothing, steps per record, service protection, change sets, the DeleteMultiple refusal, x-ms-dop-hint."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.common.faults import Faults
from emulators.common.throttle import Limits
from emulators.dataverse.core import Emulator, user_id_for
from tests.emulators.dataverse.conftest import API, BASE
from tests.emulators.dataverse.test_batch import batch, op, parse_response
from tests.emulators.dataverse.test_delta import TRACK, _delta_link
from tests.emulators.dataverse.test_webhooks import Receiver, register, settle

ACCOUNT = "Microsoft.Dynamics.CRM.account"
CONTEXT = f"{BASE}{API}/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"


def account(**values: Any) -> dict[str, Any]:
    return {"@odata.type": ACCOUNT, **values}


async def bulk(dv: httpx.AsyncClient, action: str, targets: Any, entity_set: str = "accounts") -> httpx.Response:
    return await dv.post(f"{entity_set}/Microsoft.Dynamics.CRM.{action}", json={"Targets": targets})


def accounts_by_number(emu: Emulator, prefix: str) -> dict[str, dict[str, Any]]:
    return {r["accountnumber"]: r for r in emu.store.table("accounts").all()
            if (r.get("accountnumber") or "").startswith(prefix)}


def seeded(emu: Emulator, n: int) -> list[dict[str, Any]]:
    return [r for r in emu.store.table("accounts").all() if r.get("accountnumber")][:n]


# ----- CreateMultiple

async def test_create_multiple_answers_the_ids_in_order(login, emu: Emulator) -> None:
    anna = await login("dv-sales-anna")
    currency = next(emu.store.table("transactioncurrencies").all())["transactioncurrencyid"]
    seq = emu.store.current_seq()
    r = await bulk(anna, "CreateMultiple", [
        account(name=f"Bulk {i}", accountnumber=f"CM-{i}", creditlimit=100.0 * i,
                **{"transactioncurrencyid@odata.bind": f"/transactioncurrencies({currency})"})
        for i in range(3)])
    assert r.status_code == 200, r.text
    assert r.headers["OData-Version"] == "4.0" and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["@odata.context"] == CONTEXT and len(body["Ids"]) == 3
    for i, rid in enumerate(body["Ids"]):
        row = (await anna.get(f"accounts({rid})")).json()
        assert (row["name"], row["accountnumber"], row["creditlimit"]) == (f"Bulk {i}", f"CM-{i}", 100.0 * i)
        assert row["_transactioncurrencyid_value"] == currency
        assert row["_createdby_value"] == row["_modifiedby_value"] == row["_ownerid_value"] == user_id_for(
            "dv-sales-anna")
        assert (row["statecode"], row["statuscode"]) == (0, 1)
    logged = emu.store.changes_since(seq)
    assert [(c.kind, c.record_id) for c in logged] == [("created", rid) for rid in body["Ids"]]
    assert {c.actor.user_id for c in logged} == {user_id_for("dv-sales-anna")}


BAD_TARGETS = [{"nmae": "typo"}, {"numberofemployees": "many"}, {"customertypecode": 99},
               {"statecode": 1, "statuscode": 1}, {"_parentaccountid_value": str(uuid.UUID(int=1))},
               {"parentaccountid@odata.bind": f"/accounts({uuid.UUID(int=7)})"},
               {"parentaccountid@odata.bind": "/contacts(emailaddress1='nobody@example.com')"}]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good=st.integers(0, 6), at=st.integers(0, 6), bad=st.sampled_from(BAD_TARGETS))
async def test_one_failing_target_fails_all_with_the_single_create_error(dv: httpx.AsyncClient, emu: Emulator,
                                                                        good: int, at: int, bad: dict) -> None:
    single = await dv.post("accounts", json={"name": "x", **bad})
    assert single.status_code >= 400
    before, seq = len(emu.store.table("accounts")), emu.store.current_seq()
    targets = [account(name=f"ok {i}") for i in range(good)]
    targets.insert(min(at, good), account(name="x", **bad))
    r = await bulk(dv, "CreateMultiple", targets)
    assert (r.status_code, r.json()) == (single.status_code, single.json())
    assert len(emu.store.table("accounts")) == before and emu.store.current_seq() == seq


async def test_alternate_keys_and_ids_stay_unique_within_a_request(dv: httpx.AsyncClient, emu: Emulator) -> None:
    before = len(emu.store.table("accounts"))
    r = await bulk(dv, "CreateMultiple", [account(name="a", accountnumber="DUP-1"),
                                          account(name="b", accountnumber="dup-1")])
    assert r.status_code == 412 and r.json()["error"]["code"] == "0x80060892"
    taken = seeded(emu, 1)[0]["accountnumber"]
    r = await bulk(dv, "CreateMultiple", [account(name="a", accountnumber="DUP-2"),
                                          account(name="b", accountnumber=taken)])
    assert r.status_code == 412 and r.json()["error"]["code"] == "0x80060892"
    rid = str(uuid.uuid4())
    r = await bulk(dv, "CreateMultiple", [account(name="a", accountid=rid), account(name="b", accountid=rid)])
    assert r.status_code == 412 and r.json()["error"] == {"code": "0x80040237", "message": "A record with matching "
                                                          "key values already exists."}
    assert len(emu.store.table("accounts")) == before and not accounts_by_number(emu, "DUP-")


async def test_no_documented_limit_on_the_number_of_records(dv: httpx.AsyncClient, emu: Emulator) -> None:
    # Microsoft Learn: "There's no limit on the number of records, but there are message size and time limits";
    # 1,000 per request is a recommended start, not a cap.
    r = await bulk(dv, "CreateMultiple", [account(name=f"n{i}") for i in range(1001)])
    assert r.status_code == 200 and len(set(r.json()["Ids"])) == 1001


# ----- UpdateMultiple

async def test_update_multiple_by_id_and_by_alternate_key(login, emu: Emulator) -> None:
    ben = await login("dv-sales-ben")
    first, second = seeded(emu, 2)
    versions = (first["versionnumber"], second["versionnumber"])
    r = await bulk(ben, "UpdateMultiple", [
        account(accountid=first["accountid"], name="By id", creditonhold=True),
        account(**{"@odata.id": f"accounts(accountnumber='{second['accountnumber']}')", "name": "By key"})])
    assert r.status_code == 204 and r.content == b"" and r.headers["OData-Version"] == "4.0"
    one = emu.store.table("accounts").get(first["accountid"])
    two = emu.store.table("accounts").get(second["accountid"])
    assert (one["name"], one["creditonhold"], two["name"]) == ("By id", True, "By key")
    assert one["_modifiedby_value"] == two["_modifiedby_value"] == user_id_for("dv-sales-ben")
    assert one["_createdby_value"] == first["_createdby_value"]
    assert (one["versionnumber"], two["versionnumber"]) > versions


@pytest.mark.parametrize(("target", "status", "code", "message"), [
    ({"name": "no key"}, 400, "0x80040203", "Entity Id must be specified for Update"),
    ({"accountid": "00000000-0000-0000-0000-0000000000aa", "name": "gone"}, 404, "0x80040217",
     "Entity 'account' With Id = 00000000-0000-0000-0000-0000000000aa Does Not Exist"),
    ({"@odata.id": "accounts(accountnumber='NO-SUCH')", "name": "gone"}, 404, "0x80040217",
     "A record with the specified key values does not exist in account entity"),
    ({"@odata.id": "contacts(emailaddress1='a@b.c')", "name": "x"}, 400, "0x80048d19", None),
    ({"@odata.id": "accounts(nosuchkey='1')", "name": "x"}, 400, "0x80060888", None),
    ({"ROW": 1, "statecode": 0, "statuscode": 2}, 400, "0x8004431a", None),
    ({"ROW": 0, "name": "twice"}, 400, "0x80040203", None),
])
async def test_update_multiple_refusals_write_nothing(dv: httpx.AsyncClient, emu: Emulator, target: dict,
                                                      status: int, code: str, message: str | None) -> None:
    rows = seeded(emu, 2)
    first = rows[0]
    if "ROW" in target:  # the first target's record again, or another existing one
        target["accountid"] = rows[target.pop("ROW")]["accountid"]
    seq = emu.store.current_seq()
    r = await bulk(dv, "UpdateMultiple", [account(accountid=first["accountid"], name="Renamed"), account(**target)])
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    if message:
        assert r.json()["error"]["message"] == message
    assert emu.store.current_seq() == seq and emu.store.table("accounts").get(first["accountid"])["name"] == first[
        "name"]


# ----- UpsertMultiple

async def test_upsert_multiple_creates_and_updates(dv: httpx.AsyncClient, emu: Emulator) -> None:
    first, second = seeded(emu, 2)
    new_id = str(uuid.uuid4())
    seq = emu.store.current_seq()
    r = await bulk(dv, "UpsertMultiple", [
        account(name="Keyless"),                                                        # created
        account(**{"@odata.id": "accounts(accountnumber='UP-NEW')", "name": "By new key"}),  # created with the key
        account(accountid=new_id, name="By new id"),                                    # created with that id
        account(accountid=first["accountid"], name="Updated by id"),                    # updated
        account(**{"@odata.id": f"{BASE}{API}/accounts(accountnumber='{second['accountnumber']}')",
                   "name": "Updated by key"}),                                          # updated (absolute URL)
    ])
    # Microsoft Learn, "UpsertMultiple Action": 204 NoContent, the UpsertMultipleResponse is not returned.
    assert r.status_code == 204 and r.content == b""
    table = emu.store.table("accounts")
    assert accounts_by_number(emu, "UP-NEW")["UP-NEW"]["name"] == "By new key"
    assert table.get(new_id)["name"] == "By new id"
    assert table.get(first["accountid"])["name"] == "Updated by id"
    assert table.get(second["accountid"])["name"] == "Updated by key"
    assert any(row["name"] == "Keyless" for row in table.all())
    kinds = [c.kind for c in emu.store.changes_since(seq)]
    assert kinds == ["created", "created", "created", "updated", "updated"]


async def test_upsert_multiple_names_each_record_once(dv: httpx.AsyncClient, emu: Emulator) -> None:
    before = len(emu.store.table("accounts"))
    r = await bulk(dv, "UpsertMultiple", [
        account(**{"@odata.id": "accounts(accountnumber='UP-TWICE')", "name": "one"}),
        account(**{"@odata.id": "accounts(accountnumber='UP-TWICE')", "name": "two"})])
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80040203"
    assert len(emu.store.table("accounts")) == before


# ----- @odata.type and the Targets parameter

@pytest.mark.parametrize("action", ["CreateMultiple", "UpdateMultiple", "UpsertMultiple"])
@pytest.mark.parametrize(("odata_type", "status", "code", "message"), [
    (None, 400, "0x80060888", "The property 'name' does not exist on type 'Microsoft.Dynamics.CRM.crmbaseentity'. "
                              "Make sure to only use property names that are defined by the type."),
    ("Microsoft.Dynamics.CRM.contact", 400, "0x80040203", None),
    ("Microsoft.Dynamics.CRM.nosuch", 400, "0x80048d19", None),
])
async def test_every_target_needs_the_odata_type_of_the_table(dv: httpx.AsyncClient, emu: Emulator, action: str,
                                                              odata_type: str | None, status: int, code: str,
                                                              message: str | None) -> None:
    rid = seeded(emu, 1)[0]["accountid"]
    bad = {"name": "typed", "accountid": rid}
    if odata_type:
        bad["@odata.type"] = odata_type
    seq = emu.store.current_seq()
    r = await bulk(dv, action, [account(name="fine", accountid=str(uuid.uuid4()) if action != "UpdateMultiple"
                                        else rid), bad])
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    if message:
        assert r.json()["error"]["message"] == message
    assert emu.store.current_seq() == seq


async def test_a_leading_hash_in_odata_type_is_accepted(dv: httpx.AsyncClient) -> None:
    r = await bulk(dv, "CreateMultiple", [{"@odata.type": f"#{ACCOUNT}", "name": "hashed"}])
    assert r.status_code == 200


@pytest.mark.parametrize(("body", "code"), [
    ({}, "0x80040203"),
    ({"Targets": []}, "0x80040203"),
    ({"Targets": {"name": "x"}}, "0x80048d19"),
    ({"Targets": ["x"]}, "0x80048d19"),
    ({"Targets": [account(name="x")], "ContinueOnError": True}, "0x80048d19"),
    ([account(name="x")], "0x80048d19"),
])
async def test_malformed_targets_are_400(dv: httpx.AsyncClient, emu: Emulator, body: Any, code: str) -> None:
    before = len(emu.store.table("accounts"))
    r = await dv.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    r = await dv.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80048d19"
    assert len(emu.store.table("accounts")) == before


async def test_unknown_actions_methods_and_bindings(dv: httpx.AsyncClient, emu: Emulator) -> None:
    rid = seeded(emu, 1)[0]["accountid"]
    r = await dv.get("accounts/Microsoft.Dynamics.CRM.CreateMultiple")
    assert r.status_code == 405
    for path, segment in [("accounts/Microsoft.Dynamics.CRM.Nonsense", "Microsoft.Dynamics.CRM.Nonsense"),
                          (f"accounts({rid})/Microsoft.Dynamics.CRM.CreateMultiple",
                           "Microsoft.Dynamics.CRM.CreateMultiple"),
                          ("nosuch/Microsoft.Dynamics.CRM.CreateMultiple", "nosuch")]:
        r = await dv.post(path, json={"Targets": [account(name="x")]})
        assert r.status_code == 404 and r.json()["error"] == {
            "code": "0x80060888", "message": f"Resource not found for the segment '{segment}'."}


async def test_delete_multiple_is_refused(dv: httpx.AsyncClient, emu: Emulator) -> None:
    before = len(emu.store.table("accounts"))
    rid = seeded(emu, 1)[0]["accountid"]
    # Microsoft Learn: DeleteMultiple is for elastic tables only; on a standard table it fails with this message.
    # (BulkDelete, the asynchronous job, is emulated: test_bulk_delete.py.)
    r = await bulk(dv, "DeleteMultiple", [account(accountid=rid)])
    assert r.status_code == 400 and r.json()["error"]["message"] == "DeleteMultiple has not yet been implemented."
    assert len(emu.store.table("accounts")) == before


# ----- what else sees the writes: change tracking, steps

async def test_change_tracking_sees_bulk_writes(dv: httpx.AsyncClient, emu: Emulator) -> None:
    link = await _delta_link(dv, "accounts?$select=name", TRACK)
    first = seeded(emu, 1)[0]
    ids = (await bulk(dv, "CreateMultiple", [account(name="Tracked 1"), account(name="Tracked 2")])).json()["Ids"]
    assert (await bulk(dv, "UpdateMultiple", [account(accountid=first["accountid"], name="Tracked 3")])).status_code \
        == 204
    rows = (await dv.get(link)).json()["value"]
    assert {r["accountid"]: r["name"] for r in rows} == {ids[0]: "Tracked 1", ids[1]: "Tracked 2",
                                                        first["accountid"]: "Tracked 3"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with r.server:
        yield r


async def test_create_and_update_steps_fire_once_per_record(dv, emu: Emulator, receiver: Receiver) -> None:
    receiver.calls.clear()
    await register(dv, receiver.url, message="Create", table="account")
    await register(dv, receiver.url, message="Update", table="account")
    # A failing request commits nothing, so no step fires for its records that did pass.
    r = await bulk(dv, "CreateMultiple", [account(name="fine"), account(name="bad", nosuch=1)])
    assert r.status_code == 400
    ids = (await bulk(dv, "CreateMultiple", [account(name=f"Hooked {i}") for i in range(3)])).json()["Ids"]
    await settle(emu, receiver, 3)
    assert sorted((c["body"]["MessageName"], c["body"]["PrimaryEntityId"]) for c in receiver.calls) == sorted(
        ("Create", rid) for rid in ids)
    receiver.calls.clear()
    r = await bulk(dv, "UpsertMultiple", [account(accountid=ids[0], name="Hooked again"), account(name="Hooked 4")])
    assert r.status_code == 204
    await settle(emu, receiver, 2)
    assert sorted(c["body"]["MessageName"] for c in receiver.calls) == ["Create", "Update"]
    update = next(c["body"] for c in receiver.calls if c["body"]["MessageName"] == "Update")
    assert update["PrimaryEntityId"] == ids[0] and update["UserId"] == user_id_for("dualsync-integration")


# ----- service protection

@pytest.mark.parametrize("settings_overrides", [{"limits": Limits(window_requests=2, window_seconds=300)}])
async def test_a_bulk_request_counts_as_one_request(dv: httpx.AsyncClient) -> None:
    for n in range(2):
        r = await bulk(dv, "CreateMultiple", [account(name=f"counted {n}.{i}") for i in range(50)])
        assert r.status_code == 200
    r = await bulk(dv, "CreateMultiple", [account(name="one too many")])
    assert r.status_code == 429 and r.json()["error"]["code"] == "0x80072322"


@pytest.mark.parametrize("settings_overrides", [{"limits": Limits(window_execution_ms=200),
                                                 "faults": Faults(batch_op_latency_ms=25)}])
async def test_execution_time_grows_with_the_records(dv: httpx.AsyncClient) -> None:
    assert (await bulk(dv, "CreateMultiple", [account(name="quick")])).status_code == 200
    assert (await dv.get("accounts?$top=1")).status_code == 200
    assert (await bulk(dv, "CreateMultiple", [account(name=f"slow {i}") for i in range(10)])).status_code == 200
    r = await dv.get("accounts?$top=1")
    assert r.status_code == 429 and r.json()["error"]["code"] == "0x80072321"


# ----- $batch

async def test_bulk_actions_run_inside_change_sets(dv: httpx.AsyncClient, emu: Emulator) -> None:
    body, headers = batch([[
        op("POST", f"{API}/accounts", {"name": "Parent", "accountnumber": "CS-P"}, "1"),
        op("POST", f"{API}/contacts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": [
            {"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": f"Child {i}",
             "parentcustomerid_account@odata.bind": "$1"} for i in range(2)]}, "2")]])
    r = await dv.post("$batch", content=body, headers=headers)
    assert r.status_code == 200, r.text
    (s1, h1, _), (s2, _, created) = parse_response(r)
    assert (s1, s2) == (204, 200)
    parent = h1["odata-entityid"].rsplit("(", 1)[1][:-1]
    for rid in json.loads(created)["Ids"]:
        assert emu.store.table("contacts").get(rid)["_parentcustomerid_value"] == parent
    # A later failure in the change set rolls the bulk action back with everything else.
    before, seq = len(emu.store.table("accounts")), emu.store.current_seq()
    body, headers = batch([[
        op("POST", f"{API}/accounts/Microsoft.Dynamics.CRM.CreateMultiple",
           {"Targets": [account(name="Rolled back 1"), account(name="Rolled back 2")]}, "1"),
        op("POST", f"{API}/accounts", {"name": "Bad", "nosuch": 1}, "2")]])
    r = await dv.post("$batch", content=body, headers=headers)
    assert r.status_code == 400
    assert len(emu.store.table("accounts")) == before and emu.store.current_seq() == seq


async def test_bulk_action_outside_a_change_set_is_atomic_on_its_own(dv: httpx.AsyncClient, emu: Emulator) -> None:
    before = len(emu.store.table("accounts"))
    body, headers = batch([
        op("POST", f"{API}/accounts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": [account(name="Kept")]}),
        op("POST", f"{API}/accounts/Microsoft.Dynamics.CRM.CreateMultiple",
           {"Targets": [account(name="Dropped"), account(name="Bad", nosuch=1)]})])
    r = await dv.post("$batch", content=body, headers=headers)
    assert [s for s, _, _ in parse_response(r)] == [200, 400]
    assert len(emu.store.table("accounts")) == before + 1


# ----- x-ms-dop-hint

async def test_dop_hint_on_every_web_api_response(dv: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    body, headers = batch([op("GET", f"{API}/accounts?$top=1")])
    responses = [await dv.get("accounts?$top=1"), await dv.post("accounts", json={"name": "hinted"}),
                 await dv.get("nosuch"), await bulk(dv, "CreateMultiple", [account(name="hinted too")]),
                 await dv.post("$batch", content=body, headers=headers), await anon.get(f"{API}/accounts")]
    assert [r.status_code for r in responses] == [200, 204, 404, 200, 200, 401]
    assert {r.headers.get("x-ms-dop-hint") for r in responses} == {"4"}
    token = await anon.post("/tenant/oauth2/v2.0/token", data={"grant_type": "client_credentials"})
    assert "x-ms-dop-hint" not in token.headers  # the identity endpoint is not the Web API


@pytest.mark.parametrize("settings_overrides", [{"dop_hint": 48}])
async def test_dop_hint_is_a_setting(dv: httpx.AsyncClient) -> None:
    assert (await dv.get("accounts?$top=1")).headers["x-ms-dop-hint"] == "48"


@pytest.mark.parametrize("settings_overrides", [{"faults": Faults(batch_op_latency_ms=1)}])
async def test_concurrent_bulk_requests_do_not_interleave(dv: httpx.AsyncClient, emu: Emulator) -> None:
    results = await asyncio.gather(*(bulk(dv, "CreateMultiple", [account(name=f"c{n}.{i}") for i in range(20)])
                                     for n in range(4)))
    assert [r.status_code for r in results] == [200] * 4
    seq_of = {c.record_id: c.seq for c in emu.store.changes}
    for r in results:  # each request's records were written back to back
        seqs = sorted(seq_of[rid] for rid in r.json()["Ids"])
        assert seqs == list(range(seqs[0], seqs[0] + 20))
