"""The structured events the alert rules query (logger `dualsync.events`, name and dimensions in the record's
extra, which Application Insights keeps as customDimensions): `sync_failed` where an error record is written,
`message_dead_lettered` where a dead letter becomes one — both against Azurite's real error store."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from shared.mapping import Direction
from shared.queue import SyncMessage
from shared.queue.dead_letters import DEAD_LETTERS, DeadLetter, record_dead_letter
from shared.state import StateStore
from shared.sync.context import RunContext
from shared.sync.failures import remember_failure
from shared.sync.outcome import Outcome, SyncResult
from shared.telemetry import instruments as names
from tests.telemetry.conftest import Recorded


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dualsync.events" and getattr(r, "event", None) == name]


async def test_a_failed_sync_is_an_event_with_its_mapping_direction_and_record(
        store: StateStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dualsync.events")
    failed = SyncResult("customers", Direction.TO_CRM, "c-9", Outcome.FAILED,
                        message="Dataverse refused the write: 'telephone1' is too long " + "x" * 400)
    engine = SimpleNamespace(state=store)  # remember_failure needs the engine's state only
    record = await remember_failure(engine, RunContext(job_id="job-1"), failed)  # type: ignore[arg-type]
    assert record is not None and await store.errors.find_error("customers", "to_crm", "c-9") is not None
    [event] = events(caplog, "sync_failed")
    assert event.levelno == logging.WARNING
    assert (event.mapping, event.direction, event.source_id, event.transient, event.attempts, event.job_id) == (
        "customers", "to_crm", "c-9", False, 1, "job-1")
    assert event.getMessage().startswith("customers to_crm c-9: Dataverse refused the write")
    assert len(event.getMessage()) < 260  # a signal; the error record keeps the whole message
    # Anything but a failure is no event.
    await remember_failure(engine, RunContext(), SyncResult("customers", Direction.TO_CRM, "c-8",  # type: ignore[arg-type]
                                                            Outcome.MODIFIED))
    assert len(events(caplog, "sync_failed")) == 1


async def test_a_dead_letter_is_an_event_and_a_metric(store: StateStore, recorded: Recorded,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dualsync.events")
    message = SyncMessage("customers", Direction.TO_CRM, "c-1")
    await record_dead_letter(store.errors, DeadLetter(message.to_json().encode(), "m-1", "MaxDeliveryCountExceeded",
                                                      "PoisonMessage: mapping 'customers' is disabled", 10))
    await record_dead_letter(store.errors, DeadLetter(b"not json", "m-2", "TTLExpiredException"))
    first, second = events(caplog, "message_dead_lettered")
    assert (first.mapping, first.direction, first.source_id, first.message_id, first.reason,
            first.delivery_count) == ("customers", "to_crm", "c-1", "m-1", "MaxDeliveryCountExceeded", 10)
    assert (second.mapping, second.direction, second.message_id) == (DEAD_LETTERS, "queue", "m-2")
    assert not hasattr(second, "source_id")  # dimensions that are None are left out
    assert recorded.total(names.DEAD_LETTERS, mapping="customers", reason="MaxDeliveryCountExceeded") == 1
    assert recorded.total(names.DEAD_LETTERS) == 2
