"""The Service Bus queue trigger: one message = one record to bring in step (`shared.queue.process_message`).

Sessions are on (session id = mapping + record), so one record is never processed twice at once. A
transient failure schedules a retry and completes this message; a poison message raises, so Service Bus
redelivers it up to the queue's max delivery count and then dead-letters it (the reason is logged here).
The queue name is the app setting `DUALSYNC_QUEUE__NAME`; the connection the settings prefixed
`DUALSYNC_SERVICEBUS` (`__fullyQualifiedNamespace` with the managed identity).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.app_runtime import current
from shared.queue import PoisonMessage, process_message
from shared.telemetry.processing import Delivery

QUEUE_SETTING = "DUALSYNC_QUEUE__NAME"
CONNECTION = "DUALSYNC_SERVICEBUS"
log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("processor")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=f"%{QUEUE_SETTING}%", connection=CONNECTION,
                              is_sessions_enabled=True)
async def processor(msg: func.ServiceBusMessage) -> None:
    runtime = current()
    delivery = Delivery(properties=msg.application_properties, enqueued_at=msg.enqueued_time_utc,
                        message_id=msg.message_id, delivery_count=msg.delivery_count)
    try:
        done = await process_message(msg.get_body(), engine=await runtime.engine(), sender=await runtime.sender(),
                                     schedule=runtime.retry_schedule(), delivery=delivery,
                                     activity=await runtime.activity())
    except PoisonMessage as exc:
        log.error("poison message %s (delivery %s): %s", msg.message_id, msg.delivery_count, exc)
        raise
    m, result = done.message, done.result
    if result is None:
        log.info("%s %s %s: %s", m.mapping, m.direction.value, m.source_id, done.note)
    else:
        log.info("%s %s %s: %s%s", m.mapping, m.direction.value, m.source_id, result.outcome.value,
                 f", retry at {done.retry_at.isoformat()}" if done.retry_at else "")
