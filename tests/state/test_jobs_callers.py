"""Who started a job (`acting_as` → `started_by`), operator actions as audit rows, and their retention."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.state import StateStore
from shared.state.jobs import OPERATOR, acting_as


async def test_jobs_started_while_acting_as_someone_record_them_in_any_task(store: StateStore) -> None:
    jobs = store.jobs
    before = await jobs.start_job("customers", direction="to_crm", trigger="schedule")
    with acting_as("user:ana@contoso.example"):
        direct = await jobs.start_job("customers", direction="to_crm", trigger="manual")
        # The engine runs pages and records in tasks of their own: they inherit the caller.
        in_tasks = await asyncio.gather(*(asyncio.create_task(jobs.start_job("customers", direction="to_erp",
                                                                             trigger="full")) for _ in range(3)))
        with acting_as("automation:function key"):
            nested = await jobs.start_job("contacts", direction="to_crm", trigger="manual")
        after_nested = await jobs.start_job("contacts", direction="to_crm", trigger="manual")
    outside = await jobs.start_job("customers", direction="to_crm", trigger="webhook")

    assert (before.started_by, outside.started_by) == (None, None)
    assert {j.started_by for j in [direct, *in_tasks, after_nested]} == {"user:ana@contoso.example"}
    assert nested.started_by == "automation:function key"
    stored = {j.job_id: j.started_by async for j in jobs.list_jobs()}
    assert stored[direct.job_id] == "user:ana@contoso.example" and stored[before.job_id] is None


async def test_an_operator_action_is_a_finished_audit_row_purged_with_the_jobs(store: StateStore) -> None:
    with acting_as("user:olga@contoso.example"):
        row = await store.jobs.record_action("customers", "uncouple", message="erp 'e1' from crm 'c1'",
                                             counts={"uncoupled": 1})
    with pytest.raises(ValueError, match="unknown job counter"):
        await store.jobs.record_action("customers", "uncouple", message="x", counts={"erased": 1})
    again = await store.jobs.get_job("customers", row.job_id)
    assert (again.trigger, again.status, again.started_by, again.message) == (
        OPERATOR, "finished", "user:olga@contoso.example", "uncouple: erp 'e1' from crm 'c1'")
    assert again.counts["uncoupled"] == 1 and again.finished_at is not None
    assert await store.jobs.purge_jobs(dt.timedelta(days=30), now=row.started_at + dt.timedelta(days=29)) == 0
    assert await store.jobs.purge_jobs(dt.timedelta(days=30), now=row.started_at + dt.timedelta(days=31)) == 1
    assert [j async for j in store.jobs.list_jobs("customers")] == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caller=st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s))
async def test_any_caller_name_is_stored_and_read_back_as_given(store: StateStore, caller: str) -> None:
    with acting_as(caller):
        job = await store.jobs.start_job("people", direction="to_crm", trigger="manual")
    assert (await store.jobs.get_job("people", job.job_id)).started_by == caller
