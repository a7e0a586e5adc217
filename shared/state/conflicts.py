"""Settled conflicts: one row per conflict the engine settled (mapping / entry id), so an operator can see what
each side held and which rule decided, and reverse it, instead of finding a log line.

Two kinds of entry:
- `update`: the same field changed on both sides since the last sync. The entry keeps the ERP value, the CRM
  value, the last-synced (base) value, the winning side and the conflict policy. `reverse` (shared/admin)
  gives the field the losing value on both sides and marks the entry reversed; it happens at most once.
- `deletion`: a coupled record was deleted and the deletion rule kept its counterpart (`remove_coupling`):
  the survivor is uncoupled on purpose. Reconcile reads these to tell such a record from a lost create.

Field values are often personal data. They are state here, never logged, kept for the retention period and
purged with jobs and errors. They pass through the redactor first, as error records do; an entry whose values
the redactor changed is marked not `exact` and cannot be reversed (it would write `***` to a record).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.http.redact import Redactor
from shared.mapping.types import Side
from shared.state.exceptions import ConcurrentUpdate, NotFound
from shared.state.keys import aware, decode_key, encode_key, pack_json, purge_before, read_time, unpack_json

UPDATE, DELETION = "update", "deletion"
MAX_TRANSACTION = 100  # Table storage: operations per entity-group transaction


class SettledConflict(Protocol):
    """What the engine's plan says about one conflict (`shared.mapping.Conflict`)."""

    field: str
    base: Any
    erp: Any
    crm: Any
    winner: Side | None


@dataclass
class ConflictEntry:
    mapping: str
    entry_id: str
    kind: str                          # UPDATE or DELETION
    erp_id: str | None
    crm_id: str | None
    policy: str                        # the conflict (or deletion) policy that decided
    at: dt.datetime
    winner: Side | None                # update: the side whose value stayed; deletion: the surviving side
    field: str | None = None           # the field key (update entries only)
    erp_value: Any = None
    crm_value: Any = None
    base_value: Any = None
    job_id: str | None = None
    exact: bool = True                 # False: redaction changed a stored value, so it cannot be written back
    reversed_at: dt.datetime | None = None
    etag: str | None = None            # Table storage's, of the row this was read from

    @property
    def reversed(self) -> bool:
        return self.reversed_at is not None

    def value(self, side: Side) -> Any:
        return self.erp_value if Side(side) is Side.ERP else self.crm_value


def new_entry_id(now: dt.datetime) -> str:
    """Time first, so ids sort by when; a random tail, so two conflicts in one second stay apart."""
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:10]}"


def _to_entity(e: ConflictEntry) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": encode_key(e.mapping), "RowKey": e.entry_id, "mapping": e.mapping, "kind": e.kind,
        "erp_id": e.erp_id, "crm_id": e.crm_id, "policy": e.policy, "at": e.at,
        "winner": e.winner.value if e.winner else None, "field": e.field, "job_id": e.job_id, "exact": e.exact,
        "reversed_at": e.reversed_at}
    entity.update(pack_json("vals", {"erp": e.erp_value, "crm": e.crm_value, "base": e.base_value},
                            f"values of conflict {e.entry_id} in {e.mapping}"))
    return {k: v for k, v in entity.items() if v is not None}


def _from_entity(entity: Any) -> ConflictEntry:
    vals = unpack_json("vals", entity) or {}
    return ConflictEntry(
        mapping=entity.get("mapping") or decode_key(entity["PartitionKey"]), entry_id=entity["RowKey"],
        kind=entity.get("kind", UPDATE), erp_id=entity.get("erp_id"), crm_id=entity.get("crm_id"),
        policy=entity.get("policy", ""), at=read_time(entity["at"]),  # type: ignore[arg-type]
        winner=Side(entity["winner"]) if entity.get("winner") else None, field=entity.get("field"),
        erp_value=vals.get("erp"), crm_value=vals.get("crm"), base_value=vals.get("base"),
        job_id=entity.get("job_id"), exact=bool(entity.get("exact", True)),
        reversed_at=read_time(entity.get("reversed_at")), etag=entity.metadata.get("etag"))


