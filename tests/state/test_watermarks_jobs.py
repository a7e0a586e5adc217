"""Watermarks only move forward; job counters survive concurrent workers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest

from shared.state import NotFound, StateStore, WatermarkBackwards

pytestmark = pytest.mark.azurite
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


async def test_watermark_moves_forward_only(store: StateStore) -> None:
    marks = store.watermarks
    with pytest.raises(NotFound):
        await marks.get_watermark("customers", "to_crm")

    await marks.advance_watermark("customers", "to_crm", T0)
    await marks.advance_watermark("customers", "to_crm", T0 + dt.timedelta(minutes=5))
    await marks.advance_watermark("customers", "to_crm", T0 + dt.timedelta(minutes=5))  # equal: fine
    with pytest.raises(WatermarkBackwards, match="refusing to move it back"):
        await marks.advance_watermark("customers", "to_crm", T0 + dt.timedelta(minutes=4))

    assert await marks.get_watermark("customers", "to_crm") == T0 + dt.timedelta(minutes=5)
    assert await marks.find_watermark("customers", "to_erp") is None  # directions are separate


async def test_watermark_is_timezone_aware_and_normalised_to_utc(store: StateStore) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.watermarks.advance_watermark("customers", "to_crm", dt.datetime(2024, 1, 1))

    await store.watermarks.advance_watermark("customers", "to_crm", dt.datetime(2024, 1, 1, 14, tzinfo=plus_two))

    reached = await store.watermarks.get_watermark("customers", "to_crm")
    assert reached == dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC) and reached.tzinfo == dt.UTC


async def test_concurrent_advances_end_at_the_latest(store: StateStore) -> None:
    times = [T0 + dt.timedelta(seconds=s) for s in (5, 1, 9, 3, 7)]

    async def advance(t: dt.datetime) -> None:
        with contextlib.suppress(WatermarkBackwards):  # a later time already won: exactly the rule's purpose
            await store.watermarks.advance_watermark("customers", "to_erp", t)

    await asyncio.gather(*(advance(t) for t in times))
    assert await store.watermarks.get_watermark("customers", "to_erp") == max(times)


async def test_delete_watermark_is_idempotent(store: StateStore) -> None:
    await store.watermarks.advance_watermark("customers", "to_crm", T0)
    await store.watermarks.delete_watermark("customers", "to_crm")
    await store.watermarks.delete_watermark("customers", "to_crm")
    assert await store.watermarks.find_watermark("customers", "to_crm") is None


async def test_job_counters_under_concurrent_workers(store: StateStore) -> None:
    job = await store.jobs.start_job("customers", direction="to_crm", trigger="full", started_at=T0)

    await asyncio.gather(*(store.jobs.increment("customers", job.job_id, inserted=1, unchanged=2)
                           for _ in range(15)),
                         *(store.jobs.increment("customers", job.job_id, failed=1) for _ in range(5)))
    await store.jobs.finish_job("customers", job.job_id, finished_at=T0 + dt.timedelta(minutes=1))

    done = await store.jobs.get_job("customers", job.job_id)
    assert done.counts["inserted"] == 15 and done.counts["unchanged"] == 30 and done.counts["failed"] == 5
    assert done.counts["modified"] == 0
    assert done.status == "finished" and done.finished_at == T0 + dt.timedelta(minutes=1)


async def test_job_rejects_unknown_counters_and_missing_jobs(store: StateStore) -> None:
    job = await store.jobs.start_job("customers", direction="to_crm", trigger="manual")
    with pytest.raises(ValueError, match="unknown job counter"):
        await store.jobs.increment("customers", job.job_id, insrted=1)
    with pytest.raises(NotFound):
        await store.jobs.increment("customers", "no-such-job", inserted=1)
    with pytest.raises(NotFound):
        await store.jobs.get_job("contacts", job.job_id)


async def test_list_and_purge_jobs(store: StateStore) -> None:
    old = await store.jobs.start_job("customers", direction="to_crm", trigger="schedule",
                                     started_at=T0 - dt.timedelta(days=40))
    new = await store.jobs.start_job("customers", direction="to_erp", trigger="schedule", started_at=T0)
    other = await store.jobs.start_job("contacts", direction="to_crm", trigger="webhook", started_at=T0)

    assert {j.job_id async for j in store.jobs.list_jobs("customers")} == {old.job_id, new.job_id}
    assert {j.job_id async for j in store.jobs.list_jobs(since=T0)} == {new.job_id, other.job_id}

    assert await store.jobs.purge_jobs(dt.timedelta(days=30), now=T0) == 1
    assert {j.job_id async for j in store.jobs.list_jobs()} == {new.job_id, other.job_id}
