"""A dead-lettered message becomes an error record, so nothing Service Bus gives up on is silent.

Messages reach the dead-letter sub-queue when the processor raised on every delivery (a poison message: an
unknown or disabled mapping, or an unexpected failure such as Table storage being unreachable) or when Service
Bus itself gave up (TTL expired, lock lost too often). A readable message is recorded under its mapping and
record, as a transient failure: `retry` syncs the record again once the cause is fixed (a mapping that no longer
exists is reported "not retried", and the operator deletes the error). An unreadable one is recorded under
`DEAD_LETTERS` with its message id, the reason and the description — never its body, which may hold anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.queue.message import PoisonMessage, SyncMessage
from shared.state import ErrorRecord, ErrorStore
from shared.telemetry import events
from shared.telemetry.setup import instruments

DEAD_LETTERS = "(dead letters)"   # the error records' mapping for messages that could not even be read
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    body: bytes
    message_id: str
    reason: str | None = None
    description: str | None = None
    delivery_count: int | None = None


async def record_dead_letter(errors: ErrorStore, letter: DeadLetter) -> ErrorRecord:
    why = f"dead-lettered by Service Bus ({letter.reason or 'no reason given'})"
    if letter.description:
        why += f": {letter.description}"
    if letter.delivery_count:
        why += f" after {letter.delivery_count} deliveries"
    try:
        message = SyncMessage.from_json(letter.body)
    except PoisonMessage as exc:
        log.error("dead letter %s is unreadable (%s): recorded under %s", letter.message_id, exc, DEAD_LETTERS)
        _dead_lettered(letter, DEAD_LETTERS, "queue", None)
        return await errors.record_failure(DEAD_LETTERS, direction="queue", source_id=letter.message_id,
                                           message=f"{why}; unreadable: {exc}")
    log.warning("dead letter %s: %s %s %s recorded as an error", letter.message_id, message.mapping,
                message.direction.value, message.source_id)
    _dead_lettered(letter, message.mapping, message.direction.value, message.source_id)
    return await errors.record_failure(message.mapping, direction=message.direction.value,
                                       source_id=message.source_id, message=why, transient=True)


def _dead_lettered(letter: DeadLetter, mapping: str, direction: str, source_id: str | None) -> None:
    """The alert's event (`message_dead_lettered`) and metric (`dualsync.dead_letters`)."""
    instruments().dead_letters.add(1, {"mapping": mapping, "direction": direction,
                                       "reason": letter.reason or "unknown"})
    events.emit("message_dead_lettered", f"Service Bus dead-lettered a message of {mapping} "
                                         f"({letter.reason or 'no reason given'}): recorded as an error",
                level=logging.WARNING, mapping=mapping, direction=direction, source_id=source_id,
                message_id=letter.message_id, reason=letter.reason, delivery_count=letter.delivery_count)
