"""A change notice: what a webhook told us, after authentication and parsing, before it becomes queue messages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.mapping import System


class NoticeError(ValueError):
    """The request is malformed (answer `status`, 400). The message names what is wrong, never a secret."""

    status = 400


class TooLarge(NoticeError):
    """The body, or its number of notices, is over the configured limit (answer 413)."""

    status = 413


class UnsupportedMediaType(NoticeError):
    """The request says its body is something other than UTF-8 JSON (answer 415)."""

    status = 415


class Unauthenticated(Exception):
    """The request does not carry the shared secret (answer 401). Deliberately says no more than that."""


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    COLLECTION = "collection"  # BC: many records changed; page `collection_filter` to find them


@dataclass(frozen=True)
class ChangeNotice:
    """One notice: `system` and `entity` (the entity set, as in the mapping pack), the record, the change,
    who made it when the system says (`actor`: Dataverse's UserId; BC never says), and `marker`, the
    source's version of the change (for duplicate detection). A `collection` notice has no record id but a
    `collection_filter` to page through."""

    system: System
    entity: str
    change: Change
    record_id: str | None
    seen_at: dt.datetime
    actor: str | None = None
    initiating_actor: str | None = None
    marker: str | None = None
    collection_filter: str | None = None
    size_exceeded: bool = False  # Dataverse left out the record's attributes: read the record (we always do)
    # The record as the notice carried it (F&O data events send every field), for cheap early checks only:
    # the processor always reads the record itself.
    values: Mapping[str, Any] | None = None

    @property
    def actors(self) -> tuple[str, ...]:
        return tuple(a for a in (self.actor, self.initiating_actor) if a)
