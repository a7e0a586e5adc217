"""`POST /_admin/bulk/{table}`: many rows in one request, each inserted as the single-row admin route would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from emulators.finance_operations import FinanceOperationsSettings
from emulators.finance_operations import create_app as create_fo


@pytest.fixture
async def dv() -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    app = create_dv(DataverseSettings(records=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://dv.test") as client:
        yield client, app.state.emulator


@pytest.fixture
async def fo() -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    app = create_fo(FinanceOperationsSettings(records=0, event_delay_ms=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://fo.test") as client:
        yield client, app.state.emulator
    await app.state.emulator.events.aclose()


async def test_rows_are_inserted_as_the_named_user_and_their_ids_returned(dv: tuple[httpx.AsyncClient, object]) -> None:
    client, emu = dv
    before = len(emu.store.table("accounts"))
    rows = [{"name": f"Bulk {i}", "accountnumber": f"B{i:04d}", "customertypecode": 3} for i in range(250)]
    r = await client.post("/_admin/bulk/accounts", params={"as": "dv-sales-anna"}, json=rows)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["inserted"] == 250 and len(set(body["ids"])) == 250
    assert len(emu.store.table("accounts")) == before + 250
    stored = emu.store.table("accounts").get(body["ids"][7])
    assert stored["accountnumber"] == "B0007" and stored["statecode"] == 0  # stamped as any admin insert
    assert emu.store.changes[-1].actor.name == "Anna Berg"


async def test_the_first_refused_row_stops_the_rest_and_is_named(dv: tuple[httpx.AsyncClient, object]) -> None:
    client, emu = dv
    before = len(emu.store.table("accounts"))
    rows = [{"accountid": "00000000-0000-0000-0000-0000000000a1", "name": "one"},
            {"accountid": "00000000-0000-0000-0000-0000000000a1", "name": "again"}, {"name": "never"}]
    r = await client.post("/_admin/bulk/accounts", json=rows)
    assert r.status_code == 409 and r.json()["index"] == 1 and r.json()["inserted"] == 1
    assert len(emu.store.table("accounts")) == before + 1
    assert (await client.post("/_admin/bulk/accounts", json={"name": "x"})).status_code == 400
    assert (await client.post("/_admin/bulk/nothing", json=[])).status_code == 404
    assert (await client.post("/_admin/bulk/accounts", params={"as": "nobody"}, json=[])).status_code == 400


async def test_an_emulator_writer_validates_and_numbers_each_row(fo: tuple[httpx.AsyncClient, object]) -> None:
    client, _ = fo
    rows = [{"dataAreaId": "usmf", "CustomerAccount": f"BX-{i:03d}", "CustomerGroupId": "10",
             "OrganizationName": f"Org {i}"} for i in range(3)]
    r = await client.post("/_admin/bulk/CustomersV3", params={"as": "fo-user-ava"}, json=rows)
    assert r.status_code == 201 and r.json()["inserted"] == 3, r.text
    got = (await client.get("/_admin/tables/CustomersV3/" + "dataAreaId='usmf',CustomerAccount='BX-001'")).json()
    assert got["OrganizationName"] == "Org 1"
    r = await client.post("/_admin/bulk/CustomersV3", json=[{"OrganizationName": "No group"}])
    assert r.status_code == 400 and r.json()["index"] == 0 and r.json()["error"]["innererror"]
