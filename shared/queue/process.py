"""What the processor does with one queue message, free of Azure Functions: read the record now and sync it
(`SyncEngine.sync_record`), reschedule transient failures with back-off, refuse poison.

    done = await process_message(body, engine=engine, sender=sender, schedule=RetrySchedule())

Outcomes: the result (every failure is already an error record, written by the engine); a retryable
failure → a new scheduled message (attempt + 1, same session) and this one completes; a record whose transient
failures outlast `max_attempts` → its error record says the queue gave up (the retry timer and the
modified-records sync take it from there) and the message completes; a poison message (unreadable, unknown or
disabled mapping) → `PoisonMessage`, which the trigger lets propagate so Service Bus redelivers it up to its
max delivery count and then dead-letters it — where `shared.queue.dead_letters` makes it an error record.

A message of a paused mapping (shared.admin.pauses) is kept, not synced: put back on the queue scheduled
with the same back-off (`held` + 1, the attempt unchanged), without reading anything. Permanent failures
feed the auto-pause (shared.autopause).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared import autopause
from shared.connectors import NotFound
from shared.mapping import MappingError, TableMapping, select_mappings
from shared.queue.message import PoisonMessage, SyncMessage
from shared.queue.retry import RetrySchedule
from shared.queue.sender import QueueSender
from shared.state.pauses import Pause
from shared.sync import SyncEngine, SyncResult
from shared.sync.context import utc_now
from shared.telemetry.activity import ActivityRecorder
from shared.telemetry.processing import Delivery, processing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    """What became of one message: `result` of the sync (None when another mapping of a route takes the
    record), `retry_at` when a transient failure was rescheduled."""

    message: SyncMessage
    result: SyncResult | None
    retry_at: dt.datetime | None = None
    note: str | None = None


async def process_message(body: bytes | str, *, engine: SyncEngine, sender: QueueSender, schedule: RetrySchedule,
                          clock: Callable[[], dt.datetime] = utc_now, delivery: Delivery | None = None,
                          activity: ActivityRecorder | None = None) -> Processed:
    """Process one message body; raises `PoisonMessage` (with the reason) for a message never to retry.
    `delivery` (what the trigger knows of the message: its trace context, when it was enqueued) and `activity`
    (the console's per-minute counts) feed the telemetry: a span, metrics, `lag_high` (shared.telemetry)."""
    message = SyncMessage.from_json(body)
    with processing(message, delivery=delivery, activity=activity, clock=clock) as run:
        return run.done(await _process(message, engine=engine, sender=sender, schedule=schedule, clock=clock))


async def _process(message: SyncMessage, *, engine: SyncEngine, sender: QueueSender, schedule: RetrySchedule,
                   clock: Callable[[], dt.datetime]) -> Processed:
    what = f"{message.mapping} {message.direction.value} {message.source_id}"
    try:
        mapping = engine.mapping(message.mapping)
    except MappingError as exc:
        raise PoisonMessage(f"{what}: {exc}") from None
    if mapping.enabled and (pause := await engine.state.pauses.paused(mapping.name)) is not None:
        return await _hold(message, pause, sender, schedule, clock)
    if (elsewhere := await _route_elsewhere(engine, mapping, message)) is not None:
        return Processed(message, None, note=elsewhere)
    try:
        result = await engine.sync_record(mapping, message.direction, message.source_id, trigger="webhook",
                                          marker=message.marker if message.change != "deleted" else None)
    except ValueError as exc:  # disabled mapping, or a direction the mapping does not carry
        raise PoisonMessage(f"{what}: {exc}") from None
    if not result.retryable:
        await autopause.note_results(engine.state, mapping.name, [result], now=clock())
        return Processed(message, result)
    if message.attempt >= schedule.max_attempts:
        # Not poison: the record is fine, the service was not. Its (transient) error record stays for the
        # retry timer and the modified-records sync; the note says the queue stopped trying.
        note = f"given up after {message.attempt} attempts with transient failures: {result.message}"
        await engine.state.errors.record_failure(mapping.name, direction=message.direction.value,
                                                 source_id=message.source_id, message=note, detail=result.detail,
                                                 destination_id=result.destination_id, transient=True)
        log.warning("%s: %s", what, note)
        return Processed(message, result, note=note)
    at = clock() + schedule.delay(message.attempt)
    await sender.schedule(message.next_attempt(), at)
    log.info("%s: transient failure (attempt %d), retry at %s: %s", what, message.attempt, at.isoformat(),
             result.message)
    return Processed(message, result, retry_at=at)


async def _hold(message: SyncMessage, pause: Pause, sender: QueueSender, schedule: RetrySchedule,
                clock: Callable[[], dt.datetime]) -> Processed:
    """Keep a paused mapping's notice: the same notice again later, on the retry back-off (capped at the
    schedule's longest delay, so a resumed mapping's notices all return within it)."""
    at = clock() + schedule.delay(message.held + 1)
    await sender.schedule(message.held_again(), at)
    return Processed(message, None, retry_at=at, note=f"mapping {pause.state} ({pause.reason}): notice kept, "
                                                      f"looked at again at {at.isoformat()}")


async def _route_elsewhere(engine: SyncEngine, mapping: TableMapping, message: SyncMessage) -> str | None:
    """A routed entity (one source record, several candidate mappings) goes to the first mapping whose filter
    it passes; the webhook queued every candidate, so each checks here. None: this mapping takes the record;
    else why not, as the processor reports it. When no rule takes it, the route's `otherwise` says what
    happens: `skip` (reported), or `error` (an error record, once: on the route's first mapping). A deleted
    record goes to all (only the mapping holding a coupling has anything to do)."""
    side = message.direction.source
    entity = mapping.entity(side).entity
    route = engine.pack.route_for(side, entity)
    if route is None:
        return None
    try:
        record = await engine.connector(side).get(entity, message.source_id, select=engine.select(mapping, side))
    except NotFound:
        return None
    chosen = select_mappings(engine.pack, side, entity, record.values)
    if any(m.name == mapping.name for m in chosen):
        return None
    if chosen:
        return f"mapping '{chosen[0].name}' of route '{route.name}' takes this record"
    why = f"no mapping of route '{route.name}' takes this record (none of {', '.join(route.mappings)} matches)"
    if route.otherwise == "skip":
        return f"{why}: skipped (otherwise: skip)"
    if mapping.name == route.mappings[0]:
        await engine.state.errors.record_failure(mapping.name, direction=message.direction.value,
                                                 source_id=message.source_id, message=f"{why} (otherwise: error)")
    return f"{why}: an error record (otherwise: error)"
