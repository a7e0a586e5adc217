"""Auto-pause: N permanent failures within T minutes pause a mapping by itself, once, with the reason kept;
transient failures never count; failures seen by other instances count through the error records; failures
before a resume do not count. State in Azurite."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.autopause import FailureWindow, Threshold, note_results
from shared.mapping import Direction
from shared.state import StateStore
from shared.sync import Outcome, SyncResult

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def failure(mapping: str, *, transient: bool = False, n: int = 0) -> SyncResult:
    return SyncResult(mapping, Direction.TO_CRM, f"rec-{n}", Outcome.FAILED, message="name is too long",
                      retryable=transient)


@given(st.lists(st.tuples(st.integers(0, 900), st.integers(1, 3)), max_size=40), st.integers(30, 600))
def test_the_window_counts_the_failures_of_the_last_t(steps: list[tuple[int, int]], window_s: int) -> None:
    window = FailureWindow(Threshold(failures=1000, minutes=window_s / 60))
    seen: list[dt.datetime] = []
    now = T0
    for gap, count in steps:
        now += dt.timedelta(seconds=gap)
        seen += [now] * count
        since = now - dt.timedelta(seconds=window_s)
        assert window.add("m", count, now, since) == sum(1 for t in seen if t > since)


# (seconds since the previous batch, failures in the batch, transient?)
Batches = st.lists(st.tuples(st.integers(0, 400), st.integers(1, 3), st.booleans()), min_size=1, max_size=15)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=Batches, limit=st.integers(1, 6), minutes=st.integers(1, 10))
async def test_a_mapping_pauses_when_and_only_when_the_threshold_is_reached(
        store: StateStore, batches: list[tuple[int, int, bool]], limit: int, minutes: int) -> None:
    mapping = "m" + uuid.uuid4().hex[:8]  # a mapping of its own per example (one store for all of them)
    threshold = Threshold(limit, minutes)
    # The oracle: the first batch after which the permanent failures within the last T reach N.
    times: list[dt.datetime] = []
    now, expected = T0, None
    for i, (gap, count, transient) in enumerate(batches):
        now += dt.timedelta(seconds=gap)
        if not transient:
            times += [now] * count
        if expected is None and sum(1 for t in times if t > now - threshold.window) >= limit:
            expected = i
    paused_at = None
    now = T0
    for i, (gap, count, transient) in enumerate(batches):
        now += dt.timedelta(seconds=gap)
        results = [failure(mapping, transient=transient, n=k) for k in range(count)]
        pause = await note_results(store, mapping, results, now=now, threshold=threshold)
        if pause is not None:
            assert paused_at is None, "paused twice"
            paused_at = i
    assert paused_at == expected
    found = await store.pauses.get(mapping)
    assert (found is not None) == (expected is not None)
    if found is not None:
        assert found.state == "auto-paused" and found.by == "auto-pause"
        assert f"(threshold {limit})" in found.reason and "last: name is too long" in found.reason


async def test_failures_seen_by_other_instances_count_through_the_error_records(store: StateStore) -> None:
    # Four records failed on other instances: their error records are what this instance can see.
    for n in range(4):
        await store.errors.record_failure("customers", direction="to_crm", source_id=f"other-{n}",
                                          message="name is too long")
    await store.errors.record_failure("customers", direction="to_crm", source_id="throttled", message="429",
                                      transient=True)  # transient: not counted
    now = dt.datetime.now(dt.UTC)
    threshold = Threshold(failures=5, minutes=10)
    assert await note_results(store, "customers", [failure("customers", transient=True)], threshold=threshold,
                              now=now) is None  # a transient failure: nothing counted, nothing read
    # This instance's first failure: 1 here, 4 + its own error record in the table (it is written before).
    await store.errors.record_failure("customers", direction="to_crm", source_id="here", message="too long")
    pause = await note_results(store, "customers", [failure("customers")], threshold=threshold, now=now)
    assert pause is not None and pause.reason.startswith("5 failures in 10 minutes (threshold 5)")
    jobs = [j async for j in store.jobs.list_jobs("customers")]
    assert [(j.trigger, j.message) for j in jobs] == [("operator", f"auto-pause: {pause.reason}")]


async def test_failures_before_a_resume_do_not_count(store: StateStore) -> None:
    threshold = Threshold(failures=2, minutes=10)
    now = dt.datetime.now(dt.UTC)
    for n in range(2):
        await store.errors.record_failure("customers", direction="to_crm", source_id=f"r{n}", message="bad")
    assert await note_results(store, "customers", [failure("customers", n=0), failure("customers", n=1)],
                              threshold=threshold, now=now) is not None
    await store.pauses.resume("customers", by="user:ana")
    later = dt.datetime.now(dt.UTC)
    # The two error records are still there (last seen before the resume): they no longer count.
    assert await note_results(store, "customers", [failure("customers", n=2)], threshold=threshold,
                              now=later) is None
    assert await store.pauses.get("customers") is None


async def test_off_when_the_threshold_is_zero(store: StateStore) -> None:
    results = [failure("customers", n=k) for k in range(50)]
    assert await note_results(store, "customers", results, threshold=Threshold(failures=0)) is None
    assert await store.pauses.get("customers") is None
