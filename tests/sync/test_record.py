"""sync_record against both emulators over HTTP and Azurite: creates, updates, echoes, idempotent creates."""

from __future__ import annotations

import asyncio

from shared.mapping import Direction, Side
from shared.sync import Outcome
from shared.sync.context import RunContext
from tests.sync.conftest import World, bc_customer, coupled_customer, crm_account


async def test_a_new_bc_customer_creates_one_account_with_lookups_bound(world: World) -> None:
    owners = await world.couple_salespeople()
    customer = await bc_customer(world)
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
    assert result.outcome is Outcome.INSERTED, result.message
    assert result.writes == 1  # the account; the dependency's own writes are on its result
    account = await world.dv.row("accounts", result.destination_id)
    assert account is not None
    assert (account["accountnumber"], account["name"], account["address1_city"], account["creditlimit"]) == \
        (customer["number"], "Fabrikam Nord AB", "Malmö", 1000.0)
    assert account["customertypecode"] == 3  # on_create, so the account passes the CRM filter
    assert account["_ownerid_value"] == owners[customer["salespersonCode"]]
    # The currency was not coupled: it was synced first (coupled to Sales' EUR by its ISO code).
    [dependency] = result.dependencies
    assert (dependency.mapping, dependency.outcome) == ("currencies", Outcome.COUPLED)
    currency = await world.dv.row("transactioncurrencies", account["_transactioncurrencyid_value"])
    assert currency["isocurrencycode"] == "EUR"
    coupling = await world.coupling("customers", Side.CRM, account["accountid"])
    assert coupling is not None and coupling.erp_id == customer["id"] and coupling.snapshot
    job = [j async for j in world.state.jobs.list_jobs("customers")]
    assert [(j.counts["inserted"], j.status) for j in job] == [(1, "finished")]


async def test_an_uncoupled_record_is_left_alone_when_the_mapping_syncs_only_coupled_records(world: World) -> None:
    customer = await bc_customer(world)
    mark = world.traffic.mark()
    result = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert result.outcome is Outcome.IGNORED and "only coupled" in (result.message or "")
    assert world.traffic.writes_since(mark) == []


async def test_a_new_sales_account_creates_a_bc_customer(world: World) -> None:
    eur = next(c for c in await world.bc.rows("currencies") if c["code"] == "EUR")
    await world.engine.sync_record("currencies", "to_crm", eur["id"], create=True)
    currency = (await world.coupling("currencies", Side.ERP, eur["id"])).crm_id
    account = await crm_account(world, _transactioncurrencyid_value=currency)
    result = await world.engine.sync_record("customers", "to_erp", account["accountid"], create=True)
    assert result.outcome is Outcome.INSERTED, result.message
    customer = await world.bc.row("customers", result.destination_id)
    assert (customer["number"], customer["displayName"], customer["city"], customer["phoneNumber"]) == \
        (account["accountnumber"], "Contoso Süd GmbH", "München", "+49 89 1")
    assert customer["currencyId"] == eur["id"] and customer["blocked"] == " "


