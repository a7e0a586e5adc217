"""The work behind the timers (functions/schedules.py), free of Azure Functions: the modified-records sync of
every enabled mapping, the retry of failed records, and the purge of old jobs and errors.

Each returns a small report the timer logs; one mapping's failure never stops the others.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from shared.mapping import Direction, UnknownMappingError, dependency_order
from shared.state import StateStore
from shared.sync import ModifiedRun, Outcome, SyncEngine
from shared.telemetry import activity

log = logging.getLogger(__name__)


@dataclass
class ModifiedReport:
    runs: list[ModifiedRun] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # mapping → why its run raised

    @property
    def ok(self) -> bool:
        return not self.failed and not any(r.error or r.failures for r in self.runs)


async def sync_modified_all(engine: SyncEngine, *, trigger: str = "schedule", now: dt.datetime | None = None,
                            skip: Collection[str] = ()) -> ModifiedReport:
    """The modified-records sync of every enabled table mapping but those in `skip` (paused), dependencies
    first, one run start for all."""
    report = ModifiedReport()
    start = now or engine.options.clock()
    for m in dependency_order(engine.pack):
        if not m.enabled or m.kind != "table" or m.name in skip:
            continue
        try:
            report.runs += await engine.sync_modified(m, trigger=trigger, now=start)
        except Exception as exc:  # one broken mapping must not starve the others; its job says failed
            log.exception("modified-records sync of %s failed", m.name)
            report.failed[m.name] = str(exc) or type(exc).__name__
    return report


@dataclass(frozen=True)
class RetryResult:
    mapping: str
    direction: str
    source_id: str
    outcome: str              # an Outcome value, or "not retried" (mapping gone / disabled / one-way now)
    destination_id: str | None = None
    message: str | None = None


@dataclass
class RetryReport:
    results: list[RetryResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def still_failing(self) -> int:
        return sum(1 for r in self.results if r.outcome in (Outcome.FAILED, Outcome.SKIPPED, "not retried"))


async def retry_failed(engine: SyncEngine, *, mapping: str | None = None, direction: str | None = None,
                       include_skipped: bool = False, force: bool = False,
                       trigger: str = "retry", skip_mappings: Collection[str] = ()) -> RetryReport:
    """Sync again each recorded failure (of one mapping / direction; none of `skip_mappings`, the paused): the
    automatic retry takes the records not skipped; an operator's "retry all" passes `include_skipped=True,
    force=True`. A record whose counterpart is missing is created (it failed while being created). A success
    clears the error."""
    flow = Direction.parse(direction).value if direction else None
    todo = [e async for e in engine.state.errors.list_errors(mapping, skipped=None if include_skipped else False)
            if (flow is None or e.direction == flow) and e.mapping not in skip_mappings]
    report = RetryReport()
    for e in todo:
        try:
            m = engine.mapping(e.mapping)
            result = await engine.sync_record(m, e.direction, e.source_id, trigger=trigger, create=True, force=force)
        except (UnknownMappingError, ValueError) as exc:  # mapping removed, disabled or one-way since
            report.results.append(RetryResult(e.mapping, e.direction, e.source_id, "not retried", message=str(exc)))
            continue
        report.results.append(RetryResult(e.mapping, e.direction, e.source_id, result.outcome.value,
                                          result.destination_id, result.message))
    return report


@dataclass(frozen=True)
class PurgeReport:
    jobs: int
    errors: int
    cutoff: dt.datetime
    conflicts: int = 0
    activity: int = 0  # per-minute activity rows (the console's last hour)


async def purge_history(state: StateStore, *, retention: dt.timedelta, now: dt.datetime | None = None) -> PurgeReport:
    """Delete jobs started, errors last seen, conflict entries settled and activity minutes more than `retention`
    ago. Couplings and watermarks are state, not history: never purged."""
    if retention <= dt.timedelta(0):
        raise ValueError("retention must be positive")
    moment = now or dt.datetime.now(dt.UTC)
    jobs = await state.jobs.purge_jobs(retention, now=moment)
    errors = await state.errors.purge_errors(retention, now=moment)
    conflicts = await state.conflicts.purge_conflicts(retention, now=moment)
    minutes = await activity.purge(state, older_than=retention, now=moment)
    return PurgeReport(jobs, errors, moment - retention, conflicts, minutes)