class ConflictStore:
    def __init__(self, table: TableClient, *, redactor: Redactor | None = None) -> None:
        self.table = table
        self.redactor = redactor or Redactor()

    async def record_conflicts(self, mapping: str, *, erp_id: str, crm_id: str,
                               conflicts: Sequence[SettledConflict], policy: str, job_id: str | None = None,
                               now: dt.datetime | None = None) -> list[ConflictEntry]:
        """One entry per settled conflict of one record pair (unresolved ones are error records, not these);
        written together, one transaction per 100."""
        moment = aware(now, "now") or dt.datetime.now(dt.UTC)
        entries = []
        for c in conflicts:
            if c.winner is None:
                continue
            values = [self._stored(v) for v in (c.erp, c.crm, c.base)]
            entries.append(ConflictEntry(
                mapping, new_entry_id(moment), UPDATE, erp_id, crm_id, policy, moment, Side(c.winner),
                field=c.field, erp_value=values[0][0], crm_value=values[1][0], base_value=values[2][0],
                job_id=job_id, exact=all(exact for _, exact in values)))
        for start in range(0, len(entries), MAX_TRANSACTION):
            chunk = entries[start:start + MAX_TRANSACTION]
            await self.table.submit_transaction([("create", _to_entity(e)) for e in chunk])
        return entries

    async def record_deletion(self, mapping: str, *, erp_id: str, crm_id: str, deleted: Side, policy: str,
                              job_id: str | None = None, now: dt.datetime | None = None) -> ConflictEntry:
        """A coupled record on `deleted` was deleted and the rule kept the other one, now uncoupled."""
        moment = aware(now, "now") or dt.datetime.now(dt.UTC)
        entry = ConflictEntry(mapping, new_entry_id(moment), DELETION, erp_id, crm_id, policy, moment,
                              Side(deleted).other, job_id=job_id)
        await self.table.create_entity(_to_entity(entry))
        return entry

    async def list_conflicts(self, mapping: str | None = None, *,
                             kind: str | None = None) -> AsyncIterator[ConflictEntry]:
        """Entries of one mapping (or all), of one kind (or both), in no particular order."""
        clauses, params = [], {}
        if mapping is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = encode_key(mapping)
        if kind is not None:
            clauses.append("kind eq @kind")
            params["kind"] = kind
        pages = (self.table.query_entities(" and ".join(clauses), parameters=params) if clauses
                 else self.table.list_entities())
        async for entity in pages:
            yield _from_entity(entity)

    async def deletion_survivors(self, mapping: str) -> dict[Side, dict[str, ConflictEntry]]:
        """The records a deletion rule left uncoupled in `mapping`, per side, by id (the newest entry each)."""
        found: dict[Side, dict[str, ConflictEntry]] = {Side.ERP: {}, Side.CRM: {}}
        async for e in self.list_conflicts(mapping, kind=DELETION):
            survivor = e.winner
            record_id = e.erp_id if survivor is Side.ERP else e.crm_id
            if survivor is None or record_id is None:
                continue
            known = found[survivor].get(record_id)
            if known is None or e.at > known.at:
                found[survivor][record_id] = e
        return found

    async def get_conflict(self, entry_id: str, *, mapping: str | None = None) -> ConflictEntry:
        """The entry with this id; without `mapping`, looked up across mappings (ids are unique)."""
        if mapping is not None:
            try:
                return _from_entity(await self.table.get_entity(encode_key(mapping), entry_id))
            except ResourceNotFoundError:
                pass
        else:
            async for entity in self.table.query_entities("RowKey eq @id", parameters={"id": entry_id}):
                return _from_entity(entity)
        raise NotFound(f"no conflict entry {entry_id!r}" + (f" in mapping {mapping!r}" if mapping else ""))

    async def mark_reversed(self, entry: ConflictEntry, *, now: dt.datetime | None = None) -> ConflictEntry:
        """Mark `entry` reversed, unless the row changed since it was read (→ `ConcurrentUpdate`: another
        operator got there first)."""
        moment = aware(now, "now") or dt.datetime.now(dt.UTC)
        row = {"PartitionKey": encode_key(entry.mapping), "RowKey": entry.entry_id, "reversed_at": moment}
        try:
            meta = await self.table.update_entity(row, mode=UpdateMode.MERGE, etag=entry.etag,
                                                  match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrentUpdate(f"conflict entry {entry.entry_id!r} changed while it was reversed") from None
        entry.reversed_at, entry.etag = moment, meta.get("etag")
        return entry

    async def purge_conflicts(self, older_than: dt.timedelta, *, now: dt.datetime | None = None) -> int:
        """Delete entries settled before now − `older_than`; returns how many."""
        return await purge_before(self.table, "at", older_than, now)

    def _stored(self, value: Any) -> tuple[Any, bool]:
        """The value as stored (redacted, JSON types only) and whether that is the value itself."""
        kept = json.loads(json.dumps(self.redactor.value(value), default=str))
        return kept, kept == value
