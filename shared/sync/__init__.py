"""The sync engine (ARCHITECTURE.md principles 1–6): level-triggered record sync with idempotent creates,
echo suppression by content, a per-field three-way merge, dependencies first, deletes, and the
modified-records sync. See `SyncEngine`."""

from __future__ import annotations

from shared.sync.context import EngineOptions, RunContext
from shared.sync.engine import SyncEngine
from shared.sync.errors import (
    DeletionConflict,
    DependencyNotCoupled,
    MappingFailed,
    RetryLater,
    SyncFailure,
    UpdateConflict,
)
from shared.sync.modified import ModifiedRun
from shared.sync.outcome import Outcome, SyncResult, Tally
from shared.sync.plan import DeletionAction, Expected, Plan, candidates, decide_deletion, plan_sync, settle

__all__ = [
    "DeletionAction", "DeletionConflict", "DependencyNotCoupled", "EngineOptions", "Expected", "MappingFailed",
    "ModifiedRun", "Outcome", "Plan", "RetryLater", "RunContext", "SyncEngine", "SyncFailure", "SyncResult",
    "Tally", "UpdateConflict", "candidates", "decide_deletion", "plan_sync", "settle",
]
