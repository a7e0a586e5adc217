"""What the sync engine needs from a system's API, whatever the system: the connector protocol.

Connectors (Business Central, Dataverse, later Finance and Operations) take an injected `httpx.AsyncClient`
and a token credential, speak their service's protocol exactly (shared/../PROTOCOLS.md), and hand the
engine `Record`s. They raise `ConnectorError` subclasses chosen by the one error classifier in
`shared.http.classify`, after the one retry executor in `shared.http.retry` gave up on transient failures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from shared.mapping.types import Side, System


@dataclass(frozen=True)
class Record:
    """One record as read from a system: its wire values plus the metadata the engine reasons about."""

    entity: str
    id: str
    values: Mapping[str, Any]
    etag: str | None = None
    modified_on: dt.datetime | None = None
    # The user who made the last change, when the service says so (Dataverse `_modifiedby_value`); BC's
    # API does not expose it, so echoes from BC are caught by content comparison alone.
    modified_by: str | None = None


@dataclass(frozen=True)
class WriteOp:
    """One write in a batch. `key` is the record id for update/delete, or alternate-key values for upsert."""

    method: Literal["create", "update", "upsert", "delete"]
    entity: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    key: Mapping[str, Any] | None = None
    etag: str | None = None
    ref: str | None = None  # caller's correlation id, returned on the result
    # For upserts only: "create_only" fails with AlreadyExists when the key is taken, "update_only" with
    # NotFound when it is absent; None creates or updates.
    upsert_mode: Literal["create_only", "update_only"] | None = None


@dataclass(frozen=True)
class WriteResult:
    op: WriteOp
    record: Record | None = None  # the written record (id, etag, modified-on) when the write succeeded
    error: ConnectorError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ConnectorError(Exception):
    """A request the service refused or that failed past the retry budget."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.detail = detail  # redacted response body or exception text, for error records


class NotFound(ConnectorError):
    """The record (or entity set) does not exist."""


class ConcurrencyConflict(ConnectorError):
    """The record changed since the etag we hold (412 / BC `Request_EntityChanged`)."""


class AlreadyExists(ConnectorError):
    """A create-only write met an existing record with the same key."""


class RateLimited(ConnectorError):
    """Still throttled when the retry budget ran out."""


class TransientError(ConnectorError):
    """5xx, timeouts, connection failures that outlasted the retry budget: worth retrying later."""


class PermanentError(ConnectorError):
    """Validation and other 4xx answers: retrying the same request will fail the same way."""


class Aborted(ConnectorError):
    """A batched write that was not applied because of *another* operation: its atomic set was rolled back,
    or the service stopped processing the batch before reaching it. Safe to send again on its own."""


class ChangeTrackingDisabled(PermanentError):
    """The table's change tracking is off (Dataverse: EntityMetadata.ChangeTrackingEnabled): no delta links."""


class DeltaLinkExpired(PermanentError):
    """The service refused a kept delta link (ExpiredVersionStamp 0x80044352 past ExpireChangeTrackingInDays,
    or a token it no longer reads): read the table again for a new one."""


@dataclass
class TrackedChanges:
    """One change-tracking read: the ids it returned (every record when `started`, else those created or
    changed since the link), the `$deletedEntity` ids, and the delta link to keep for the next read."""

    started: bool
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    delta_link: str | None = None


@runtime_checkable
class Connector(Protocol):
    system: System
    side: Side
    modified_field: str  # `lastModifiedDateTime` (BC) / `modifiedon` (Dataverse)
    supports_upsert: bool  # True when `upsert` by alternate key exists (Dataverse); BC has no alternate keys

    async def get(self, entity: str, record_id: str, *, select: Sequence[str] | None = None) -> Record:
        """Read one record now; raises `NotFound`."""
        ...

    def list(self, entity: str, *, filter: str | None = None, select: Sequence[str] | None = None,
             orderby: str | None = None, page_size: int | None = None) -> AsyncIterator[list[Record]]:
        """Yield pages (following nextLinks), so callers keep memory bounded."""
        ...

    def list_changed_since(self, entity: str, since: dt.datetime, *, inclusive: bool = False,
                           filter: str | None = None, select: Sequence[str] | None = None,
                           page_size: int | None = None) -> AsyncIterator[list[Record]]:
        """Pages of records whose `modified_field` is after `since` (at or after when `inclusive`), oldest first."""
        ...

    def list_ids(self, entity: str, *, filter: str | None = None,
                 page_size: int | None = None) -> AsyncIterator[list[str]]:
        """Pages of record ids only (`$select` of the key): which records exist, cheaply."""
        ...

    def key_fields(self, entity: str) -> tuple[str, ...]:
        """The entity's key properties (BC `id`, Dataverse `<logicalname>id`, F&O `dataAreaId` + natural key)."""
        ...

    def key_values(self, entity: str, record_id: str) -> dict[str, Any]:
        """The key properties a record id names (BC: with `companyId` when several companies are synced; F&O:
        `dataAreaId` and the natural key); `ConnectorError` when the id is not one of this connector's."""
        ...

    def modified_field_of(self, entity: str) -> str | None:
        """The field that says when a record of `entity` last changed; None when it has none (F&O entities,
        BC document lines): such records are caught up by content."""
        ...

    def keyset(self, entity: str, after: str | None) -> tuple[str, str | None]:
        """(`$orderby`, `$filter`) reading `entity` in key order after record `after` (None: from the start)."""
        ...

    async def create(self, entity: str, payload: Mapping[str, Any]) -> Record: ...

    async def update(self, entity: str, record_id: str, payload: Mapping[str, Any], *,
                     etag: str | None = None) -> Record:
        """Update with `If-Match: etag` (or `*` when None); `ConcurrencyConflict` when stale."""
        ...

    async def upsert(self, entity: str, key: Mapping[str, Any], payload: Mapping[str, Any], *,
                     create_only: bool = False) -> Record:
        """Write by alternate key where the API has one (Dataverse); `AlreadyExists` with create_only."""
        ...

    async def delete(self, entity: str, record_id: str, *, etag: str | None = None) -> None:
        """Delete; succeeds when the record is already gone."""
        ...

    async def write_batch(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        """Batched writes ($batch), chunked to the configured size; one result per op, in order."""
        ...
