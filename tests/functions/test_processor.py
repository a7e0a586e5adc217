"""The processor trigger called as the host calls it (`func.ServiceBusMessage`), against both emulators and
Azurite through the engine of tests/sync."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.functions.servicebus import ServiceBusMessage

from functions.dead_letters import dead_letters
from functions.processor import processor
from shared.app_runtime import AppRuntime, install
from shared.http.retry import RetryPolicy
from shared.maintenance import retry_failed
from shared.mapping import Direction, Side
from shared.queue import PoisonMessage, RetrySchedule, SyncMessage
from shared.queue.dead_letters import DEAD_LETTERS
from shared.sync import SyncEngine
from tests.functions.test_webhooks import RecordingSender
from tests.sync import conftest as fixtures
from tests.sync.conftest import World, coupled_customer

pack, bc_app, dv_app, state, engine_options, world = (fixtures.pack, fixtures.bc_app, fixtures.dv_app,
                                                      fixtures.state, fixtures.engine_options, fixtures.world)
SCHEDULE = RetrySchedule(max_attempts=3, base_delay=60, max_delay=600, random=lambda: 0.5)
IMPATIENT = RetryPolicy(max_attempts=1, max_elapsed=1.0, base_delay=0.0, max_delay=0.0, rate_limit_base=0.0)


def sb_message(message: SyncMessage | bytes, delivery_count: int = 1, **extra: str) -> ServiceBusMessage:
    body = message if isinstance(message, bytes) else message.to_json().encode()
    ids = {} if isinstance(message, bytes) else {"message_id": message.message_id, "session_id": message.session_id}
    return ServiceBusMessage(body=body, delivery_count=delivery_count, application_properties={},
                             user_properties={}, **{"message_id": "raw", **ids, **extra})


class Installed:
    def __init__(self, engine: SyncEngine) -> None:
        self.sender = RecordingSender()
        self.runtime = AppRuntime(engine=engine, sender=self.sender, retry=SCHEDULE)

    def __enter__(self) -> RecordingSender:
        self.previous = install(self.runtime)
        return self.sender

    def __exit__(self, *exc: object) -> None:
        install(self.previous)


async def test_a_message_syncs_the_record_as_it_is_now(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"phoneNumber": "+46 40 999"})
    # The notice says "created" and carries an old marker: only the record as it is now counts.
    message = SyncMessage("customers", Direction.TO_CRM, customer["id"], "created", marker="old")
    with Installed(world.engine) as sender:
        await processor(sb_message(message))
    assert (await world.dv.row("accounts", account_id))["telephone1"] == "+46 40 999"
    assert sender.scheduled == []


async def test_a_transient_failure_is_rescheduled_in_the_same_session(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Lund"})
    await world.dv.configure(faults={"error_ratio": 1.0, "error_status": 503})
    message = SyncMessage("customers", Direction.TO_CRM, customer["id"], "updated", marker="m")
    before = dt.datetime.now(dt.UTC)
    with Installed(world.engine_with(IMPATIENT)) as sender:
        await processor(sb_message(message))
    [(retry, at)] = sender.scheduled
    assert (retry.attempt, retry.session_id) == (2, message.session_id)
    assert retry.message_id != message.message_id  # duplicate detection must not swallow the retry
    # First back-off 60 s, half of it jittered (random → 0.5): 30 + 15 s.
    assert dt.timedelta(seconds=44) < at - before < dt.timedelta(seconds=48)
    # Not silent: a transient error record, never skipped, that a later success clears.
    [error] = [e async for e in world.state.errors.list_errors("customers")]
    assert (error.source_id, error.transient, error.skipped) == (customer["id"], True, False)
    await world.dv.configure(faults={"error_ratio": 0.0})
    with Installed(world.engine) as sender:
        await processor(sb_message(retry))
    assert sender.scheduled == []
    assert [e async for e in world.state.errors.list_errors("customers")] == []
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Lund"


async def test_transient_failures_past_the_last_attempt_leave_an_error_the_retry_timer_fixes(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Lund"})
    await world.dv.configure(faults={"error_ratio": 1.0, "error_status": 503})
    last = SyncMessage("customers", Direction.TO_CRM, customer["id"], "updated", attempt=SCHEDULE.max_attempts)
    with Installed(world.engine_with(IMPATIENT)) as sender:
        await processor(sb_message(last))  # completes: not poison, no dead letter
    assert sender.scheduled == []
    [error] = [e async for e in world.state.errors.list_errors("customers", skipped=False)]
    assert error.transient and "given up after 3 attempts" in error.message
    await world.dv.configure(faults={"error_ratio": 0.0})
    report = await retry_failed(world.engine)
    assert [r.outcome for r in report.results] == ["modified"]
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Lund"
    assert [e async for e in world.state.errors.list_errors("customers")] == []


async def test_a_permanent_failure_becomes_an_error_record_and_completes(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.dv.edit("accounts", account_id, {"name": "N" * 150})  # BC's displayName holds 100 characters
    message = SyncMessage("customers", Direction.TO_ERP, account_id, "updated")
    with Installed(world.engine) as sender:
        await processor(sb_message(message))  # completes: no exception, no retry
    assert sender.scheduled == []
    errors = [e async for e in world.state.errors.list_errors("customers")]
    assert [(e.direction, e.source_id) for e in errors] == [("to_erp", account_id)]
    assert (await world.bc.row("customers", customer["id"]))["displayName"] != "N" * 150


@pytest.mark.parametrize(("body", "why"), [
    (b"\x00garbage", "not JSON"),
    (SyncMessage("no-such-mapping", Direction.TO_CRM, "x").to_json().encode(), "no mapping"),
    (SyncMessage("currencies", Direction.TO_ERP, "x").to_json().encode(), "does not sync to_erp"),
])
async def test_poison_messages_raise_with_the_reason(world: World, body: bytes, why: str) -> None:
    with Installed(world.engine) as sender, pytest.raises(PoisonMessage, match=why):
        await processor(sb_message(body))
    assert sender.scheduled == [] and sender.sent == []


async def test_a_deleted_source_record_removes_the_coupling(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.delete("customers", customer["id"])
    with Installed(world.engine) as sender:
        await processor(sb_message(SyncMessage("customers", Direction.TO_CRM, customer["id"], "deleted")))
    # bc-sales customers: deletion policy remove_coupling; the account stays, uncoupled.
    assert await world.coupling("customers", Side.ERP, customer["id"]) is None
    assert await world.dv.row("accounts", account_id) is not None
    assert sender.scheduled == []


@pytest.mark.parametrize("readable", [True, False])
async def test_a_dead_letter_becomes_an_error_record_retry_fixes(world: World, readable: bool) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Visby"})
    message = SyncMessage("customers", Direction.TO_CRM, customer["id"], "updated")
    # As the binding fills them for the dead-letter queue's trigger.
    letter = sb_message(message if readable else b"\x00garbage", dead_letter_reason="MaxDeliveryCountExceeded",
                        dead_letter_error_description="ServiceRequestError: storage unreachable")
    with Installed(world.engine):
        await dead_letters(letter)
    [error] = [e async for e in world.state.errors.list_errors()]
    assert "dead-lettered by Service Bus (MaxDeliveryCountExceeded): ServiceRequestError" in error.message
    if not readable:
        assert (error.mapping, error.source_id) == (DEAD_LETTERS, "raw")
        return
    assert (error.mapping, error.direction, error.source_id) == ("customers", "to_crm", customer["id"])
    assert [r.outcome for r in (await retry_failed(world.engine)).results] == ["modified"]
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Visby"
