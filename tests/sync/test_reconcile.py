"""Reconcile reports drift between both systems through a mapping, and nothing after a clean full sync."""

from __future__ import annotations

import pytest

from shared.mapping import Direction, Side
from shared.sync.conflicts import Refused, reverse
from shared.sync.reconcile import reconcile
from tests.sync.conftest import World, bc_customer, crm_account
from tests.sync.test_full import setup

TO_CRM = frozenset({Direction.TO_CRM})


async def test_reconcile_is_clean_after_full_sync_and_reports_each_kind_of_drift(world: World) -> None:
    customers = await setup(world, 3)
    for a in await world.dv.rows("accounts"):  # seeded accounts would all be "never_synced": start from none
        await world.dv.delete("accounts", a["accountid"])
    await world.engine.sync_full(["customers"], directions=TO_CRM)
    report = await reconcile(world.engine, "customers")
    assert report.clean, report.drift
    assert report.checked == {"erp": len(customers), "crm": len(customers)}

    first, second = customers[0], customers[1]
    c1 = await world.coupling("customers", Side.ERP, first["id"])
    c2 = await world.coupling("customers", Side.ERP, second["id"])
    assert c1 is not None and c2 is not None and c1.crm_id and c2.crm_id
    mark = world.traffic.mark()
    await world.dv.edit("accounts", c1.crm_id, {"address1_city": "Elsewhere"})
    await world.dv.delete("accounts", c2.crm_id)
    stray = await crm_account(world, accountnumber="X0001", name="Stray Ltd")
    report = await reconcile(world.engine, "customers")
    assert world.traffic.writes_since(mark) == []  # read-only
    kinds = {(d.kind, d.ids) for d in report.drift}
    assert ("missing", (second["id"], c2.crm_id)) in kinds
    assert ("never_synced", (stray["accountid"],)) in kinds  # customers create by full sync: a lost create
    differs = [d for d in report.drift if d.kind == "differs"]
    assert [d.ids for d in differs] == [(first["id"], c1.crm_id)] and "city" in differs[0].message
    assert report.count("duplicate") == 0


async def test_reconcile_reports_duplicate_keys(world: World) -> None:
    await setup(world, 0)
    a = await bc_customer(world, number="DUP1", displayName="Twin A")
    b = await bc_customer(world, number="dup1", displayName="Twin B")
    await bc_customer(world, number="UNIQ", displayName="Single")
    report = await reconcile(world.engine, "customers")
    dups = [d for d in report.drift if d.kind == "duplicate"]
    assert [(d.side, d.ids) for d in dups] == [(Side.ERP, tuple(sorted((a["id"], b["id"]))))]


async def test_what_the_sync_cannot_or_need_not_change_is_not_drift(world: World) -> None:
    """Values that agree in a way the sync accepts are not drift: BC's "Invoice" block maps to an active
    account (a many-to-one value map need not map back exactly), BC's 0 stands for Sales' null (BC has no
    nulls), and a BC → Sales field that is blank in BC leaves the account's own value alone."""
    customers = await setup(world, 1)
    for a in await world.dv.rows("accounts"):
        await world.dv.delete("accounts", a["accountid"])
    await world.engine.sync_full(["customers"], directions=TO_CRM)
    c = await world.coupling("customers", Side.ERP, customers[0]["id"])
    assert c is not None and c.crm_id
    await world.bc.edit("customers", customers[0]["id"], {"blocked": "Invoice", "creditLimit": 0})
    await world.dv.edit("accounts", c.crm_id, {"creditlimit": None})
    assert (await reconcile(world.engine, "customers")).clean
    await world.dv.edit("accounts", c.crm_id, {"statecode": 1, "statuscode": 2})  # deactivated in Sales only
    report = await reconcile(world.engine, "customers")
    assert [d.fields for d in report.drift] == [("blocked ⇄ statecode",)]


async def test_the_receiving_side_of_a_one_way_mapping_may_hold_records_of_its_own(world: World) -> None:
    """salespeople is CRM → ERP: BC's own salespeople are nobody's drift, an uncoupled Sales user is."""
    report = await reconcile(world.engine, "salespeople")
    alone = {d.side for d in report.drift if d.kind == "never_synced"}
    assert report.checked["erp"] > 0 and alone == {Side.CRM}
    await world.couple_salespeople()
    assert [d for d in (await reconcile(world.engine, "salespeople")).drift if d.kind == "never_synced"] == []


async def synced_customers(world: World, count: int) -> list[dict]:
    customers = await setup(world, count)
    for a in await world.dv.rows("accounts"):
        await world.dv.delete("accounts", a["accountid"])
    await world.engine.sync_full(["customers"], directions=TO_CRM)
    return customers


async def test_a_record_the_deletion_rule_kept_is_told_apart_from_a_lost_create(world: World) -> None:
    """customers: deletion remove_coupling. The account of one customer is deleted and the sync removes the
    coupling: that customer is `deleted_by_rule` (listed, yet the report is clean: the rule meant it), while a
    customer entered in BC that never reached Sales is `never_synced`."""
    kept, other = await synced_customers(world, 2)
    coupling = await world.coupling("customers", Side.ERP, kept["id"])
    assert coupling is not None and coupling.crm_id
    await world.dv.delete("accounts", coupling.crm_id)
    report = await reconcile(world.engine, "customers")
    [missing] = report.drift
    assert missing.kind == "missing" and "the coupling is removed" in missing.message and not report.clean

    result = await world.engine.sync_record("customers", "to_crm", kept["id"], force=True)
    assert result.outcome.value == "uncoupled", result.message
    assert await world.coupling("customers", Side.ERP, kept["id"]) is None
    report = await reconcile(world.engine, "customers")
    [left] = report.drift
    assert (left.kind, left.side, left.ids) == ("deleted_by_rule", Side.ERP, (kept["id"],))
    assert coupling.crm_id in left.message and "remove_coupling" in left.message
    assert report.clean and report.counts() == {"deleted_by_rule": 1}

    lost = await bc_customer(world, number="LOST1", displayName="Never Synced AB")
    report = await reconcile(world.engine, "customers")
    assert {(d.kind, d.ids) for d in report.drift} == {("deleted_by_rule", (kept["id"],)),
                                                       ("never_synced", (lost["id"],))}
    assert not report.clean and report.counts() == {"deleted_by_rule": 1, "never_synced": 1}
    assert await world.coupling("customers", Side.ERP, other["id"]) is not None

    [entry] = [e async for e in world.state.conflicts.list_conflicts("customers", kind="deletion")]
    with pytest.raises(Refused) as refused:
        await reverse(world.engine, entry.entry_id)
    assert refused.value.code == "NotReversible" and "--create" in refused.value.message


@pytest.mark.parametrize(("only_coupled", "create_new", "kind", "says"), [
    (False, True, "never_synced", "lost create"),
    (True, True, "never_synced", "full sync"),
    (True, False, "uncoupled", "creates none"),
])
async def test_an_uncoupled_record_is_a_lost_create_only_where_the_mapping_would_create_it(
        world: World, only_coupled: bool, create_new: bool, kind: str, says: str) -> None:
    await synced_customers(world, 1)
    stray = await crm_account(world, accountnumber="X0002", name="Stray Two Ltd")
    mapping = world.pack.mapping("customers").model_copy(update={"only_coupled": only_coupled,
                                                                 "create_new": create_new})
    [drift] = (await reconcile(world.engine, mapping)).drift
    assert (drift.kind, drift.ids) == (kind, (stray["accountid"],)) and says in drift.message
