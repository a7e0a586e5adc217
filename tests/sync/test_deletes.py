"""Deleted records: the source's deletion policy, and deletion conflicts when the counterpart is gone."""

from __future__ import annotations

import pytest

from shared.mapping import DeletionPolicy, Side, TableMapping
from shared.sync import Outcome
from tests.sync.conftest import World, coupled_customer


def customers(world: World, policy: DeletionPolicy) -> TableMapping:
    return world.pack.mapping("customers").model_copy(update={"deletion": policy})


async def test_a_deleted_bc_customer_removes_the_coupling_under_the_packs_policy(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.delete("customers", customer["id"])
    result = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert result.outcome is Outcome.UNCOUPLED and "remove_coupling" in result.message
    assert await world.dv.row("accounts", account_id) is not None
    assert await world.coupling("customers", Side.CRM, account_id) is None
    # A second notice of the same deletion: nothing coupled any more, nothing to do.
    again = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert again.outcome is Outcome.IGNORED


@pytest.mark.parametrize("deleted", [Side.ERP, Side.CRM])
async def test_propagate_deletes_the_counterpart_both_ways(world: World, deleted: Side) -> None:
    customer, account_id = await coupled_customer(world)
    mapping = customers(world, DeletionPolicy.PROPAGATE)
    if deleted is Side.ERP:
        await world.bc.delete("customers", customer["id"])
        result = await world.engine.sync_record(mapping, "to_crm", customer["id"])
    else:
        await world.dv.delete("accounts", account_id)
        result = await world.engine.sync_record(mapping, "to_erp", account_id)
    assert (result.outcome, result.writes) == (Outcome.DELETED, 1), result.message
    assert await world.dv.row("accounts", account_id) is None
    assert await world.bc.row("customers", customer["id"]) is None
    assert await world.coupling("customers", Side.ERP, customer["id"]) is None


async def test_propagate_does_not_delete_a_counterpart_changed_since_the_last_sync(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.dv.edit("accounts", account_id, {"telephone1": "+1 222"})
    await world.bc.delete("customers", customer["id"])
    result = await world.engine.sync_record(customers(world, DeletionPolicy.PROPAGATE), "to_crm", customer["id"])
    assert result.outcome is Outcome.FAILED and "changed since the last sync" in result.message
    assert await world.dv.row("accounts", account_id) is not None


async def test_a_deleted_counterpart_is_restored_under_restore(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.dv.delete("accounts", account_id)
    await world.bc.edit("customers", customer["id"], {"city": "Visby"})
    result = await world.engine.sync_record(customers(world, DeletionPolicy.RESTORE), "to_crm", customer["id"])
    assert result.outcome is Outcome.INSERTED, result.message
    # Dataverse takes the id we choose (derived from the customer), so the restored account has the id the
    # deleted one had: a crashed attempt could never leave a second one.
    restored = await world.dv.row("accounts", result.destination_id)
    assert (restored["accountnumber"], restored["address1_city"]) == (customer["number"], "Visby")
    assert (await world.coupling("customers", Side.ERP, customer["id"])).crm_id == result.destination_id


async def test_a_deleted_counterpart_is_a_deletion_conflict_under_error(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.dv.delete("accounts", account_id)
    await world.bc.edit("customers", customer["id"], {"city": "Visby"})
    mark = world.traffic.mark()
    result = await world.engine.sync_record(customers(world, DeletionPolicy.ERROR), "to_crm", customer["id"])
    assert result.outcome is Outcome.FAILED and result.message.startswith("deletion conflict")
    assert world.traffic.writes_since(mark) == []
    assert (await world.coupling("customers", Side.ERP, customer["id"])).crm_id == account_id
    error = await world.state.errors.get_error("customers", "to_crm", customer["id"])
    assert error.destination_id == account_id


async def test_a_one_way_mappings_deleted_target_is_a_conflict_not_a_deletion_of_the_source(world: World) -> None:
    eur = next(c for c in await world.bc.rows("currencies") if c["code"] == "EUR")
    currency_id = (await world.engine.sync_record("currencies", "to_crm", eur["id"], create=True)).destination_id
    await world.dv.delete("transactioncurrencies", currency_id)
    await world.bc.edit("currencies", eur["id"], {"displayName": "Euro (EMU)"})
    mapping = world.pack.mapping("currencies").model_copy(update={"deletion": DeletionPolicy.PROPAGATE})
    result = await world.engine.sync_record(mapping, "to_crm", eur["id"])
    assert result.outcome is Outcome.FAILED and "deletion conflict" in result.message
    assert await world.bc.row("currencies", eur["id"]) is not None
