"""The same field edited on both sides since the last sync: each conflict policy, and the error → skipped path."""

from __future__ import annotations

import asyncio

import pytest

from shared.mapping import ConflictPolicy, Side
from shared.sync import Outcome
from tests.sync.conftest import World, coupled_customer


async def edit_both(world: World, customer_id: str, account_id: str, *, crm_last: bool = True) -> None:
    edits = [world.bc.edit("customers", customer_id, {"city": "ERP-city", "email": "new@erp.example.com"}),
             world.dv.edit("accounts", account_id, {"address1_city": "CRM-city", "telephone1": "+1 555"})]
    first, second = edits if crm_last else edits[::-1]
    await first
    await asyncio.sleep(1.05)  # Dataverse stamps modifiedon in whole seconds
    await second


@pytest.mark.parametrize(("policy", "winner"), [(ConflictPolicy.ERP_WINS, "ERP-city"),
                                                (ConflictPolicy.CRM_WINS, "CRM-city")])
async def test_a_policy_picks_the_winner_and_other_fields_still_travel(world: World, policy: ConflictPolicy,
                                                                      winner: str) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "ERP-city", "email": "new@erp.example.com"})
    await world.dv.edit("accounts", account_id, {"address1_city": "CRM-city", "telephone1": "+1 555"})
    result = await world.engine.sync_record("customers", "to_erp", account_id, conflict=policy)
    assert result.outcome is Outcome.MODIFIED, result.message
    [conflict] = result.conflicts
    assert (conflict.field, conflict.erp, conflict.crm) == ("city ⇄ address1_city", "ERP-city", "CRM-city")
    bc, dv = await world.bc.row("customers", customer["id"]), await world.dv.row("accounts", account_id)
    assert bc["city"] == dv["address1_city"] == winner
    assert (bc["phoneNumber"], dv["emailaddress1"]) == ("+1 555", "new@erp.example.com")
    assert (await world.engine.sync_record("customers", "to_crm", customer["id"], force=True)).writes == 0


async def test_the_mappings_own_policy_applies_by_default(world: World) -> None:
    customer, account_id = await coupled_customer(world)  # customers: conflict erp_wins
    await edit_both(world, customer["id"], account_id, crm_last=True)
    result = await world.engine.sync_record("customers", "to_erp", account_id)
    assert [c.winner for c in result.conflicts] == [Side.ERP]
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "ERP-city"


@pytest.mark.parametrize(("crm_last", "winner"), [(True, "CRM-city"), (False, "ERP-city")])
async def test_newest_wins_compares_the_modified_on_of_both_sides(world: World, crm_last: bool, winner: str) -> None:
    customer, account_id = await coupled_customer(world)
    await edit_both(world, customer["id"], account_id, crm_last=crm_last)
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], conflict=ConflictPolicy.NEWEST_WINS)
    assert result.outcome is Outcome.MODIFIED, result.message
    assert (await world.bc.row("customers", customer["id"]))["city"] == winner
    assert (await world.dv.row("accounts", account_id))["address1_city"] == winner


async def test_policy_error_writes_nothing_and_the_same_error_twice_skips_until_restored(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "ERP-city"})
    await world.dv.edit("accounts", account_id, {"address1_city": "CRM-city", "telephone1": "+1 555"})
    mark = world.traffic.mark()
    first = await world.engine.sync_record("customers", "to_crm", customer["id"], conflict=ConflictPolicy.ERROR)
    assert first.outcome is Outcome.FAILED and not first.retryable
    assert "update conflict" in first.message and "city ⇄ address1_city" in first.message
    assert world.traffic.writes_since(mark) == []  # not even the unconflicted phone number
    error = await world.state.errors.get_error("customers", "to_crm", customer["id"])
    assert (error.destination_id, error.skipped, error.attempts) == (account_id, False, 1)
    coupling = await world.coupling("customers", Side.ERP, customer["id"])
    assert coupling.result_to_crm == "failure"

    second = await world.engine.sync_record("customers", "to_crm", customer["id"], conflict=ConflictPolicy.ERROR)
    assert second.outcome is Outcome.FAILED
    assert (await world.state.errors.get_error("customers", "to_crm", customer["id"])).skipped
    third = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert third.outcome is Outcome.SKIPPED and "update conflict" in third.message
    assert world.traffic.writes_since(mark) == []

    # An operator settles it in the CRM and restores the record: it syncs, and its error is gone.
    await world.dv.edit("accounts", account_id, {"address1_city": "ERP-city"})
    await world.state.errors.restore_error("customers", "to_crm", customer["id"])
    done = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert done.outcome is Outcome.MODIFIED, done.message
    assert (await world.bc.row("customers", customer["id"]))["phoneNumber"] == "+1 555"
    assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is None
    jobs = [j async for j in world.state.jobs.list_jobs("customers")]
    assert sum(j.counts["failed"] for j in jobs) == 2 and sum(j.counts["skipped"] for j in jobs) == 1
