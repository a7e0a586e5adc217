"""An in-process Service Bus queue with the semantics the processor relies on (PROTOCOLS.md §6):

- sessions: messages of one session are delivered one at a time, in the order they became active (FIFO);
  other sessions run in parallel, up to `max_concurrent_sessions` (host.json `maxConcurrentSessions`);
- duplicate detection: a message id seen within `duplicate_window` is dropped on send (scheduled ones too);
- scheduled messages become visible at their time;
- a handler that raises abandons the message: it is redelivered at once with `delivery_count` + 1, and at
  `max_delivery_count` it moves to the dead-letter list with reason `MaxDeliveryCountExceeded` and the
  error's text as description (what Service Bus does with a Functions trigger's failed message);
- the dead-letter sub-queue: `dead_letters` is what it holds. With a receiver (`start_dead_letters`) each dead
  letter is delivered, without sessions, one at a time in the order dead-lettered, and removed once completed. A
  failure redelivers it; Service Bus cannot dead-letter from a dead-letter queue, so it would go on redelivering
  forever: here it stays in `dead_letters` after `max_delivery_count` deliveries from the DLQ (no hot loop).

Everything runs on the event loop the queue is used on; `sender()` gives a `shared.queue.QueueSender`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.queue import SyncMessage
from shared.queue.sender import application_properties

log = logging.getLogger(__name__)
Handler = Callable[["QueuedMessage"], Awaitable[None]]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class QueuedMessage:
    body: bytes
    message_id: str
    session_id: str
    sequence_number: int
    enqueued_at: dt.datetime
    scheduled_at: dt.datetime | None = None
    content_type: str | None = None
    subject: str | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)
    delivery_count: int = 0
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery, for tests: which message of which session, when it started and ended, and how."""

    message_id: str
    session_id: str
    delivery_count: int
    started: float
    ended: float
    completed: bool


