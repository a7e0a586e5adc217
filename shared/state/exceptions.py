"""Exceptions of the state store; callers catch these, never the storage SDK's."""

from __future__ import annotations

from typing import Any


class StateError(Exception):
    """Base class of every state-store error."""


class InvalidKey(StateError, ValueError):
    """An id cannot be used as a Table storage key (empty or too long)."""


class ValueTooLarge(StateError, ValueError):
    """A value (snapshot, detail) exceeds what one entity may hold."""


class NotFound(StateError, LookupError):
    """`get_x` found nothing."""


class ConcurrentUpdate(StateError):
    """Another worker changed or removed the row since it was read; re-read and decide again."""


class AlreadyCoupled(StateError):
    """A coupling (or a reservation) already exists for this record; `existing` is it, when it could be read."""

    def __init__(self, message: str, existing: Any = None) -> None:
        super().__init__(message)
        self.existing = existing


class WatermarkBackwards(StateError, ValueError):
    """Moving a watermark to an earlier time was refused: it would re-read, or worse hide, changes."""
