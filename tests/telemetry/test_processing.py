"""What the processor records about a message (shared.telemetry.processing), read back from the SDK's in-memory
exporter and reader: the span's parent from the message's `traceparent`, the metrics per mapping and direction,
the 429 waits the retry executor reports while the message is processed, and `lag_high` once a minute."""

from __future__ import annotations

import datetime as dt
import logging

import httpx
import pytest

from shared.http.retry import RetryExecutor, RetryPolicy
from shared.mapping import Direction
from shared.queue import PoisonMessage, Processed, SyncMessage
from shared.sync.outcome import Outcome, SyncResult
from shared.telemetry import instruments as names
from shared.telemetry import processing as processing_module
from shared.telemetry import setup
from shared.telemetry.processing import Delivery, processing
from shared.telemetry.propagation import trace_properties
from tests.telemetry.conftest import Recorded

NOW = dt.datetime(2025, 3, 1, 12, 0, 30, tzinfo=dt.UTC)
MESSAGE = SyncMessage("customers", Direction.TO_CRM, "c-1", seen_at=NOW - dt.timedelta(seconds=4))


def result(outcome: Outcome, *, retryable: bool = False) -> SyncResult:
    return SyncResult("customers", Direction.TO_CRM, "c-1", outcome, writes=int(outcome is Outcome.MODIFIED),
                      retryable=retryable)


def test_the_span_continues_the_trace_the_message_carries_and_records_the_outcome(recorded: Recorded) -> None:
    with setup.tracer().start_as_current_span("webhook business_central/customers") as webhook:
        properties = trace_properties()
    assert properties["traceparent"].split("-")[1] == f"{webhook.get_span_context().trace_id:032x}"
    delivery = Delivery(properties=properties, enqueued_at=NOW - dt.timedelta(seconds=1.5), message_id="m-1",
                        delivery_count=1)
    with processing(MESSAGE, delivery=delivery, clock=lambda: NOW) as run:
        run.source_modified = NOW - dt.timedelta(seconds=2)  # what the source read said
        run.done(Processed(MESSAGE, result(Outcome.MODIFIED)))
    process = next(s for s in recorded.exporter.get_finished_spans() if s.name == "process customers to_crm")
    assert process.context.trace_id == webhook.get_span_context().trace_id
    assert process.parent.span_id == webhook.get_span_context().span_id
    assert process.attributes["dualsync.outcome"] == "modified" and process.attributes["dualsync.lag_s"] == 2.0
    assert process.attributes["dualsync.queue_wait_s"] == 1.5
    dims = {"mapping": "customers", "direction": "to_crm"}
    assert recorded.total(names.CHANGES, **dims, outcome="modified") == 1
    [lag] = recorded.points(names.LAG)
    assert (lag.count, lag.sum, dict(lag.attributes)) == (1, 2.0, dims)
    assert recorded.total(names.QUEUE_AGE, **dims) == 1
    assert recorded.points(names.FAILURES) == []


def test_without_a_readable_source_the_lag_starts_at_the_webhook_and_unchanged_has_none(recorded: Recorded) -> None:
    with processing(MESSAGE, clock=lambda: NOW) as run:  # a deletion: the source could not be read
        run.done(Processed(MESSAGE, result(Outcome.DELETED)))
    with processing(MESSAGE, clock=lambda: NOW) as run:  # an echo: nothing written, no lag
        run.done(Processed(MESSAGE, result(Outcome.UNCHANGED)))
    [lag] = recorded.points(names.LAG)
    assert (lag.count, lag.sum) == (1, 4.0)
    assert recorded.total(names.CHANGES, outcome="unchanged") == 1
    [span] = [s for s in recorded.exporter.get_finished_spans() if s.attributes.get("dualsync.outcome") == "deleted"]
    assert span.parent is None  # no traceparent in the message: a trace of its own


