"""Reads every OData connector makes the same way: one record, pages of a collection, changes since a time."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from shared.connectors.base import PermanentError, Record
from shared.connectors.odata import and_filters, format_literal, query_string, with_fields
from shared.connectors.service import ServiceClient
from shared.http.paging import PagingError, page_items


class ODataReads:
    """Mixin for connectors. The connector supplies `svc`, `page_size`, `max_page`, `modified_field`,
    `required_fields` (what a `Record` needs, added to every `$select`; per entity through `required_for`), `url`,
    `record` and `format_datetime` (the service's literal precision)."""

    svc: ServiceClient
    page_size: int
    max_page: int
    modified_field: str
    required_fields: tuple[str, ...]

    def url(self, entity: str, record_id: str | None = None) -> str:
        raise NotImplementedError

    def record(self, entity: str, body: Mapping[str, Any]) -> Record:
        raise NotImplementedError

    def format_datetime(self, value: dt.datetime) -> str:
        raise NotImplementedError

    def required_for(self, entity: str) -> tuple[str, ...]:
        """The fields a `Record` of `entity` needs in every `$select` (F&O: its key properties)."""
        return self.required_fields

    def modified_field_of(self, entity: str) -> str | None:
        """The field that says when a record of `entity` last changed, or None when the entity has none."""
        return self.modified_field or None

    def key_fields(self, entity: str) -> tuple[str, ...]:
        """The entity's key properties (BC `id`, Dataverse `<logicalname>id`, F&O `dataAreaId` + natural key)."""
        raise NotImplementedError

    def key_values(self, entity: str, record_id: str) -> dict[str, Any]:
        """The key property values of the record `record_id` (a GUID for BC and Dataverse)."""
        return {self.key_fields(entity)[0]: uuid.UUID(record_id)}

    def keyset(self, entity: str, after: str | None) -> tuple[str, str | None]:
        """(`$orderby`, `$filter`) to read `entity` in key order, starting after the record `after`: a full
        sync's resumable position. A composite key compares lexicographically:
        `(a gt x) or (a eq x and b gt y)`."""
        fields = self.key_fields(entity)
        orderby = ",".join(f"{f} asc" for f in fields)
        if after is None:
            return orderby, None
        values = self.key_values(entity, after)
        clauses = [" and ".join([*(f"{g} eq {format_literal(values[g])}" for g in fields[:i]),
                                 f"{f} gt {format_literal(values[f])}"]) for i, f in enumerate(fields)]
        return orderby, clauses[0] if len(clauses) == 1 else " or ".join(f"({c})" for c in clauses)

    def collection_url(self, entity: str, query: str) -> str:
        """The URL of a collection read; `query` is `query_string(...)` ("" or "?…")."""
        return self.url(entity) + query

    async def get(self, entity: str, record_id: str, *, select: Sequence[str] | None = None) -> Record:
        url = self.url(entity, record_id) + query_string(select=with_fields(select, self.required_for(entity)))
        return self.record(entity, await self.svc.json("GET", url, context=f"read {entity}({record_id})"))

    async def list(self, entity: str, *, filter: str | None = None, select: Sequence[str] | None = None,
                   orderby: str | None = None, page_size: int | None = None) -> AsyncIterator[list[Record]]:
        url = self.collection_url(entity, query_string(select=with_fields(select, self.required_for(entity)),
                                                       filter=filter, orderby=orderby))
        headers = {"Prefer": f"odata.maxpagesize={min(page_size or self.page_size, self.max_page)}"}
        async for body in self.svc.pages(url, headers=headers):
            yield [self.record(entity, item) for item in self.items(entity, body)]

    async def list_ids(self, entity: str, *, filter: str | None = None,
                       page_size: int | None = None) -> AsyncIterator[list[str]]:
        """Pages of the ids of `entity`'s records (of every synced company), `$select` of the key properties and
        what a `Record` needs: the cheap read that tells which records still exist."""
        async for page in self.list(entity, filter=filter, select=list(self.key_fields(entity)), page_size=page_size):
            yield [r.id for r in page]

    @staticmethod
    def items(entity: str, body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The records of one page, or a clear error when the page is not an OData collection."""
        try:
            return page_items(body)
        except PagingError as exc:
            raise PermanentError(f"list {entity}: {exc}", code="UnexpectedResponse") from None

    def list_changed_since(self, entity: str, since: dt.datetime, *, inclusive: bool = False,
                           filter: str | None = None, select: Sequence[str] | None = None,
                           page_size: int | None = None) -> AsyncIterator[list[Record]]:
        """Records whose modified-on is after `since` (`inclusive`: at or after), oldest first. The literal has
        the service's precision (Dataverse: whole seconds), so callers keep an overlap and dedupe by id."""
        changed = f"{self.modified_field} {'ge' if inclusive else 'gt'} {self.format_datetime(since)}"
        return self.list(entity, filter=and_filters(filter, changed), select=select,
                         orderby=f"{self.modified_field} asc", page_size=page_size)
