"""A paused mapping in the processor, against both emulators and Azurite: its notices are kept (put back on the
queue, nothing read), resume catches up at once, a kept notice coming back costs one read; the local queue
(emulators.functions_host) keeps the notices for as long as the pause lasts; permanent failures pause a
mapping by itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from emulators.functions_host import InProcessQueue
from emulators.functions_host.servicebus import QueuedMessage
from shared.admin import ops
from shared.admin.pauses import pause_mapping, resume_mapping
from shared.http.retry import RetryPolicy
from shared.mapping import Direction
from shared.queue import RetrySchedule, SyncMessage, process_message
from shared.queue.process import Processed
from shared.sync import SyncEngine
from tests.functions.test_webhooks import RecordingSender
from tests.sync import conftest as fixtures
from tests.sync.conftest import World, bc_customer, coupled_customer

pack, bc_app, dv_app, state, engine_options, world = (fixtures.pack, fixtures.bc_app, fixtures.dv_app,
                                                      fixtures.state, fixtures.engine_options, fixtures.world)
SCHEDULE = RetrySchedule(max_attempts=3, base_delay=60, max_delay=600, random=lambda: 0.5)
IMPATIENT = RetryPolicy(max_attempts=1, max_elapsed=1.0, base_delay=0.0, max_delay=0.0, rate_limit_base=0.0)


async def process(engine: SyncEngine, message: SyncMessage, sender: RecordingSender) -> Processed:
    return await process_message(message.to_json(), engine=engine, sender=sender, schedule=SCHEDULE)


async def test_a_paused_mappings_notice_is_kept_without_a_read_and_costs_one_read_after_resume(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await pause_mapping(world.engine, "customers", "BC upgrade")
    await world.bc.edit("customers", customer["id"], {"city": "Lund"})
    notice = SyncMessage("customers", Direction.TO_CRM, customer["id"], "updated", marker="v2",
                         seen_at=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC))
    sender, mark = RecordingSender(), world.traffic.mark()
    before = dt.datetime.now(dt.UTC)
    done = await process(world.engine, notice, sender)
    assert done.result is None and "paused (BC upgrade): notice kept" in (done.note or "")
    assert world.traffic.requests[mark:] == []  # nothing read while paused
    [(kept, at)] = sender.scheduled
    # The same notice (attempt, seen_at, session unchanged), with its own message id so duplicate detection
    # keeps it, due after the first back-off (60 s, half jittered: 45 s).
    assert (kept.attempt, kept.held, kept.seen_at, kept.session_id) == (1, 1, notice.seen_at, notice.session_id)
    assert kept.message_id != notice.message_id
    assert dt.timedelta(seconds=44) < at - before < dt.timedelta(seconds=47)
    assert SyncMessage.from_json(kept.to_json()) == kept
    # Kept again, later: the back-off grows, still nothing read, the attempt still 1.
    again = await process(world.engine, kept, RecordingSender())
    assert again.retry_at is not None and again.retry_at - dt.datetime.now(dt.UTC) > dt.timedelta(seconds=88)
    assert world.traffic.requests[mark:] == []
    assert (await world.dv.row("accounts", account_id))["address1_city"] != "Lund"

    # Resume: the catch-up brings the account to the latest state at once, without waiting for the notice.
    await world.bc.edit("customers", customer["id"], {"city": "Ystad"})  # the notice above is now superseded
    status = await resume_mapping(world.engine, "customers")
    assert status["state"] == "running" and status["paused"] is None
    assert status["catch_up"]["ok"] and status["catch_up"]["runs"]
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Ystad"
    # The kept notice comes back: one read of the record, no write.
    mark = world.traffic.mark()
    back = await process(world.engine, kept, RecordingSender())
    assert back.result is not None and back.result.ok and back.result.writes == 0
    assert [(r.method, r.url.path.rsplit("/", 1)[-1]) for r in world.traffic.requests[mark:]] == [
        ("GET", f"customers({customer['id']})")]


async def test_the_local_queue_keeps_notices_while_paused_and_delivers_them_on_resume(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await pause_mapping(world.engine, "customers", "maintenance")
    queue = InProcessQueue("changes")
    sender = queue.sender()
    fast = RetrySchedule(max_attempts=3, base_delay=0.05, max_delay=0.2, random=lambda: 1.0)
    handled: list[Processed] = []

    async def handler(m: QueuedMessage) -> None:
        handled.append(await process_message(m.body, engine=world.engine, sender=sender, schedule=fast))

    queue.start(handler)
    try:
        cities = ["Lund", "Ystad", "Visby"]
        for n, city in enumerate(cities):
            await world.bc.edit("customers", customer["id"], {"city": city})
            await sender.send([SyncMessage("customers", Direction.TO_CRM, customer["id"], "updated", marker=str(n))])
        await asyncio.sleep(1.0)  # several rounds of back-off: each notice kept again and again
        assert len(queue.scheduled) == 3 and queue.dead_lettered == []
        assert all(p.result is None for p in handled) and len(handled) > 3 * 3
        assert (await world.dv.row("accounts", account_id))["address1_city"] not in cities
        await resume_mapping(world.engine, "customers", catch_up=False)  # only the kept notices bring it in step
        await queue.wait_idle(timeout=10, scheduled=True)
    finally:
        await queue.stop()
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Visby"
    synced = [p for p in handled if p.result is not None]
    assert len(synced) == 3 and all(p.result.ok for p in synced)  # type: ignore[union-attr]
    assert sorted(p.message.marker or "" for p in synced) == ["0", "1", "2"]  # none lost, none twice


async def test_permanent_failures_pause_the_mapping_by_itself(world: World, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DUALSYNC_AUTOPAUSE__FAILURES", "3")
    monkeypatch.setenv("DUALSYNC_AUTOPAUSE__MINUTES", "5")
    accounts = [(await coupled_customer(world))[1]]
    for _ in range(3):
        result = await world.engine.sync_record("customers", "to_crm", (await bc_customer(world))["id"], create=True)
        accounts.append(result.destination_id or "")
    for account_id in accounts:
        await world.dv.edit("accounts", account_id, {"name": "N" * 150})  # BC's displayName holds 100 characters
    sender = RecordingSender()
    caplog.set_level(logging.INFO, logger="dualsync.events")
    for account_id in accounts[:2]:
        done = await process(world.engine, SyncMessage("customers", Direction.TO_ERP, account_id), sender)
        assert done.result is not None and not done.result.ok
    # A transient failure (BC unavailable past the retry budget) does not count.
    await world.bc.configure(faults={"error_ratio": 1.0, "error_status": 503})
    done = await process(world.engine_with(IMPATIENT), SyncMessage("customers", Direction.TO_ERP, accounts[2]), sender)
    assert done.result is not None and done.result.retryable
    await world.bc.configure(faults={"error_ratio": 0.0})
    assert (await ops.get_mapping(world.engine, "customers"))["state"] == "running"
    await process(world.engine, SyncMessage("customers", Direction.TO_ERP, accounts[2]), sender)  # the third
    status = await ops.get_mapping(world.engine, "customers")
    assert status["state"] == "auto-paused"
    assert status["paused"]["by"] == "auto-pause"
    assert status["paused"]["reason"].startswith("3 failures in 5 minutes (threshold 3); last: ")
    [event] = [r for r in caplog.records if getattr(r, "event", None) == "mapping_auto_paused"]
    assert (event.mapping, event.failures, event.threshold) == ("customers", 3, 3)  # type: ignore[attr-defined]
    # From now on its notices are kept: the fourth is not synced, nothing is read.
    mark = world.traffic.mark()
    done = await process(world.engine, SyncMessage("customers", Direction.TO_ERP, accounts[3]), sender)
    assert done.result is None and world.traffic.requests[mark:] == []
    # Resumed, the failures before count no more: one more failure leaves it running.
    await resume_mapping(world.engine, "customers", catch_up=False)
    await process(world.engine, SyncMessage("customers", Direction.TO_ERP, accounts[3]), sender)
    assert (await ops.get_mapping(world.engine, "customers"))["state"] == "running"