def test_failures_and_poison_messages_are_counted_with_their_kind(recorded: Recorded) -> None:
    with processing(MESSAGE, clock=lambda: NOW) as run:
        run.done(Processed(MESSAGE, result(Outcome.FAILED, retryable=True), retry_at=NOW))
    with pytest.raises(PoisonMessage), processing(MESSAGE, clock=lambda: NOW):
        raise PoisonMessage("customers to_crm c-1: mapping 'customers' is disabled")
    with pytest.raises(ConnectionError), processing(MESSAGE, clock=lambda: NOW):
        raise ConnectionError("Table storage unreachable")  # redelivered by Service Bus: transient
    assert recorded.total(names.FAILURES, transient="true") == 2
    assert recorded.total(names.FAILURES, transient="false") == 1
    assert recorded.total(names.CHANGES, outcome="poison") == 1 and recorded.total(names.CHANGES, outcome="error") == 1
    statuses = [s.status.status_code.name for s in recorded.exporter.get_finished_spans()]
    assert statuses == ["ERROR", "ERROR", "ERROR"]


async def test_429_waits_are_told_to_the_message_being_processed(recorded: Recorded) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={})])
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    executor = RetryExecutor(RetryPolicy(max_attempts=3), sleep=sleep, random=lambda: 0.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: next(answers))) as http:
        with processing(MESSAGE, clock=lambda: NOW) as run:
            await executor.run(lambda: http.get("https://bc.test/v2.0/customers"),
                               describe="GET https://bc.test/v2.0/customers")
            assert run.throttled == 1
            run.done(Processed(MESSAGE, result(Outcome.MODIFIED)))
        # Outside any message: counted for the service alone.
        answers = iter([httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json={})])
        await executor.run(lambda: http.get("https://bc.test/v2.0/items"), describe="GET https://bc.test/v2.0/items")
    assert waits == [3.0, 1.0]
    assert recorded.total(names.THROTTLED, service="bc.test", mapping="customers", direction="to_crm") == 1
    assert recorded.total(names.THROTTLED, service="bc.test") == 2
    [with_run] = [p for p in recorded.points(names.THROTTLE_WAIT) if "mapping" in p.attributes]
    assert with_run.sum == 3.0
    [span] = recorded.exporter.get_finished_spans()
    assert [(e.name, e.attributes["wait_s"]) for e in span.events] == [("throttled", 3.0)]


def test_lag_high_is_an_event_at_most_once_a_minute_per_mapping_and_direction(
        recorded: Recorded, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    setup.install(lag_alert_s=60.0)  # the alert's threshold, as DUALSYNC_ALERTS__LAG_SECONDS sets it
    monkeypatch.setattr(processing_module, "_lag_events", {})
    caplog.set_level(logging.INFO, logger="dualsync.events")
    for lag_s in (30, 90, 120):  # under the threshold, then twice over it within a minute
        with processing(MESSAGE, clock=lambda: NOW) as run:
            run.source_modified = NOW - dt.timedelta(seconds=lag_s)
            run.done(Processed(MESSAGE, result(Outcome.MODIFIED)))
    other = SyncMessage("contacts", Direction.TO_ERP, "k-1")
    with processing(other, clock=lambda: NOW) as run:
        run.source_modified = NOW - dt.timedelta(seconds=600)
        run.done(Processed(other, SyncResult("contacts", Direction.TO_ERP, "k-1", Outcome.INSERTED)))
    emitted = [r for r in caplog.records if getattr(r, "event", None) == "lag_high"]
    assert [(r.mapping, r.direction, r.lag_seconds, r.threshold_seconds) for r in emitted] == [
        ("customers", "to_crm", 90.0, 60.0), ("contacts", "to_erp", 600.0, 60.0)]
    assert all(r.levelno == logging.WARNING for r in emitted)


def test_with_telemetry_off_nothing_is_recorded_and_messages_carry_no_trace_context() -> None:
    setup.reset()
    assert setup.mode() == "none"
    with setup.tracer().start_as_current_span("webhook x/y") as span:
        assert not span.is_recording()
        assert trace_properties() == {}
    with processing(MESSAGE, delivery=Delivery(properties={"traceparent": "garbage"}), clock=lambda: NOW) as run:
        assert not run.span.is_recording()
        run.done(Processed(MESSAGE, result(Outcome.MODIFIED)))  # no-op instruments: nothing to fail
