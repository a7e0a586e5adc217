"""Connectors: the engine's only way to talk to an ERP or CRM (see `base.Connector`)."""

from __future__ import annotations

from shared.connectors.base import (
    Aborted,
    AlreadyExists,
    ChangeTrackingDisabled,
    ConcurrencyConflict,
    Connector,
    ConnectorError,
    DeltaLinkExpired,
    NotFound,
    PermanentError,
    RateLimited,
    Record,
    TrackedChanges,
    TransientError,
    WriteOp,
    WriteResult,
)

__all__ = [
    "Aborted", "AlreadyExists", "ChangeTrackingDisabled", "ConcurrencyConflict", "Connector", "ConnectorError",
    "DeltaLinkExpired", "NotFound", "PermanentError", "RateLimited", "Record", "TrackedChanges", "TransientError",
    "WriteOp", "WriteResult",
]
