"""Options of the engine and the per-run context threaded through one record's synchronisation."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.mapping import ConflictPolicy, Side


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class EngineOptions:
    """Tuning of `SyncEngine`; the defaults suit production.

    - `integration_users`: per side, the user ids our writes appear as; a source record last changed by one
      of them is an echo and is dropped before any state is read (when the API says who changed it).
    - `max_dependency_depth`: how deep an uncoupled lookup target is synced first (0: never, fail instead).
    - `overlap`: the modified-records sync re-reads this much before its watermark (clock skew, late commits).
    - `reservation_wait`: seconds to wait for another worker's pending create before giving up (retry later).
    - `stale_reservation`: a pending reservation older than this was left by a crashed worker: take it over.
    - `max_attempts`: re-read-and-decide rounds when a record or coupling changed under us.
    - `concurrency`: records in flight at once in `sync_modified`.
    - `live_job_flush`: seconds the live path's job counts are kept in memory before they are written
      (`shared.sync.live_jobs`; 0: at once).
    """

    integration_users: Mapping[Side, frozenset[str]] = field(default_factory=dict)
    max_dependency_depth: int = 3
    overlap: dt.timedelta = dt.timedelta(minutes=2)
    reservation_wait: float = 10.0
    stale_reservation: dt.timedelta = dt.timedelta(minutes=5)
    max_attempts: int = 4
    concurrency: int = 8
    live_job_flush: float = 0.0  # production: the setting DUALSYNC_QUEUE__JOB_FLUSH_S (5 s)
    clock: Callable[[], dt.datetime] = utc_now

    def is_integration_user(self, side: Side, user: str | None) -> bool:
        if not user:
            return False
        users = self.integration_users.get(side, frozenset())
        return user.lower() in {u.lower() for u in users}


@dataclass
class RunContext:
    """One run's shared state: the job counted into, overrides an operator chose, and per-run caches.

    `create`: None follows each mapping's `only_coupled`; True creates counterparts of uncoupled records
    (the operator's "synchronise now", and dependencies); False never creates. `force` ignores the
    integration-user shortcut, the etag shortcut and a skipped error (an operator's explicit retry)."""

    job_id: str | None = None
    conflict: ConflictPolicy | None = None
    create: bool | None = None
    force: bool = False
    depth: int = 0
    # Records being synced up the dependency chain (mapping, side, id): a cycle stops instead of recursing.
    active: frozenset[tuple[str, Side, str]] = frozenset()
    lookup_cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    dependencies: list[Any] = field(default_factory=list)  # SyncResults of dependencies synced for this record
    # A dry run reads and plans but writes nothing: an uncoupled dependency is not synced first, its lookup
    # resolves to a placeholder so the plan can still say "create".
    dry_run: bool = False
    # Look at both sides whatever the shortcuts say ("last changed by our integration user", "the source is as we
    # last synced it"): after a concurrent change (the pair's two directions may have crossed), and in the
    # modified-records sync, the catch-up that must find and repair a pair left divergent.
    recheck: bool = False
    # Field values (per side, by field key) this record's sync wrote before losing the race to store the
    # coupling: on the retry they count as synced, not as changes (shared.sync.record.with_own_writes).
    written: dict[Side, dict[str, Any]] = field(default_factory=dict)
    # The version of the source record a notice named (BC's `lastModifiedDateTime`, Dataverse's `modifiedon`):
    # when the coupling says that very version was synced, the notice is our own write coming back (BC's
    # notices do not say who changed a record) or a duplicate, and costs no read (`record.notice_synced`).
    marker: str | None = None

    def for_record(self) -> RunContext:
        """A copy for one record (its own dependency list; caches shared with the run)."""
        return dataclasses.replace(self, dependencies=[])

    def for_dependency(self, key: tuple[str, Side, str]) -> RunContext:
        """The context a dependency is synced in: one level deeper, created if missing, caches shared."""
        return RunContext(job_id=self.job_id, conflict=None, create=True, force=False, depth=self.depth + 1,
                          active=self.active | {key}, lookup_cache=self.lookup_cache, dry_run=self.dry_run)
