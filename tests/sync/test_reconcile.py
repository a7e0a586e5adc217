"""Reconcile reports drift between both systems through a mapping, and nothing after a clean full sync."""

from __future__ import annotations

from shared.mapping import Direction, Side
from shared.sync.reconcile import reconcile
from tests.sync.conftest import World, bc_customer, crm_account
from tests.sync.test_full import setup

TO_CRM = frozenset({Direction.TO_CRM})


async def test_reconcile_is_clean_after_full_sync_and_reports_each_kind_of_drift(world: World) -> None:
    customers = await setup(world, 3)
    for a in await world.dv.rows("accounts"):  # seeded accounts would all be "uncoupled": start from none
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
    assert ("uncoupled", (stray["accountid"],)) in kinds
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
