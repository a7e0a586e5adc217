"""The dead-letter sub-queue's trigger: every message Service Bus dead-lettered becomes an error record
(`shared.queue.dead_letters`) that `errors` lists and `retry` fixes, then completes.

The dead-letter queue of a session-enabled queue is read without sessions, at `<queue>/$deadletterqueue`.
A failure here (Table storage down) raises: the dead letter is redelivered, never lost.
"""

from __future__ import annotations

import azure.functions as func

from functions.processor import CONNECTION, QUEUE_SETTING
from shared.app_runtime import current
from shared.queue.dead_letters import DeadLetter, record_dead_letter

bp = func.Blueprint()


@bp.function_name("dead_letters")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=f"%{QUEUE_SETTING}%/$deadletterqueue",
                              connection=CONNECTION, is_sessions_enabled=False)
async def dead_letters(msg: func.ServiceBusMessage) -> None:
    letter = DeadLetter(msg.get_body(), msg.message_id or "", msg.dead_letter_reason,
                        msg.dead_letter_error_description, msg.delivery_count)
    await record_dead_letter((await current().engine()).state.errors, letter)
