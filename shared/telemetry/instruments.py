"""The metrics dualsync records, by name, so the alert rules (infra/modules/alerts.bicep) and the docs can refer to
exactly these names. Each carries `mapping` and `direction` (to_crm / to_erp) where it is about one.

| name | kind | unit | what |
| --- | --- | --- | --- |
| `dualsync.changes` | counter | {change} | notices the processor handled, by `outcome` (modified, failed…) |
| `dualsync.failures` | counter | {failure} | of those, the failed ones (`transient` true / false) and poison messages |
| `dualsync.lag` | histogram | s | end-to-end lag of a change written: the source's modified time → our write done |
| `dualsync.throttled` | counter | {answer} | 429 / server-busy answers waited on, by `service` (host) |
| `dualsync.throttle.wait` | histogram | s | the waits they imposed (Retry-After, or our back-off) |
| `dualsync.queue.age` | histogram | s | time a message spent in the queue before the processor took it |
| `dualsync.queue.depth` | gauge | {message} | messages waiting, where the process can see its queue (the local host) |
| `dualsync.dead_letters` | counter | {message} | messages Service Bus dead-lettered, turned into error records |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation

CHANGES = "dualsync.changes"
FAILURES = "dualsync.failures"
LAG = "dualsync.lag"
THROTTLED = "dualsync.throttled"
THROTTLE_WAIT = "dualsync.throttle.wait"
QUEUE_AGE = "dualsync.queue.age"
QUEUE_DEPTH = "dualsync.queue.depth"
DEAD_LETTERS = "dualsync.dead_letters"
# Seconds, from a fast live change to one stuck behind a throttling storm or a paused mapping.
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400)

# Queue depth where it can be read cheaply (the local host's in-process queue): name → messages waiting. In Azure
# the Service Bus namespace's own ActiveMessages / DeadletteredMessages metrics say it.
_queues: dict[str, Callable[[], int]] = {}


def watch_queue(name: str, depth: Callable[[], int]) -> None:
    """Report `depth()` as `dualsync.queue.depth{queue=name}` whenever metrics are collected."""
    _queues[name] = depth


def unwatch_queue(name: str) -> None:
    _queues.pop(name, None)


def _observe_depth(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(depth(), {"queue": name}) for name, depth in list(_queues.items())]


@dataclass(frozen=True)
class Instruments:
    changes: Counter
    failures: Counter
    lag: Histogram
    throttled: Counter
    throttle_wait: Histogram
    queue_age: Histogram
    dead_letters: Counter

    @classmethod
    def on(cls, meter: Meter) -> Instruments:
        meter.create_observable_gauge(QUEUE_DEPTH, callbacks=[_observe_depth], unit="{message}",
                                      description="Messages waiting in the queue")
        return cls(
            changes=meter.create_counter(CHANGES, unit="{change}", description="Notices handled, by outcome"),
            failures=meter.create_counter(FAILURES, unit="{failure}", description="Notices whose sync failed"),
            lag=meter.create_histogram(LAG, unit="s", description="Source modified time to written",
                                       explicit_bucket_boundaries_advisory=SECONDS_BUCKETS),
            throttled=meter.create_counter(THROTTLED, unit="{answer}", description="429 / busy answers waited on"),
            throttle_wait=meter.create_histogram(THROTTLE_WAIT, unit="s", description="Waits after 429 / busy",
                                                 explicit_bucket_boundaries_advisory=SECONDS_BUCKETS),
            queue_age=meter.create_histogram(QUEUE_AGE, unit="s", description="Enqueued to taken by the processor",
                                             explicit_bucket_boundaries_advisory=SECONDS_BUCKETS),
            dead_letters=meter.create_counter(DEAD_LETTERS, unit="{message}",
                                              description="Messages Service Bus dead-lettered"))
