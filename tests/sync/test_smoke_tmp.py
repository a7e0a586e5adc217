from __future__ import annotations
from shared.mapping import Side
from tests.sync.conftest import World

async def test_smoke(world: World) -> None:
    await world.couple_salespeople()
    cust = (await world.bc.rows("customers"))[0]
    r = await world.engine.sync_record("customers", "to_crm", cust["id"], create=True)
    print(r)
    for d in r.dependencies: print("  dep", d)
    assert r.ok, r.message
    acc = await world.dv.row("accounts", r.destination_id)
    print(acc)
    mark = world.traffic.mark()
    r2 = await world.engine.sync_record("accounts" and "customers", "to_erp", r.destination_id)
    print(r2, world.traffic.writes_since(mark))
    r3 = await world.engine.sync_record("customers", "to_crm", cust["id"])
    print(r3, world.traffic.writes_since(mark))
    assert False
