"""Change tracking: deltaLink, changes then $deletedEntity rows, rejected query options, invalid tokens."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import httpx

from emulators.dataverse.core import Emulator
from tests.emulators.dataverse.conftest import API, BASE

TRACK = {"Prefer": "odata.track-changes"}


async def _delta_link(dv: httpx.AsyncClient, url: str, headers: dict[str, str]) -> str:
    while True:
        body = (await dv.get(url, headers=headers)).json()
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


async def test_initial_read_gives_delta_link_on_last_page(dv: httpx.AsyncClient) -> None:
    prefer = {"Prefer": "odata.track-changes,odata.maxpagesize=6"}
    r = await dv.get("accounts?$select=name,accountnumber", headers=prefer)
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=6,odata.track-changes"
    assert "@odata.deltaLink" not in r.json() and "@odata.nextLink" in r.json()
    link = await _delta_link(dv, "accounts?$select=name,accountnumber", prefer)
    assert link.startswith(f"{BASE}{API}/accounts?$select=name,accountnumber&$deltatoken=")


async def test_following_delta_link_returns_changes_then_deletions(dv: httpx.AsyncClient, emu: Emulator) -> None:
    link = await _delta_link(dv, "accounts?$select=name", TRACK)
    rows = list(emu.store.table("accounts").all())
    changed, deleted = rows[0]["accountid"], rows[1]["accountid"]
    await dv.patch(f"accounts({changed})", json={"name": "Renamed once"})
    await dv.patch(f"accounts({changed})", json={"name": "Renamed twice"})
    await dv.delete(f"accounts({deleted})")
    r = await dv.post("accounts", json={"name": "Brand new"})
    new_id = r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    body = (await dv.get(link)).json()
    assert body["@odata.context"] == f"{BASE}{API}/$metadata#accounts(name)/$delta"
    values = body["value"]
    assert [v.get("accountid") for v in values[:2]] == [changed, new_id]
    assert values[0]["name"] == "Renamed twice"  # current state, once
    assert values[2] == {"@odata.context": f"{BASE}{API}/$metadata#accounts/$deletedEntity", "id": deleted,
                         "reason": "deleted"}
    assert len(values) == 3
    again = (await dv.get(body["@odata.deltaLink"])).json()
    assert again["value"] == [] and "@odata.deltaLink" in again


async def test_changes_in_other_tables_are_not_reported(dv: httpx.AsyncClient, emu: Emulator) -> None:
    link = await _delta_link(dv, "accounts?$select=name", TRACK)
    contact = next(emu.store.table("contacts").all())
    await dv.patch(f"contacts({contact['contactid']})", json={"jobtitle": "Boss"})
    assert (await dv.get(link)).json()["value"] == []


async def test_delta_pages_follow_maxpagesize(dv: httpx.AsyncClient, emu: Emulator) -> None:
    link = await _delta_link(dv, "contacts?$select=lastname", TRACK)
    for c in list(emu.store.table("contacts").all())[:5]:
        await dv.patch(f"contacts({c['contactid']})", json={"jobtitle": "Changed"})
    first = (await dv.get(link, headers={"Prefer": "odata.maxpagesize=3"})).json()
    assert len(first["value"]) == 3 and "@odata.nextLink" in first
    second = (await dv.get(first["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=3"})).json()
    assert len(second["value"]) == 2 and "@odata.deltaLink" in second


async def test_track_changes_rejects_filter_orderby_top(dv: httpx.AsyncClient) -> None:
    for q in ("$filter=name eq 'x'", "$orderby=name", "$top=5"):
        r = await dv.get(f"accounts?$select=name&{q}", headers=TRACK)
        assert r.status_code == 400, q


async def test_invalid_and_expired_tokens_are_400(dv: httpx.AsyncClient, emu: Emulator) -> None:
    assert (await dv.get("accounts?$deltatoken=garbage")).status_code == 400
    future = quote(f"{emu.store.current_seq() + 100}!01/01/2026 00:00:00", safe="")
    assert (await dv.get(f"accounts?$deltatoken={future}")).status_code == 400
    # Past the organization's ExpireChangeTrackingInDays (30 by default): the service's ExpiredVersionStamp.
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=31)).strftime("%m/%d/%Y %H:%M:%S")
    r = await dv.get(f"accounts?$deltatoken={quote(f'{emu.store.current_seq()}!{old}', safe='')}")
    assert r.status_code == 400 and r.json()["error"] == {
        "code": "0x80044352",
        "message": "Version stamp associated with the client has expired. Please perform a full sync."}
    month = (dt.datetime.now(dt.UTC) - dt.timedelta(days=29)).strftime("%m/%d/%Y %H:%M:%S")
    assert (await dv.get(f"accounts?$deltatoken={quote(f'{emu.store.current_seq()}!{month}', safe='')}")
            ).status_code == 200
    fresh = dt.datetime.now(dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
    ok = await dv.get(f"accounts?$deltatoken={quote(f'{emu.store.current_seq()}!{fresh}', safe='')}")
    assert ok.status_code == 200


async def test_tokens_from_before_a_reseed_are_refused(dv: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    link = await _delta_link(dv, "accounts?$select=name", TRACK)
    assert (await anon.post("/_admin/reset", json={"records": 5, "seed": 2})).status_code == 200
    r = await dv.get(link)
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80044352"


async def test_a_table_without_change_tracking_refuses_delta_reads(dv: httpx.AsyncClient, emu: Emulator) -> None:
    link = await _delta_link(dv, "accounts?$select=name", TRACK)
    emu.settings.untracked_tables = ["accounts"]
    for r in (await dv.get("accounts?$select=name", headers=TRACK), await dv.get(link)):
        assert r.status_code == 400 and r.json()["error"] == {
            "code": "0x80072491", "message": "Entity account isn't enabled for change tracking."}
    # Plain reads are not change tracking: they still work, and other tables still track.
    assert (await dv.get("accounts?$select=name")).status_code == 200
    assert "@odata.deltaLink" in (await dv.get("contacts?$select=lastname", headers=TRACK)).json()
