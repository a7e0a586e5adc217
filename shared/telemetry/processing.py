"""What the processor tells about each message it handles (`shared.queue.process.process_message` wraps its work
in `processing(...)`):

- a span `process <mapping> <direction>`, child of the webhook's span through the message's `traceparent`,
  with the outcome, the attempt and the time the message waited in the queue;
- metrics (`shared.telemetry.instruments`): the change and its outcome, a failure, the end-to-end lag of a change
  written (the source record's modified time, as the processor read it, → our write done; the webhook's receipt
  when the record could not be read), the queue age, and the 429 waits met on the way (`throttled`, told by
  `shared.http.retry`'s hook while this message is the current one);
- the per-minute activity the console reads (`shared.telemetry.activity`), when the trigger passes a recorder;
- a `lag_high` event when the lag passes `DUALSYNC_ALERTS__LAG_SECONDS`, at most once a minute per mapping and
  direction (a backlog must not turn into a flood of events).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shared.http import retry as http_retry
from shared.mapping import Side
from shared.telemetry import events
from shared.telemetry.propagation import context_from
from shared.telemetry.setup import instruments, lag_alert_seconds, tracer

if TYPE_CHECKING:
    from shared.queue.message import SyncMessage
    from shared.queue.process import Processed
    from shared.telemetry.activity import ActivityRecorder

# Outcomes that wrote something: the changes whose lag is measured and that the console counts.
WRITTEN = frozenset({"inserted", "modified", "deleted", "coupled", "uncoupled"})
LAG_EVENT_EVERY_S = 60.0

_current: ContextVar[Run | None] = ContextVar("dualsync_processing", default=None)
_lag_events: dict[tuple[str, str], float] = {}  # (mapping, direction) → monotonic time of the last lag_high


def current_run() -> Run | None:
    """The message being processed in this task (None outside the processor)."""
    return _current.get()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Delivery:
    """What the trigger knows of a message besides its body: its application properties (the trace context),
    when it was enqueued (its age), its id and delivery count."""

    properties: Mapping[str, Any] | None = None
    enqueued_at: dt.datetime | None = None
    message_id: str | None = None
    delivery_count: int | None = None


@dataclass
class Run:
    """One message being processed."""

    mapping: str
    direction: str
    source_side: Side
    source_id: str
    seen_at: dt.datetime | None
    span: Span
    activity: ActivityRecorder | None = None
    clock: Callable[[], dt.datetime] = utc_now
    enqueued_at: dt.datetime | None = None
    source_modified: dt.datetime | None = None  # told by shared.telemetry.tracing.TracedConnector
    throttled: int = 0
    _recorded: bool = field(default=False, repr=False)

    @property
    def dimensions(self) -> dict[str, str]:
        return {"mapping": self.mapping, "direction": self.direction}

    def lag_seconds(self, now: dt.datetime) -> float:
        """Source modified → now; from the webhook's receipt (then the queue) when the record was not read."""
        start = self.source_modified or self.seen_at or self.enqueued_at
        if start is None:
            return 0.0
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        return max(0.0, (now - start).total_seconds())  # another system's clock may run ahead of ours

    def done(self, processed: Processed) -> Processed:
        """Record what became of the message; returns `processed` unchanged."""
        result = processed.result
        if result is None:  # another mapping of a route takes the record, or the mapping is paused
            self.span.set_attribute("dualsync.outcome", "held" if processed.retry_at else "elsewhere")
            return processed
        outcome = result.outcome.value
        self.span.set_attribute("dualsync.outcome", outcome)
        self.span.set_attribute("dualsync.writes", result.writes)
        if processed.retry_at is not None:
            self.span.set_attribute("dualsync.retry_at", processed.retry_at.isoformat())
        failed = outcome == "failed"
        if failed:
            self.span.set_status(Status(StatusCode.ERROR, "sync failed" + (" (transient)" if result.retryable
                                                                           else "")))
        self._record(outcome, failed=failed, transient=result.retryable)
        return processed

    def raised(self, exc: Exception) -> None:
        """The message is not done: a poison message (dead-lettered after its deliveries), or an unexpected
        error (Table storage down…) that Service Bus redelivers."""
        from shared.queue.message import PoisonMessage  # here: shared.queue imports this module

        poison = isinstance(exc, PoisonMessage)
        self._record("poison" if poison else "error", failed=True, transient=not poison)

    def _record(self, outcome: str, *, failed: bool, transient: bool) -> None:
        if self._recorded:
            return
        self._recorded = True
        now, inst, dims = self.clock(), instruments(), self.dimensions
        inst.changes.add(1, {**dims, "outcome": outcome})
        if failed:
            inst.failures.add(1, {**dims, "transient": "true" if transient else "false"})
        lag = self.lag_seconds(now) if outcome in WRITTEN else None
        if lag is not None:
            inst.lag.record(lag, dims)
            self.span.set_attribute("dualsync.lag_s", round(lag, 3))
            self._maybe_lag_high(lag)
        if self.activity is not None and (lag is not None or failed or self.throttled):
            self.activity.add(self.mapping, self.direction, at=now, changes=int(lag is not None), failures=int(failed),
                              lag_ms=None if lag is None else lag * 1000.0, throttled=self.throttled)

    def _maybe_lag_high(self, lag: float) -> None:
        threshold = lag_alert_seconds()
        if threshold <= 0 or lag <= threshold:
            return
        key, now = (self.mapping, self.direction), time.monotonic()
        if now - _lag_events.get(key, -LAG_EVENT_EVERY_S) < LAG_EVENT_EVERY_S:
            return
        _lag_events[key] = now
        events.emit("lag_high", f"{self.mapping} {self.direction}: a change took {lag:.0f} s to be written "
                                f"(alert above {threshold:.0f} s)", level=logging.WARNING, mapping=self.mapping,
                    direction=self.direction, lag_seconds=round(lag, 1), threshold_seconds=threshold,
                    source_id=self.source_id)


