"""What one record's synchronisation came to, and the per-run tally that feeds a job's counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from shared.mapping import Conflict, Direction


class Outcome(StrEnum):
    """One record's result. All but IGNORED are job counters (shared.state.jobs.COUNTERS)."""

    INSERTED = "inserted"      # the counterpart was created
    MODIFIED = "modified"      # at least one side was written
    DELETED = "deleted"        # a deletion was propagated
    UNCHANGED = "unchanged"    # nothing to write: echo, duplicate notice, or already in step
    SKIPPED = "skipped"        # the record is skipped after repeated identical failures
    FAILED = "failed"
    COUPLED = "coupled"        # coupled to an existing counterpart instead of creating one
    UNCOUPLED = "uncoupled"    # the coupling was removed (deletion policy)
    IGNORED = "ignored"        # outside the mapping's filter, or uncoupled under "only coupled records"


@dataclass
class SyncResult:
    """What `sync_record` did. `writes` counts record writes sent to either system (0 for an echo);
    `retryable` marks transient failures (rate limits, 5xx past the retry budget, a busy reservation):
    the caller should redeliver the notice rather than record an error."""

    mapping: str
    direction: Direction
    source_id: str
    outcome: Outcome
    destination_id: str | None = None
    writes: int = 0
    message: str | None = None
    detail: str | None = None
    retryable: bool = False
    conflicts: list[Conflict] = field(default_factory=list)
    dependencies: list[SyncResult] = field(default_factory=list)  # dependency records synced first

    @property
    def ok(self) -> bool:
        return self.outcome not in (Outcome.FAILED, Outcome.SKIPPED)

    @property
    def synced(self) -> bool:
        """The pair is in step (or the deletion handled): a recorded error of this record can go."""
        return self.outcome not in (Outcome.FAILED, Outcome.SKIPPED, Outcome.IGNORED)


@dataclass
class Tally:
    """Counts of outcomes in one run (one job), added to the job row in one increment."""

    counts: Counter[str] = field(default_factory=Counter)
    writes: int = 0

    def add(self, result: SyncResult) -> None:
        if result.outcome is not Outcome.IGNORED:
            self.counts[result.outcome.value] += 1
        self.writes += result.writes
        for dep in result.dependencies:
            self.writes += dep.writes

    def job_counts(self) -> dict[str, int]:
        return {k: v for k, v in self.counts.items() if v}
