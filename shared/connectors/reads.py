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

# How long a `get_many` read's URL may grow. Dataverse takes 32 KB; front ends of other services (IIS defaults,
# proxies) refuse much less, and 8 000 characters still carry over a hundred GUID keys per request.
MAX_URL_CHARS = 8000


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

    async def get_many(self, entity: str, record_ids: Sequence[str], *,
                       select: Sequence[str] | None = None) -> dict[str, Record]:
        """The records `record_ids` name that exist now, by the id asked for (a missing id was deleted): one
        `$filter` of key comparisons joined by `or` per chunk, chunks cut so each URL stays within
        `MAX_URL_CHARS`. What a page of a bulk sync reads instead of one GET per record."""
        wanted = list(dict.fromkeys(record_ids))
        found: dict[str, Record] = {}
        for chunk in self._key_chunks(entity, wanted, select):
            asked = {rid.casefold(): rid for rid in chunk}
            text = " or ".join(f"({self._key_clause(entity, rid)})" for rid in chunk)
            async for page in self.list(entity, filter=text, select=select, page_size=len(chunk)):
                for r in page:
                    # Ids come back as the service spells them (GUIDs in lower case): matched to the ask.
                    if (rid := asked.get(r.id.casefold())) is not None:
                        found[rid] = r
        return found

    def _key_clause(self, entity: str, record_id: str) -> str:
        """`id eq <guid>`, or `dataAreaId eq 'usmf' and CustomerAccount eq 'C-1'` for a composite key."""
        return " and ".join(f"{name} eq {format_literal(value)}"
                            for name, value in self.key_values(entity, record_id).items())

    def _key_chunks(self, entity: str, record_ids: Sequence[str],
                    select: Sequence[str] | None) -> list[list[str]]:
        """`record_ids` cut into runs whose `or`-joined key filter keeps the read's URL within `MAX_URL_CHARS`."""
        base = len(self.collection_url(entity, query_string(select=with_fields(select, self.required_for(entity)),
                                                            filter="x"))) - 1
        joint = _encoded_len(" or ")
        chunks: list[list[str]] = []
        chunk: list[str] = []
        size = base
        for rid in record_ids:
            cost = _encoded_len(f"({self._key_clause(entity, rid)})")
            if chunk and size + joint + cost > MAX_URL_CHARS:
                chunks.append(chunk)
                chunk, size = [], base
            size += cost + (joint if chunk else 0)
            chunk.append(rid)
        if chunk:
            chunks.append(chunk)
        return chunks

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


def _encoded_len(text: str) -> int:
    """The length of `text` as a `$filter` value once percent-encoded (as `query_string` sends it)."""
    return len(query_string(filter=text)) - len("?$filter=")