async def test_updates_travel_both_ways_and_their_echoes_write_nothing(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    account_id = (await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)).destination_id
    await world.bc.edit("customers", customer["id"], {"city": "Lund", "displayName": "Fabrikam Syd AB"})
    result = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert (result.outcome, result.writes) == (Outcome.MODIFIED, 1)
    account = await world.dv.row("accounts", account_id)
    assert (account["address1_city"], account["name"]) == ("Lund", "Fabrikam Syd AB")

    # The CRM's notice of our own write: dropped (integration user), and, forced past that shortcut, the content
    # comparison against the snapshot still finds nothing to do.
    for force in (False, True):
        mark = world.traffic.mark()
        echo = await world.engine.sync_record("customers", "to_erp", account_id, force=force)
        assert (echo.outcome, echo.writes, world.traffic.writes_since(mark)) == (Outcome.UNCHANGED, 0, [])

    await world.dv.edit("accounts", account_id, {"telephone1": "+46 46 999", "address1_postalcode": "22100"})
    result = await world.engine.sync_record("customers", "to_erp", account_id)
    assert (result.outcome, result.writes) == (Outcome.MODIFIED, 1)
    row = await world.bc.row("customers", customer["id"])
    assert (row["phoneNumber"], row["postalCode"]) == ("+46 46 999", "22100")
    # BC's notice of our write (BC does not say who changed a record): the etag, then the content, match.
    for force in (False, True):
        mark = world.traffic.mark()
        echo = await world.engine.sync_record("customers", "to_crm", customer["id"], force=force)
        assert (echo.outcome, echo.writes, world.traffic.writes_since(mark)) == (Outcome.UNCHANGED, 0, [])
    jobs = [j async for j in world.state.jobs.list_jobs("customers")]
    assert sum(j.counts["unchanged"] for j in jobs) == 4 and sum(j.counts["modified"] for j in jobs) == 2


async def test_the_same_notice_twice_and_concurrently_creates_one_record(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    results = await asyncio.gather(*(world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
                                     for _ in range(4)))
    again = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
    outcomes = sorted(r.outcome.value for r in [*results, again])
    assert outcomes == ["inserted", "unchanged", "unchanged", "unchanged", "unchanged"], [r.message for r in results]
    accounts = [a for a in await world.dv.rows("accounts") if a["accountnumber"] == customer["number"]]
    assert len(accounts) == 1
    assert {r.destination_id for r in [*results, again]} == {accounts[0]["accountid"]}


async def test_concurrent_notices_of_a_new_sales_account_create_one_bc_customer(world: World) -> None:
    account = await crm_account(world)
    results = await asyncio.gather(*(world.engine.sync_record("customers", Direction.TO_ERP, account["accountid"],
                                                              create=True) for _ in range(3)))
    assert sorted(r.outcome.value for r in results) == ["inserted", "unchanged", "unchanged"]
    assert len([c for c in await world.bc.rows("customers") if c["number"] == account["accountnumber"]]) == 1


async def test_different_fields_edited_on_both_sides_both_survive(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    account_id = (await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)).destination_id
    await world.bc.edit("customers", customer["id"], {"city": "Uppsala"})
    await world.dv.edit("accounts", account_id, {"telephone1": "+46 18 555"})
    result = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert (result.outcome, result.writes, result.conflicts) == (Outcome.MODIFIED, 2, [])
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Uppsala"
    assert (await world.bc.row("customers", customer["id"]))["phoneNumber"] == "+46 18 555"
    # Both notices of our writes come back as nothing to do.
    mark = world.traffic.mark()
    assert (await world.engine.sync_record("customers", "to_erp", account_id, force=True)).writes == 0
    assert (await world.engine.sync_record("customers", "to_crm", customer["id"], force=True)).writes == 0
    assert world.traffic.writes_since(mark) == []


async def test_a_record_listed_before_a_newer_change_does_not_undo_it(world: World) -> None:
    # A full or modified sync read the customer with a page; before it got to the record, the page's value
    # travelled by webhook and a person changed the account after it. The listed (stale) customer must not
    # overwrite the newer account value: it is read again first.
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Borås"})
    mapping = world.pack.mapping("customers")
    listed = await world.engine.connector(Side.ERP).get("customers", customer["id"],
                                                        select=world.engine.select(mapping, Side.ERP))
    assert (await world.engine.sync_record("customers", "to_crm", customer["id"])).outcome is Outcome.MODIFIED
    await world.dv.edit("accounts", account_id, {"address1_city": "Gävle"})
    assert (await world.engine.sync_record("customers", "to_erp", account_id)).outcome is Outcome.MODIFIED
    result = await world.engine.sync_in_context(RunContext(), mapping, Direction.TO_CRM, customer["id"], listed)
    assert result.ok, result.message
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Gävle"
    assert (await world.bc.row("customers", customer["id"]))["city"] == "Gävle"
