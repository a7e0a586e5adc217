"""A small in-memory Finance and Operations side for engine tests of company striping: records keyed as the F&O
connector keys them (the full OData key, `dataAreaId='usmf',CustomerAccount='US-001'`), `$filter` evaluated
as the service does (text case-insensitive), etags that change on every write. Not the F&O emulator (built
elsewhere): only what the engine's connector protocol needs."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from shared.connectors import AlreadyExists, ConcurrencyConflict, ConnectorError, NotFound, Record
from shared.connectors.base import WriteOp, WriteResult
from shared.mapping import Side, System
from shared.odata import evaluate_filter


class MemoryFinanceOperations:
    system = System.FINANCE_OPERATIONS
    side = Side.ERP
    modified_field = "ModifiedDateTime"
    supports_upsert = False

    def __init__(self, keys: Mapping[str, Sequence[str]]) -> None:
        self.keys = {entity: list(k) for entity, k in keys.items()}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {entity: {} for entity in keys}
        self.etags: dict[tuple[str, str], str] = {}
        self.filters: list[tuple[str, str | None]] = []  # (entity, $filter) of every listing, for assertions
        self._versions = itertools.count(1)

    def record_id(self, entity: str, values: Mapping[str, Any]) -> str:
        return ",".join(f"{k}='{values[k]}'" for k in self.keys[entity])

    def _record(self, entity: str, rid: str) -> Record:
        return Record(entity, rid, dict(self.rows[entity][rid]), etag=self.etags[entity, rid],
                      modified_on=dt.datetime.now(dt.UTC), modified_by="fo-user")

    def insert(self, entity: str, values: Mapping[str, Any]) -> Record:
        """A record entered by a person in F&O."""
        rid = self.record_id(entity, values)
        if rid in self.rows[entity]:
            raise AlreadyExists(f"{entity} {rid} exists", status=409)
        self.rows[entity][rid] = dict(values)
        self.etags[entity, rid] = f'W/"{next(self._versions)}"'
        return self._record(entity, rid)

    async def get(self, entity: str, record_id: str, *, select: Sequence[str] | None = None) -> Record:
        if record_id not in self.rows[entity]:
            raise NotFound(f"{entity}({record_id}) not found", status=404)
        return self._record(entity, record_id)

    async def list(self, entity: str, *, filter: str | None = None, select: Sequence[str] | None = None,
                   orderby: str | None = None, page_size: int | None = None) -> AsyncIterator[list[Record]]:
        self.filters.append((entity, filter))
        ids = sorted(rid for rid, row in self.rows[entity].items()
                     if filter is None or evaluate_filter(filter, row, case_insensitive=True))
        size = page_size or 100
        for i in range(0, len(ids), size):
            yield [self._record(entity, rid) for rid in ids[i:i + size]]

    def list_changed_since(self, entity: str, since: dt.datetime, **kwargs: Any) -> AsyncIterator[list[Record]]:
        return self.list(entity, filter=kwargs.get("filter"))

    def modified_field_of(self, entity: str) -> str | None:
        return self.modified_field

    def keyset(self, entity: str, after: str | None) -> tuple[str, str | None]:
        """Key order from the start (these tests never resume a full sync from a checkpoint)."""
        return ",".join(f"{k} asc" for k in self.keys[entity]), None

    async def create(self, entity: str, payload: Mapping[str, Any]) -> Record:
        return self.insert(entity, payload)

    async def update(self, entity: str, record_id: str, payload: Mapping[str, Any], *,
                     etag: str | None = None) -> Record:
        current = await self.get(entity, record_id)
        if etag not in (None, "*") and etag != current.etag:
            raise ConcurrencyConflict("etag mismatch", status=412)
        self.rows[entity][record_id].update(payload)
        self.etags[entity, record_id] = f'W/"{next(self._versions)}"'
        return self._record(entity, record_id)

    async def upsert(self, entity: str, key: Mapping[str, Any], payload: Mapping[str, Any], *,
                     create_only: bool = False) -> Record:
        raise NotImplementedError("F&O has no alternate-key upsert")

    async def delete(self, entity: str, record_id: str, *, etag: str | None = None) -> None:
        self.rows[entity].pop(record_id, None)

    async def write_batch(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        out = []
        for op in ops:
            try:
                if op.method == "create":
                    out.append(WriteResult(op, await self.create(op.entity, op.payload)))
                elif op.method == "update":
                    out.append(WriteResult(op, await self.update(op.entity, op.id or "", op.payload, etag=op.etag)))
                else:
                    await self.delete(op.entity, op.id or "")
                    out.append(WriteResult(op))
            except ConnectorError as exc:
                out.append(WriteResult(op, error=exc))
        return out
