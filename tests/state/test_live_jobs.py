"""The live path's hourly job rows (shared/sync/live_jobs.py), on Azurite."""

from __future__ import annotations

import asyncio
import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.mapping import Direction
from shared.state import StateStore
from shared.sync import Outcome, SyncResult
from shared.sync.live_jobs import LiveJobs

T0 = dt.datetime(2026, 12, 2, 10, 59, 58, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def result(outcome: Outcome, flow: Direction = Direction.TO_CRM) -> SyncResult:
    return SyncResult("customers", flow, "r1", outcome)


async def test_changes_count_into_one_row_per_hour_and_direction_and_the_hour_is_closed(store: StateStore) -> None:
    clock = Clock(T0)
    live = LiveJobs(store.jobs, flush_s=0, clock=clock)
    for outcome in (Outcome.MODIFIED, Outcome.MODIFIED, Outcome.UNCHANGED, Outcome.FAILED):
        await live.count("customers", "to_crm", "webhook", result(outcome))
    await live.count("customers", "to_erp", "webhook", result(Outcome.INSERTED, Direction.TO_ERP))
    clock.now = T0 + dt.timedelta(seconds=5)  # the next hour
    await live.count("customers", "to_crm", "webhook", result(Outcome.MODIFIED))
    jobs = {(j.direction, j.started_at.hour): j async for j in store.jobs.list_jobs("customers")}
    assert set(jobs) == {("to_crm", 10), ("to_erp", 10), ("to_crm", 11)}
    first = jobs[("to_crm", 10)]
    assert (first.trigger, first.status) == ("webhook", "finished")
    assert {k: n for k, n in first.counts.items() if n} == {"modified": 2, "unchanged": 1, "failed": 1}
    assert jobs[("to_crm", 11)].status == "running" and jobs[("to_crm", 11)].counts["modified"] == 1
    assert jobs[("to_erp", 10)].counts["inserted"] == 1


# Each example has a LiveJobs of its own (its own worker id in the row ids): the shared store does no harm.
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outcomes=st.lists(st.sampled_from([Outcome.MODIFIED, Outcome.UNCHANGED, Outcome.INSERTED, Outcome.FAILED]),
                         min_size=1, max_size=60))
async def test_kept_in_memory_then_written_in_one_go_losing_no_count(store: StateStore,
                                                                     outcomes: list[Outcome]) -> None:
    live = LiveJobs(store.jobs, flush_s=0.05, clock=Clock(T0 - dt.timedelta(minutes=30)))
    await asyncio.gather(*(live.count("contacts", "to_crm", "webhook", result(o)) for o in outcomes))
    before = [j async for j in store.jobs.list_jobs("contacts") if j.job_id.endswith(live.worker)]
    assert before == []  # nothing written per change
    await asyncio.sleep(0.3)
    after = [j async for j in store.jobs.list_jobs("contacts") if j.job_id.endswith(live.worker)]
    assert len(after) == 1
    expected = {o.value: outcomes.count(o) for o in set(outcomes)}
    assert {k: n for k, n in after[0].counts.items() if n} == expected
    await live.aclose()