@contextlib.contextmanager
def processing(message: SyncMessage, *, delivery: Delivery | None = None, activity: ActivityRecorder | None = None,
               clock: Callable[[], dt.datetime] = utc_now) -> Iterator[Run]:
    """The span and the current `Run` of one message; `run.done(processed)` records its outcome. An exception
    going through (a `PoisonMessage`, or an unexpected error) is recorded as a failure and re-raised."""
    delivery = delivery or Delivery()
    direction = message.direction.value
    attributes: dict[str, Any] = {"dualsync.mapping": message.mapping, "dualsync.direction": direction,
                                  "dualsync.source_id": message.source_id, "dualsync.change": message.change,
                                  "dualsync.attempt": message.attempt, "messaging.system": "servicebus"}
    if delivery.message_id:
        attributes["messaging.message.id"] = delivery.message_id
    if delivery.delivery_count is not None:
        attributes["messaging.servicebus.message.delivery_count"] = delivery.delivery_count
    now = clock()
    age = None
    if delivery.enqueued_at is not None:
        enqueued = delivery.enqueued_at if delivery.enqueued_at.tzinfo else delivery.enqueued_at.replace(tzinfo=dt.UTC)
        age = max(0.0, (now - enqueued).total_seconds())
        attributes["dualsync.queue_wait_s"] = round(age, 3)
    with tracer().start_as_current_span(f"process {message.mapping} {direction}",
                                        context=context_from(delivery.properties), kind=SpanKind.CONSUMER,
                                        attributes=attributes) as span:
        run = Run(message.mapping, direction, message.direction.source, message.source_id, message.seen_at, span,
                  activity, clock, delivery.enqueued_at)
        if age is not None:
            instruments().queue_age.record(age, run.dimensions)
        token = _current.set(run)
        try:
            yield run
        except Exception as exc:
            run.raised(exc)
            raise
        finally:
            _current.reset(token)


_HOST = re.compile(r"^\S+\s+\w+://([^/:?#\s]+)")


def on_throttled(describe: str, wait_s: float) -> None:
    """`shared.http.retry`'s hook: a 429 / busy answer is being waited on (`describe` is "METHOD URL")."""
    match = _HOST.match(describe)
    run = current_run()
    dims = {"service": match.group(1) if match else "unknown", **(run.dimensions if run else {})}
    inst = instruments()
    inst.throttled.add(1, dims)
    inst.throttle_wait.record(wait_s, dims)
    if run is not None:
        run.throttled += 1
        run.span.add_event("throttled", {"wait_s": round(wait_s, 3), "service": dims["service"]})


if on_throttled not in http_retry.throttle_hooks:
    http_retry.throttle_hooks.append(on_throttled)
