"""sync_modified: records changed since the watermark (capped at run start, overlapped, de-duplicated), both
directions, failed-and-not-skipped records retried, transient failures holding the watermark back."""

from __future__ import annotations

import datetime as dt

from shared.http.retry import RetryPolicy
from shared.mapping import Direction, Side
from shared.sync import Outcome
from tests.sync.conftest import World, bc_customer, coupled_customer


async def test_both_directions_are_synced_and_a_second_run_writes_nothing(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    other = await bc_customer(world, number="C8888", displayName="Second AB")
    other_account = (await world.engine.sync_record("customers", "to_crm", other["id"], create=True)).destination_id
    await world.bc.edit("customers", customer["id"], {"city": "Kiruna"})
    await world.dv.edit("accounts", other_account, {"telephone1": "+46 980 1"})
    start = world.engine.options.clock()
    to_crm, to_erp = await world.engine.sync_modified("customers", now=start)
    assert (to_crm.direction, to_erp.direction) == (Direction.TO_CRM, Direction.TO_ERP)
    # Each pass looks at both sides of every pair it reads (the catch-up must repair a pair whatever the
    # shortcuts say), so the Sales edit of `other` may already travel in the to_crm pass: two writes in all.
    modified = to_crm.counts.get("modified", 0) + to_erp.counts.get("modified", 0)
    assert modified == 2 and to_crm.counts.get("modified"), (to_crm.counts, to_erp.counts)
    assert not to_crm.failures and not to_erp.failures
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Kiruna"
    assert (await world.bc.row("customers", other["id"]))["phoneNumber"] == "+46 980 1"
    # Watermarks are the run's start, not the newest record seen.
    for direction in ("to_crm", "to_erp"):
        assert await world.state.watermarks.get_watermark("customers", direction) == start
    job = await world.state.jobs.get_job("customers", to_crm.job_id)
    assert (job.status, job.trigger, job.counts["modified"]) == ("finished", "schedule", to_crm.counts["modified"])

    mark = world.traffic.mark()
    again = await world.engine.sync_modified("customers")
    assert world.traffic.writes_since(mark) == []
    # the overlap re-reads what the first run saw: all of it found unchanged
    assert all(set(run.counts) <= {"unchanged"} for run in again), [run.counts for run in again]
    assert sum(run.counts.get("unchanged", 0) for run in again) >= 2


async def test_only_records_changed_since_the_watermark_are_read(world: World) -> None:
    customer, _ = await coupled_customer(world)
    engine = world.engine_with(RetryPolicy(), overlap=dt.timedelta(0))
    await engine.sync_modified("customers")
    await world.bc.edit("customers", customer["id"], {"city": "Gävle"})
    mark = world.traffic.mark()
    to_crm, _ = await engine.sync_modified("customers", now=engine.options.clock() + dt.timedelta(seconds=1))
    assert to_crm.counts == {"modified": 1}
    listed = [r for r in world.traffic.requests[mark:] if r.method == "GET" and "customers?" in str(r.url)]
    assert listed and "lastModifiedDateTime ge" in str(listed[0].url.params.get("$filter"))


async def test_a_failed_record_is_retried_and_created_once_its_dependency_is_there(world: World) -> None:
    people = await world.bc.rows("salespeoplePurchasers")
    customer = await bc_customer(world, salespersonCode=people[0]["code"])
    failed = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
    assert failed.outcome is Outcome.FAILED and "dependency not coupled" in failed.message
    engine = world.engine_with(RetryPolicy(), overlap=dt.timedelta(0))
    first = await engine.sync_modified("customers")
    assert first[0].counts.get("failed") == 1  # retried (as a create), failing the same way…
    error = await world.state.errors.get_error("customers", "to_crm", customer["id"])
    assert error.skipped  # …so now it is skipped: the same error twice
    await world.state.errors.restore_error("customers", "to_crm", customer["id"])
    await world.couple_salespeople()
    later = engine.options.clock() + dt.timedelta(seconds=2)
    runs = await engine.sync_modified("customers", now=later)
    assert runs[0].counts == {"inserted": 1}, runs[0].counts  # not modified since the watermark: found by its error
    assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is None
    assert (await world.coupling("customers", Side.ERP, customer["id"])).crm_id is not None


async def test_a_transient_failure_holds_the_watermark_back_and_is_read_again(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    impatient = world.engine_with(RetryPolicy(max_attempts=1), overlap=dt.timedelta(0))
    await impatient.sync_modified("customers")
    before = await world.state.watermarks.get_watermark("customers", "to_crm")
    edited = await world.bc.edit("customers", customer["id"], {"city": "Borås"})
    await world.dv.configure(faults={"error_ratio": 1.0, "error_status": 500})
    run, crm_run = await impatient.sync_modified("customers", now=impatient.options.clock() + dt.timedelta(seconds=1))
    assert run.counts == {"failed": 1} and run.failures[0].retryable and run.error is None
    assert crm_run.error and "temporarily unavailable" in crm_run.error  # the CRM could not even be listed
    assert (await world.state.jobs.get_job("customers", crm_run.job_id)).status == "failed"
    error = await world.state.errors.find_error("customers", "to_crm", customer["id"])
    assert error is not None and error.transient and not error.skipped  # on record, never skipped for storms
    held = await world.state.watermarks.get_watermark("customers", "to_crm")
    assert before <= held <= dt.datetime.fromisoformat(edited["lastModifiedDateTime"])
    await world.dv.configure(faults={"error_ratio": 0.0})
    run = (await impatient.sync_modified("customers"))[0]
    assert run.counts.get("modified") == 1, run.counts
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Borås"
