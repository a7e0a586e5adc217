"""The console's per-minute activity in Table storage (Azurite): counts kept in memory and written in one
transaction per flush, running totals that a repeated flush does not double, several instances added up,
counts kept when storage refuses them, the background flush, and the retention."""

from __future__ import annotations

import asyncio
import datetime as dt

from azure.data.tables.aio import TableServiceClient

from shared.state import StateStore
from shared.telemetry.activity import ActivityRecorder, Minute, purge, recent, table_name

T0 = dt.datetime(2025, 3, 1, 12, 7, 10, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def test_many_changes_cost_one_transaction_and_read_back_per_minute(store: StateStore) -> None:
    recorder = ActivityRecorder(store, clock=lambda: at(70), instance="i1")
    for i in range(40):  # 40 changes of customers to_crm in the first minute, lags 100…4000 ms
        recorder.add("customers", "to_crm", at=at(i), changes=1, lag_ms=100.0 * (i + 1))
    recorder.add("customers", "to_crm", at=at(30), failures=1, throttled=2)
    recorder.add("customers", "to_erp", at=at(55), changes=1, lag_ms=900.0)   # the next minute
    recorder.add("contacts", "to_crm", at=at(5), failures=1)
    assert await recorder.flush() == 3 and recorder.flushes == 1  # one hour partition: one transaction
    assert await recorder.flush() == 0 and recorder.flushes == 1  # nothing new: nothing sent

    minutes = await recent(store, since=at(-60))
    assert minutes == [
        Minute("contacts", "to_crm", T0.replace(second=0), failures=1),
        Minute("customers", "to_crm", T0.replace(second=0), changes=40, failures=1, lag_ms_sum=82_000.0,
               lag_ms_max=4000.0, throttled=2),
        Minute("customers", "to_erp", T0.replace(minute=8, second=0), changes=1, lag_ms_sum=900.0,
               lag_ms_max=900.0),
    ]
    assert minutes[1].lag_ms_avg == 2050.0 and minutes[0].lag_ms_avg is None
    assert [m.mapping for m in await recent(store, mapping="customers", since=at(-60))] == ["customers"] * 2
    assert [m.direction for m in await recent(store, since=at(55))] == ["to_erp"]  # from that minute on


async def test_a_minute_flushed_twice_holds_its_running_total_and_instances_add_up(store: StateStore) -> None:
    first = ActivityRecorder(store, clock=lambda: at(20), instance="i1")
    first.add("customers", "to_crm", at=at(1), changes=1, lag_ms=500.0)
    await first.flush()
    first.add("customers", "to_crm", at=at(2), changes=1, lag_ms=700.0)
    await first.flush()  # the row is replaced by the minute's total, not added to
    second = ActivityRecorder(store, clock=lambda: at(20), instance="i2")
    second.add("customers", "to_crm", at=at(3), changes=1, lag_ms=2000.0)
    await second.flush()
    [minute] = await recent(store, since=at(0))
    assert (minute.changes, minute.lag_ms_sum, minute.lag_ms_max) == (3, 3200.0, 2000.0)


async def test_counts_refused_by_storage_are_kept_for_the_next_flush(store: StateStore,
                                                                    table_connection_string: str) -> None:
    async with TableServiceClient.from_connection_string(table_connection_string) as closed:
        pass  # a client whose connection is gone: every request fails
    down = StateStore(closed, store.names)
    recorder = ActivityRecorder(down, clock=lambda: at(20), instance="i1")
    recorder.add("customers", "to_crm", at=at(1), changes=1, lag_ms=300.0)
    assert await recorder.flush() == 0
    recorder.state, recorder._table = store, None  # storage is back
    recorder.add("customers", "to_crm", at=at(2), changes=1, lag_ms=100.0)
    assert await recorder.flush() == 1
    [minute] = await recent(store, since=at(0))
    assert (minute.changes, minute.lag_ms_sum) == (2, 400.0)


async def test_the_background_task_writes_without_being_asked_and_close_writes_the_rest(store: StateStore) -> None:
    recorder = ActivityRecorder(store, flush_s=0.05, instance="i1")
    now = dt.datetime.now(dt.UTC)
    recorder.add("customers", "to_crm", at=now, changes=1, lag_ms=10.0)
    for _ in range(100):
        await asyncio.sleep(0.02)
        if await recent(store, since=now):
            break
    assert [m.changes for m in await recent(store, since=now)] == [1]
    recorder.flush_s = 60.0
    recorder.add("customers", "to_crm", at=now, changes=1, lag_ms=10.0)
    await recorder.aclose()  # does not wait the minute: writes at once
    assert [m.changes for m in await recent(store, since=now)] == [2]


async def test_nothing_recorded_yet_reads_as_empty_and_old_minutes_are_purged(store: StateStore) -> None:
    assert await recent(store, since=at(0)) == []
    assert await purge(store, older_than=dt.timedelta(days=1)) == 0
    recorder = ActivityRecorder(store, clock=lambda: at(20), instance="i1")
    recorder.add("customers", "to_crm", at=at(0) - dt.timedelta(days=3), changes=1)
    recorder.add("customers", "to_crm", at=at(0), changes=1)
    await recorder.flush()
    assert await purge(store, older_than=dt.timedelta(days=2), now=at(60)) == 1
    assert [m.at for m in await recent(store, since=at(0) - dt.timedelta(days=5))] == [T0.replace(second=0)]
    assert table_name(store) == store.names.jobs.removesuffix("jobs") + "activity"
