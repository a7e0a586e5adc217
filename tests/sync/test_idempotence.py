"""Creates are idempotent across crashes: a reservation left by a dead worker is taken over, and a record it
created before dying is found by natural key and coupled, never duplicated. Plus the BC "empty" rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.http.retry import RetryPolicy
from shared.mapping import Side, System
from shared.mapping.engine import NIL_GUID
from shared.sync import Outcome
from shared.sync.wire import for_wire
from tests.sync.conftest import World, bc_customer, coupled_customer
from tests.sync.test_mappings import bc_contact

IMPATIENT = RetryPolicy(max_attempts=1, max_elapsed=1.0, base_delay=0.0, max_delay=0.0, rate_limit_base=0.0)


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
    # Not silent: a transient error record (never skipped) that the retry timer and the modified sync pick up.
    error = await world.state.errors.find_error("customers", "to_crm", customer["id"])
    assert error is not None and error.transient and not error.skipped


def test_business_central_gets_typed_empty_values_and_creates_leave_empties_out() -> None:
    current = {"city": "Lund", "creditLimit": 5.0, "currencyId": "0c8a1d2e-1111-2222-3333-444455556666",
               "taxLiable": True}
    cleared = dict.fromkeys(current)
    assert for_wire(System.BUSINESS_CENTRAL, cleared, current) == {
        "city": "", "creditLimit": 0, "currencyId": NIL_GUID, "taxLiable": False}
    assert for_wire(System.BUSINESS_CENTRAL, {"city": None, "name": "x"}, None) == {"name": "x"}
    assert for_wire(System.DATAVERSE, {"address1_city": None}, {"address1_city": "Lund"}) == {"address1_city": None}


async def test_a_create_that_failed_leaves_no_reservation_behind(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    await world.dv.configure(faults={"error_ratio": 1.0, "error_status": 500})
    impatient = world.engine_with(IMPATIENT, reservation_wait=0.2)
    failed = await impatient.sync_record("customers", "to_crm", customer["id"], create=True)
    assert failed.outcome is Outcome.FAILED and failed.retryable
    assert await world.coupling("customers", Side.ERP, customer["id"]) is None  # released, not left pending
    await world.dv.configure(faults={"error_ratio": 0.0})
    again = await impatient.sync_record("customers", "to_crm", customer["id"], create=True)
    assert again.outcome is Outcome.INSERTED, again.message  # at once, not "another worker is creating"
    assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is None


class Crash(BaseException):
    """The process dies: nothing after this point runs (not even `except Exception` handlers)."""


async def crash_after_create(world: World, mapping: str, direction: str, source_id: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Sync `source_id` with a worker that dies right after the target accepted the create, before the
    coupling is stored — the window the issue names."""
    couplings = world.state.couplings

    async def die(*_: Any, **__: Any) -> None:
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(couplings, "complete", die)
        with pytest.raises(Crash):
            await world.engine.sync_record(mapping, direction, source_id, create=True)


def later(world: World) -> Any:
    """A worker that starts after the dead one's reservation went stale."""
    now = world.engine.options.clock() + dt.timedelta(hours=1)
    return world.engine_with(world.engine.connector(Side.ERP).svc.retry.policy, clock=lambda: now)


async def test_a_crash_between_create_and_coupling_leaves_no_duplicate_in_dataverse(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # BC contact → Sales contact: contacts have no natural or alternate key.
    customer, _ = await coupled_customer(world)
    contact = await bc_contact(world, customer["number"], displayName="Lea Lund", email="lea@fabrikam.example.com")
    await crash_after_create(world, "contacts", "to_crm", contact["id"], monkeypatch)
    assert len([c for c in await world.dv.rows("contacts") if c.get("fullname") == "Lea Lund"]) == 1
    result = await later(world).sync_record("contacts", "to_crm", contact["id"], create=True)
    assert result.outcome is Outcome.COUPLED, result.message
    mine = [c for c in await world.dv.rows("contacts") if c.get("fullname") == "Lea Lund"]
    assert [c["contactid"] for c in mine] == [result.destination_id]


async def test_a_crash_between_create_and_coupling_leaves_no_duplicate_in_business_central(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Sales contact → BC contact: BC picks its own ids, so the earlier attempt's record is found by content.
    customer, account_id = await coupled_customer(world)
    contact = await world.dv.insert("contacts", {"firstname": "Per", "lastname": "Holm", "fullname": "Per Holm",
                                                 "_parentcustomerid_value": account_id,
                                                 "parentcustomeridtype": "account", "jobtitle": "CFO"})
    await crash_after_create(world, "contacts", "to_erp", contact["contactid"], monkeypatch)
    assert len([c for c in await world.bc.rows("contacts") if c["displayName"] == "Per Holm"]) == 1
    result = await later(world).sync_record("contacts", "to_erp", contact["contactid"], create=True)
    assert result.outcome is Outcome.COUPLED, result.message
    mine = [c for c in await world.bc.rows("contacts") if c["displayName"] == "Per Holm"]
    assert [c["id"] for c in mine] == [result.destination_id]
    assert mine[0]["companyNumber"] == customer["number"]
