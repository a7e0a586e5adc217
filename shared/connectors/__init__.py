"""Connectors: the engine's only way to talk to an ERP or CRM (see `base.Connector`)."""

from __future__ import annotations

from shared.connectors.base import (
    Aborted,
    AlreadyExists,
    ConcurrencyConflict,
    Connector,
    ConnectorError,
    NotFound,
    PermanentError,
    RateLimited,
    Record,
    TransientError,
    WriteOp,
    WriteResult,
)

__all__ = [
    "Aborted", "AlreadyExists", "ConcurrencyConflict", "Connector", "ConnectorError", "NotFound", "PermanentError",
    "RateLimited", "Record", "TransientError", "WriteOp", "WriteResult",
]
