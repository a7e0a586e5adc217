"""429 and 5xx storms (seeded fault injection in both emulators) are ridden out: every record ends in step,
none twice."""

from __future__ import annotations

import asyncio

from shared.sync import Outcome, SyncResult
from tests.sync.conftest import World, bc_customer


async def deliver(world: World, *args: object, **kwargs: object) -> SyncResult:
    """As the queue does: a notice whose processing failed transiently is delivered again (a few times)."""
    for _ in range(4):
        result = await world.engine.sync_record(*args, **kwargs)
        if not result.retryable:
            return result
    return result


async def test_storms_of_429_and_5xx_are_ridden_out_without_duplicates(world: World) -> None:
    await world.couple_salespeople()
    customers = [await bc_customer(world, number=f"C77{n:02d}", displayName=f"Storm {n}") for n in range(4)]
    # 500s without Retry-After (502/503 carry one of 1-5 s: correct, but slow for a unit test); BC's 429s come
    # without Retry-After, Dataverse's with one (≥ 1 s), so its window is the wider one.
    await world.bc.configure(faults={"error_ratio": 0.25, "error_status": 500, "seed": 5},
                             limits={"window_seconds": 0.2, "window_requests": 12})
    await world.dv.configure(faults={"error_ratio": 0.25, "error_status": 500, "seed": 6},
                             limits={"window_seconds": 1.0, "window_requests": 40})
    first = await asyncio.gather(*(deliver(world, "customers", "to_crm", c["id"], create=True)
                                   for c in customers for _ in range(2)))  # every notice twice, concurrently
    assert all(r.ok for r in first), [r.message for r in first if not r.ok]
    for c in customers:
        await world.bc.edit("customers", c["id"], {"city": f"Storm city {c['number']}"})
    second = await asyncio.gather(*(deliver(world, "customers", "to_crm", c["id"]) for c in customers))
    assert [r.outcome for r in second] == [Outcome.MODIFIED] * 4, [r.message for r in second]
    statuses = world.traffic.statuses
    # The storm was real: 5xx answers, and throttling (the adaptive limiter learns the window after the first
    # 429s, so there are only a few of them).
    assert statuses.count(429) >= 1 and statuses.count(500) >= 6, sorted(set(statuses))

    await world.bc.configure(faults={"error_ratio": 0.0}, limits={"window_requests": 6000})
    await world.dv.configure(faults={"error_ratio": 0.0}, limits={"window_requests": 6000})
    accounts = await world.dv.rows("accounts")
    for c in customers:
        mine = [a for a in accounts if a["accountnumber"] == c["number"]]
        assert len(mine) == 1 and mine[0]["address1_city"] == f"Storm city {c['number']}"
    assert sorted(r.outcome.value for r in first).count("inserted") == 4
