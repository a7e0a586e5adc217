"""Writing a pair whose other side changes mid-merge, and two syncs of one pair at once (shared/sync/lease.py).

Both failures were found by the chaos harness as lost updates: a merge wrote one side, the other side's write
was refused (a person had just edited it), and the retry took our own write for a person's change and — with the
conflict policy on its side — pushed it over that newer edit."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from shared.mapping import Side
from shared.sync import Outcome, lease
from tests.sync.conftest import PATIENT, World, coupled_customer


def edit_between(world: World, side: Side, then: Any) -> list[str]:
    """Make `then` run right after the engine's first write to `side` (a person acting at that moment)."""
    connector = world.engine.connector(side)
    original = connector.update
    done: list[str] = []

    async def update(entity: str, record_id: str, values: dict[str, Any], **kwargs: Any) -> Any:
        written = await original(entity, record_id, values, **kwargs)
        if not done:
            done.append(record_id)
            await then()
        return written

    connector.update = update  # type: ignore[method-assign]
    return done


async def test_a_write_refused_after_the_other_side_was_written_loses_no_edit(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    # Both sides changed, different fields: the merge writes both (the ERP side first).
    await world.bc.edit("customers", customer["id"], {"city": "Lund"})
    await world.dv.edit("accounts", account_id, {"telephone1": "+33 1 2"})
    # Right after our ERP write, a person edits the same phone in Sales again: our Sales write (If-Match) is
    # refused, and the merge runs again.
    done = edit_between(world, Side.ERP, lambda: world.dv.edit("accounts", account_id, {"telephone1": "+49 89 9"}))
    result = await world.engine.sync_record("customers", "to_erp", account_id)
    assert done and result.ok, result.message
    erp = await world.bc.row("customers", customer["id"])
    crm = await world.dv.row("accounts", account_id)
    assert erp is not None and crm is not None
    # The person's last phone wins on both sides; our write of the earlier one was not taken for an edit.
    assert (erp["phoneNumber"], crm["telephone1"]) == ("+49 89 9", "+49 89 9")
    assert (erp["city"], crm["address1_city"]) == ("Lund", "Lund")


async def test_a_later_sync_does_not_take_an_unrecorded_write_for_an_edit(world: World) -> None:
    """The merge gives up after our ERP write (its Sales write keeps failing): the next sync, another message,
    finds the phone we wrote recorded as synced, not as a change of the ERP side."""
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Lund"})
    await world.dv.edit("accounts", account_id, {"telephone1": "+33 1 2"})
    await world.dv.configure(faults={"error_ratio": 0.0})

    async def person_then_outage() -> None:
        await world.dv.edit("accounts", account_id, {"telephone1": "+49 89 9"})
        await world.dv.configure(faults={"error_ratio": 1.0, "error_status": 500, "seed": 1})

    edit_between(world, Side.ERP, person_then_outage)
    first = await world.engine.sync_record("customers", "to_erp", account_id)
    assert not first.ok and first.retryable, first.message
    await world.dv.configure(faults={"error_ratio": 0.0})
    again = await world.engine.sync_record("customers", "to_erp", account_id)
    assert again.ok, again.message
    erp = await world.bc.row("customers", customer["id"])
    crm = await world.dv.row("accounts", account_id)
    assert erp is not None and crm is not None
    assert (erp["phoneNumber"], crm["telephone1"]) == ("+49 89 9", "+49 89 9")
    assert (erp["city"], crm["address1_city"]) == ("Lund", "Lund")


async def test_two_syncs_of_one_pair_at_once_end_in_step(world: World) -> None:
    """Both directions of a pair, many times concurrently, while people edit both sides: each write happens
    under the pair's hold, so no sync merges against a write another has not recorded yet."""
    customer, account_id = await coupled_customer(world)
    edits = [("city", "Oslo"), ("phoneNumber", "+47 55 2")]
    for name, value in edits:
        await world.bc.edit("customers", customer["id"], {name: value})
    await world.dv.edit("accounts", account_id, {"telephone1": "+33 1 2", "emailaddress1": "x@example.com"})
    results = await asyncio.gather(*(world.engine.sync_record("customers", flow, rid)
                                     for _ in range(4) for flow, rid in (("to_crm", customer["id"]),
                                                                          ("to_erp", account_id))))
    assert all(r.ok or r.retryable for r in results), [r.message for r in results if not (r.ok or r.retryable)]
    final = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert final.outcome in (Outcome.UNCHANGED, Outcome.MODIFIED), final.message
    erp = await world.bc.row("customers", customer["id"])
    crm = await world.dv.row("accounts", account_id)
    assert erp is not None and crm is not None
    assert erp["city"] == crm["address1_city"] == "Oslo"
    assert erp["phoneNumber"] == crm["telephone1"]
    assert erp["email"] == crm["emailaddress1"] == "x@example.com"
    coupling = await world.coupling("customers", Side.ERP, customer["id"])
    assert coupling is not None and coupling.reservation is None  # nobody holds the pair afterwards


class Killed(BaseException):
    """The host dying mid-merge: nothing after this point runs (no let-go, no settlement)."""


async def test_a_sync_killed_between_its_writes_loses_no_edit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge writes the ERP side, a person edits the same field in Sales, and the host dies before the Sales
    write and the settlement. Whoever takes the stale hold over finds only the hold's intent to tell it that the
    ERP value is ours: without it the ERP value looks like an edit, the conflict goes to the ERP side
    (`erp_wins`), and the person's newer Sales phone is overwritten."""
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Lund"})
    await world.dv.edit("accounts", account_id, {"telephone1": "+33 1 2"})

    async def person_then_death() -> None:
        await world.dv.edit("accounts", account_id, {"telephone1": "+49 89 9"})
        raise Killed

    async def dead_host_lets_nothing_go(*_: Any) -> None:
        return None

    monkeypatch.setattr(lease, "let_go", dead_host_lets_nothing_go)
    edit_between(world, Side.ERP, person_then_death)
    with pytest.raises(Killed):
        await world.engine.sync_record("customers", "to_erp", account_id)
    held = await world.coupling("customers", Side.ERP, customer["id"])
    assert held is not None and held.reservation is not None and held.intent  # the dead holder's
    monkeypatch.undo()
    # Another instance, later: the hold is stale and taken over.
    later = world.engine_with(PATIENT, stale_reservation=dt.timedelta(0))
    again = await later.sync_record("customers", "to_erp", account_id)
    assert again.ok, again.message
    erp = await world.bc.row("customers", customer["id"])
    crm = await world.dv.row("accounts", account_id)
    assert erp is not None and crm is not None
    assert (erp["phoneNumber"], crm["telephone1"]) == ("+49 89 9", "+49 89 9")
    assert (erp["city"], crm["address1_city"]) == ("Lund", "Lund")
    settled = await world.coupling("customers", Side.ERP, customer["id"])
    assert settled is not None and settled.reservation is None and settled.intent is None
