"""Creates are idempotent across crashes: a reservation left by a dead worker is taken over, and a record it
created before dying is found by natural key and coupled, never duplicated. Plus the BC "empty" rule."""

from __future__ import annotations

import datetime as dt

from shared.mapping import Side, System
from shared.mapping.engine import NIL_GUID
from shared.sync import Outcome
from shared.sync.wire import for_wire
from tests.sync.conftest import World, bc_customer


async def crashed_reservation(world: World, customer_id: str) -> None:
    """What a worker that died mid-create leaves: a pending reservation, long ago."""
    long_ago = world.engine.options.clock() - dt.timedelta(hours=1)
    await world.state.couplings.reserve("customers", Side.ERP, customer_id, now=long_ago)


async def test_a_stale_reservation_is_taken_over_and_the_record_created(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    await crashed_reservation(world, customer["id"])
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
    assert result.outcome is Outcome.INSERTED, result.message
    coupling = await world.coupling("customers", Side.ERP, customer["id"])
    assert not coupling.pending and coupling.crm_id == result.destination_id


async def test_a_record_created_before_the_crash_is_coupled_not_duplicated(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world, city="Ystad")
    await crashed_reservation(world, customer["id"])
    # The dead worker had created the account (with the customer's number) but not recorded it.
    orphan = await world.dv.insert("accounts", {"name": customer["displayName"], "accountnumber": customer["number"],
                                                "customertypecode": 3, "statecode": 0, "address1_city": "old"},
                                   as_=world.integration_user)
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
    assert result.outcome is Outcome.COUPLED and result.destination_id == orphan["accountid"], result.message
    assert len([a for a in await world.dv.rows("accounts") if a["accountnumber"] == customer["number"]]) == 1
    assert (await world.dv.row("accounts", orphan["accountid"]))["address1_city"] == "Ystad"


async def test_a_live_reservation_is_waited_for_then_reported_as_busy(world: World) -> None:
    customer = await bc_customer(world)
    await world.state.couplings.reserve("customers", Side.ERP, customer["id"], now=world.engine.options.clock())
    engine = world.engine_with(world.engine.connector(Side.ERP).svc.retry.policy, reservation_wait=0.2)
    result = await engine.sync_record("customers", "to_crm", customer["id"], create=True)
    assert result.outcome is Outcome.FAILED and result.retryable
    assert "another worker is creating" in result.message
    assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is None


def test_business_central_gets_typed_empty_values_and_creates_leave_empties_out() -> None:
    current = {"city": "Lund", "creditLimit": 5.0, "currencyId": "0c8a1d2e-1111-2222-3333-444455556666",
               "taxLiable": True}
    cleared = dict.fromkeys(current)
    assert for_wire(System.BUSINESS_CENTRAL, cleared, current) == {
        "city": "", "creditLimit": 0, "currencyId": NIL_GUID, "taxLiable": False}
    assert for_wire(System.BUSINESS_CENTRAL, {"city": None, "name": "x"}, None) == {"name": "x"}
    assert for_wire(System.DATAVERSE, {"address1_city": None}, {"address1_city": "Lund"}) == {"address1_city": None}