class InProcessQueue:
    def __init__(self, name: str, *, max_delivery_count: int = 10,
                 duplicate_window: dt.timedelta = dt.timedelta(minutes=10), max_concurrent_sessions: int = 8) -> None:
        if max_delivery_count < 1 or max_concurrent_sessions < 1:
            raise ValueError("max_delivery_count and max_concurrent_sessions must be at least 1")
        self.name = name
        self.max_delivery_count = max_delivery_count
        self.duplicate_window = duplicate_window
        self.max_concurrent_sessions = max_concurrent_sessions
        self.sessions: dict[str, deque[QueuedMessage]] = {}
        self.scheduled: list[tuple[dt.datetime, int, QueuedMessage]] = []
        self.dead_letters: list[QueuedMessage] = []  # the dead-letter sub-queue's content
        self.dead_lettered: list[QueuedMessage] = []  # every message ever dead-lettered (tests)
        self.deliveries: list[DeliveryRecord] = []
        self.dead_letter_deliveries: list[DeliveryRecord] = []
        self.duplicates_dropped = 0
        self._seen: dict[str, dt.datetime] = {}
        self._sequence = itertools.count(1)
        self._locked: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._dlq_pending: deque[QueuedMessage] = deque()  # dead letters the DLQ receiver has yet to get
        self._dlq_in_flight = False
        self._dlq_wake: asyncio.Event | None = None
        self._dlq_receiver: asyncio.Task[None] | None = None

    # ----- sending
    def put(self, body: bytes | str, *, message_id: str, session_id: str, scheduled_at: dt.datetime | None = None,
            content_type: str | None = None, subject: str | None = None,
            application_properties: dict[str, Any] | None = None) -> bool:
        """Enqueue (or schedule) one message; False when duplicate detection dropped it."""
        if not session_id:
            raise ValueError(f"queue '{self.name}' requires sessions: a message needs a session id")
        if not message_id:
            raise ValueError("a message needs a message id (duplicate detection)")
        if scheduled_at is not None and scheduled_at.tzinfo is None:
            raise ValueError("scheduled_at must be timezone-aware")
        now = utc_now()
        self._seen = {k: t for k, t in self._seen.items() if now - t < self.duplicate_window}
        if message_id in self._seen:
            self.duplicates_dropped += 1
            return False
        self._seen[message_id] = now
        message = QueuedMessage(body.encode() if isinstance(body, str) else body, message_id, session_id,
                                next(self._sequence), now, scheduled_at, content_type, subject,
                                dict(application_properties or {}))
        if scheduled_at is not None and scheduled_at > now:
            heapq.heappush(self.scheduled, (scheduled_at, message.sequence_number, message))
        else:
            self.sessions.setdefault(session_id, deque()).append(message)
        self._poke()
        return True

    def sender(self) -> InProcessSender:
        return InProcessSender(self)

    # ----- state
    @property
    def active_count(self) -> int:
        return sum(len(q) for q in self.sessions.values())

    @property
    def busy(self) -> bool:
        """Messages are queued or in flight (scheduled ones not counted), dead letters for a receiver too."""
        return self.active_count > 0 or bool(self._locked) or self._dlq_busy

    @property
    def _dlq_busy(self) -> bool:
        return bool(self._dlq_pending) or self._dlq_in_flight

    def _activate_due(self) -> float | None:
        """Move due scheduled messages to their sessions; seconds until the next one is due (None: none)."""
        now = utc_now()
        while self.scheduled and self.scheduled[0][0] <= now:
            _, _, message = heapq.heappop(self.scheduled)
            message.enqueued_at = now
            self.sessions.setdefault(message.session_id, deque()).append(message)
        return (self.scheduled[0][0] - now).total_seconds() if self.scheduled else None

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # ----- receiving
    def start(self, handler: Handler) -> None:
        """Deliver messages to `handler` on the running loop until `stop()`."""
        if self._dispatcher is not None:
            raise RuntimeError(f"queue '{self.name}' is already being received")
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(handler))

    def start_dead_letters(self, handler: Handler) -> None:
        """Deliver the dead-letter sub-queue to `handler` (dead letters already there first) until `stop()`."""
        if self._dlq_receiver is not None:
            raise RuntimeError(f"the dead-letter queue of '{self.name}' is already being received")
        self._dlq_wake = asyncio.Event()
        self._dlq_pending = deque(self.dead_letters)
        self._dlq_receiver = asyncio.get_running_loop().create_task(self._receive_dead_letters(handler))

    async def stop(self) -> None:
        tasks = [t for t in (self._dispatcher, self._dlq_receiver, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._dispatcher, self._locked = None, set()
        self._dlq_receiver, self._dlq_pending, self._dlq_in_flight = None, deque(), False

    async def _dispatch(self, handler: Handler) -> None:
        assert self._wake is not None and self._idle is not None
        while True:
            self._wake.clear()
            wait = self._activate_due()
            ready = sorted((q[0].sequence_number, sid) for sid, q in self.sessions.items()
                           if q and sid not in self._locked)
            for _, sid in ready:
                if len(self._locked) >= self.max_concurrent_sessions:
                    break
                self._locked.add(sid)
                task = asyncio.get_running_loop().create_task(self._session(sid, handler))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if not self._locked and self.active_count == 0:
                self._idle.set()
            else:
                self._idle.clear()
            with contextlib.suppress(TimeoutError):  # a scheduled message falls due
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _session(self, sid: str, handler: Handler) -> None:
        """Hold the session's lock while its queued messages are handled one at a time, in order."""
        try:
            queue = self.sessions.get(sid)
            while queue:
                message = queue[0]
                message.delivery_count += 1
                started = asyncio.get_running_loop().time()
                try:
                    await handler(message)
                    completed, error = True, None
                except Exception as exc:  # abandon: Service Bus redelivers, then dead-letters
                    completed, error = False, exc
                self.deliveries.append(DeliveryRecord(message.message_id, sid, message.delivery_count, started,
                                                      asyncio.get_running_loop().time(), completed))
                if completed:
                    queue.popleft()
                elif message.delivery_count >= self.max_delivery_count:
                    queue.popleft()
                    self._dead_letter(message, "MaxDeliveryCountExceeded", f"{type(error).__name__}: {error}")
            if queue is not None and not queue:
                self.sessions.pop(sid, None)
        finally:
            self._locked.discard(sid)
            self._poke()

    def _dead_letter(self, message: QueuedMessage, reason: str, description: str) -> None:
        # The broker adds the reason and description as application properties of the dead letter; the
        # Functions binding also gives them as `dead_letter_reason` / `dead_letter_error_description`.
        message.dead_letter_reason, message.dead_letter_description = reason, description
        message.application_properties = {**message.application_properties, "DeadLetterReason": reason,
                                          "DeadLetterErrorDescription": description}
        self.dead_letters.append(message)
        self.dead_lettered.append(message)
        log.warning("queue %s: message %s dead-lettered after %d deliveries: %s", self.name, message.message_id,
                    message.delivery_count, description)
        if self._dlq_receiver is not None and self._dlq_wake is not None:
            self._dlq_pending.append(message)
            self._dlq_wake.set()

    async def _receive_dead_letters(self, handler: Handler) -> None:
        assert self._dlq_wake is not None
        while True:
            self._dlq_wake.clear()
            while self._dlq_pending:
                message = self._dlq_pending.popleft()
                self._dlq_in_flight = True
                try:
                    await self._deliver_dead_letter(message, handler)
                finally:
                    self._dlq_in_flight = False
            await self._dlq_wake.wait()

    async def _deliver_dead_letter(self, message: QueuedMessage, handler: Handler) -> None:
        """Deliver one dead letter until it completes or has had `max_delivery_count` deliveries from the DLQ.
        Its delivery count goes on from the main queue's (unconfirmed: whether Service Bus restarts it)."""
        loop = asyncio.get_running_loop()
        for _ in range(self.max_delivery_count):
            message.delivery_count += 1
            started = loop.time()
            try:
                await handler(message)
                completed = True
            except Exception as exc:  # abandon: redelivered at once
                completed = False
                log.warning("queue %s: dead letter %s failed in its receiver: %s: %s", self.name,
                            message.message_id, type(exc).__name__, exc)
            self.dead_letter_deliveries.append(DeliveryRecord(message.message_id, message.session_id,
                                                              message.delivery_count, started, loop.time(),
                                                              completed))
            if completed:  # by identity: two dead letters may be equal field by field
                del self.dead_letters[next(i for i, m in enumerate(self.dead_letters) if m is message)]
                return
        log.error("queue %s: dead letter %s kept in the dead-letter queue after %d failed deliveries", self.name,
                  message.message_id, self.max_delivery_count)

    async def wait_idle(self, timeout: float = 10.0, *, scheduled: bool = False) -> None:
        """Wait until nothing is queued or in flight (with `scheduled`, nothing scheduled either)."""
        if self._idle is None:
            raise RuntimeError("the queue is not being received (call start)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await asyncio.sleep(0)
            if self._idle.is_set() and not self._locked and self.active_count == 0 and not self._dlq_busy \
                    and not (scheduled and self.scheduled):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"queue '{self.name}' still busy after {timeout} s")
            await asyncio.sleep(0.01)


class InProcessSender:
    """`shared.queue.QueueSender` over an `InProcessQueue`, setting session and message ids as Azure's does."""

    def __init__(self, queue: InProcessQueue) -> None:
        self.queue = queue

    def _put(self, message: SyncMessage, at: dt.datetime | None) -> bool:
        return self.queue.put(message.to_json(), message_id=message.message_id, session_id=message.session_id,
                              scheduled_at=at, content_type="application/json", subject=message.mapping,
                              application_properties=application_properties(message))

    async def send(self, messages: Sequence[SyncMessage]) -> None:
        for message in messages:
            self._put(message, None)

    async def schedule(self, message: SyncMessage, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("schedule time must be timezone-aware")
        self._put(message, at)
