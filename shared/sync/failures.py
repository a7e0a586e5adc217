"""Every failed sync of a record leaves an error record: the one rule that keeps failures from being silent.

A permanent failure counts towards skipping (the same error twice → skipped until an operator restores it); a
transient one (throttling, 5xx past the retry budget, a busy reservation) is recorded as `transient`, never
skipped, so `errors` shows it and `retry` (the timer, the modified-records sync, an operator) picks it up even
when the queue's own retries run out or the message is lost with a crashed host. A later success deletes it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.state import ErrorRecord
from shared.sync.context import RunContext
from shared.sync.outcome import Outcome, SyncResult
from shared.telemetry import events

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


async def remember_failure(engine: SyncEngine, ctx: RunContext, result: SyncResult) -> ErrorRecord | None:
    """The error record of a FAILED `result` (None for any other outcome), and its `sync_failed` event."""
    if result.outcome is not Outcome.FAILED:
        return None
    record = await engine.state.errors.record_failure(
        result.mapping, direction=result.direction.value, source_id=result.source_id,
        message=result.message or "failed", detail=result.detail, destination_id=result.destination_id,
        job_id=ctx.job_id, transient=result.retryable)
    # The reason as the error record keeps it (redacted by the store), shortened: an event is a signal, the
    # error record is where an operator reads the whole story.
    events.emit("sync_failed", f"{result.mapping} {result.direction.value} {result.source_id}: "
                               f"{_short(record.message)}", level=logging.WARNING, mapping=result.mapping,
                direction=result.direction.value, source_id=result.source_id, transient=result.retryable,
                attempts=record.attempts, skipped=record.skipped, job_id=ctx.job_id)
    return record


def _short(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "failed").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
