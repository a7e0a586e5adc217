"""Why a record could not be synchronised. Raised inside the engine, turned into a `SyncResult` (and an error
record for permanent failures) at its edge; callers of `SyncEngine` never see them."""

from __future__ import annotations


class SyncFailure(Exception):
    """A permanent, per-record failure: recorded as an error (skipped after the same error twice)."""

    retryable = False

    def __init__(self, message: str, *, detail: str | None = None, destination_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.destination_id = destination_id


class RetryLater(SyncFailure):
    """Transient: retry later (the source or a reservation is busy, or a service stayed unavailable)."""

    retryable = True


class DependencyNotCoupled(SyncFailure):
    """A lookup refers to a record of another mapping that is not coupled and could not be synced first."""


class UpdateConflict(SyncFailure):
    """Both sides changed the same field and the mapping's conflict policy is `error`."""


class DeletionConflict(SyncFailure):
    """A coupled record was deleted and the deletion policy (or the direction) does not allow a resolution."""


class MappingFailed(SyncFailure):
    """Fields that had to be written could not be mapped (transform, value map, not-null)."""
