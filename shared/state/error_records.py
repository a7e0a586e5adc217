"""Error records: one row per record and direction that failed to sync (mapping / `<direction>:<source id>`).

The rule operators know from Business Central: the same error twice in a row → the record is *skipped*
(no more automatic retries) until an operator restores it. A successful sync deletes the record's error.
A *transient* failure (throttling, 5xx past the retry budget, a dead-lettered message) is recorded too, so no
failure is ever silent and `retry` finds it, but it never counts towards skipping: a throttling storm must not
park records.
Messages and details pass through the redactor before they are stored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.http.redact import Redactor
from shared.state.exceptions import ConcurrentUpdate, NotFound
from shared.state.keys import MAX_TEXT_CHARS, aware, decode_key, encode_key, purge_before, read_time

MAX_MESSAGE_CHARS = 4000


@dataclass
class ErrorRecord:
    mapping: str
    direction: str
    source_id: str
    message: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    attempts: int = 1
    repeats: int = 1                  # consecutive failures with this same message
    skipped: bool = False
    destination_id: str | None = None
    detail: str | None = None
    job_id: str | None = None
    transient: bool = False           # the last failure was transient: retried automatically, never skipped

    @property
    def error_id(self) -> str:
        return error_id(self.direction, self.source_id)


def error_id(direction: str, source_id: str) -> str:
    """The error's id (its row key): one error row per record and direction."""
    return f"{direction}:{encode_key(source_id)}"


def _from_entity(e: Any) -> ErrorRecord:
    direction, _, source = e["RowKey"].partition(":")
    return ErrorRecord(mapping=e.get("mapping") or decode_key(e["PartitionKey"]), direction=direction,
                       source_id=decode_key(source), message=e.get("message", ""),
                       first_seen=read_time(e["first_seen"]), last_seen=read_time(e["last_seen"]),  # type: ignore[arg-type]
                       attempts=int(e.get("attempts", 1)), repeats=int(e.get("repeats", 1)),
                       skipped=bool(e.get("skipped", False)), destination_id=e.get("destination_id"),
                       detail=e.get("detail"), job_id=e.get("job_id"),
                       transient=bool(e.get("transient", False)))


def _to_entity(r: ErrorRecord) -> dict[str, Any]:
    entity = {"PartitionKey": encode_key(r.mapping), "RowKey": r.error_id, "mapping": r.mapping,
              "message": r.message, "first_seen": r.first_seen, "last_seen": r.last_seen, "attempts": r.attempts,
              "repeats": r.repeats, "skipped": r.skipped, "destination_id": r.destination_id, "detail": r.detail,
              "job_id": r.job_id, "transient": r.transient}
    return {k: v for k, v in entity.items() if v is not None}


class ErrorStore:
    def __init__(self, table: TableClient, *, redactor: Redactor | None = None) -> None:
        self.table = table
        self.redactor = redactor or Redactor()

    async def record_failure(self, mapping: str, *, direction: str, source_id: str, message: str,
                             detail: Any = None, destination_id: str | None = None, job_id: str | None = None,
                             now: dt.datetime | None = None, transient: bool = False) -> ErrorRecord:
        """Record one failed attempt. The same permanent message as the previous failure marks the record
        skipped; a `transient` failure is recorded without counting towards that."""
        now = aware(now, "now") or dt.datetime.now(dt.UTC)
        message = self._clean(message, MAX_MESSAGE_CHARS)
        detail_text = None if detail is None else self._clean(
            detail if isinstance(detail, str) else json.dumps(self.redactor.value(detail), default=str), MAX_TEXT_CHARS)
        pk, rk = encode_key(mapping), error_id(str(direction), source_id)
        for _ in range(20):
            try:
                entity = await self.table.get_entity(pk, rk)
            except ResourceNotFoundError:
                record = ErrorRecord(mapping, str(direction), source_id, message, now, now,
                                     repeats=0 if transient else 1, destination_id=destination_id,
                                     detail=detail_text, job_id=job_id, transient=transient)
                try:
                    await self.table.create_entity(_to_entity(record))
                    return record
                except ResourceExistsError:
                    continue
            record = _from_entity(entity)
            if transient:
                record.repeats = 0
            else:
                record.repeats = record.repeats + 1 if record.message == message and not record.transient else 1
                record.skipped = record.skipped or record.repeats >= 2
            record.transient = transient
            record.attempts += 1
            record.message, record.detail, record.last_seen = message, detail_text, now
            record.destination_id = destination_id or record.destination_id
            record.job_id = job_id or record.job_id
            try:
                await self.table.update_entity(_to_entity(record), mode=UpdateMode.REPLACE,
                                               etag=entity.metadata["etag"],
                                               match_condition=MatchConditions.IfNotModified)
                return record
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        raise ConcurrentUpdate(f"error record of {source_id!r} in {mapping!r} kept changing")

    async def find_error(self, mapping: str, direction: str, source_id: str) -> ErrorRecord | None:
        try:
            return _from_entity(await self.table.get_entity(encode_key(mapping), error_id(str(direction), source_id)))
        except ResourceNotFoundError:
            return None

    async def find_errors(self, mapping: str, direction: str, source_ids: Sequence[str]) -> dict[str, ErrorRecord]:
        """The errors of many records of one direction, by source id (absent: none recorded): what a bulk
        sync's page needs instead of one point read per record. One range query from the lowest to the highest
        of their row keys (continued past 1 000 rows): error rows are few, so reading the others that fall in
        between costs less than the 14-key `or` queries Table storage allows."""
        wanted = {error_id(str(direction), rid): rid for rid in source_ids}
        if not wanted:
            return {}
        params = {"pk": encode_key(mapping), "lo": min(wanted), "hi": max(wanted)}
        found: dict[str, ErrorRecord] = {}
        async for entity in self.table.query_entities("PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi",
                                                      parameters=params):
            if (rid := wanted.get(entity["RowKey"])) is not None:
                found[rid] = _from_entity(entity)
        return found

    async def get_error(self, mapping: str, direction: str, source_id: str) -> ErrorRecord:
        found = await self.find_error(mapping, direction, source_id)
        if found is None:
            raise NotFound(f"no error recorded for {source_id!r} ({direction}) in mapping {mapping!r}")
        return found

    async def delete_error(self, mapping: str, direction: str, source_id: str) -> None:
        """Forget the error (the record synced). Succeeds when there is none."""
        await self.table.delete_entity(encode_key(mapping), error_id(str(direction), source_id))

    async def restore_error(self, mapping: str, direction: str, source_id: str) -> ErrorRecord:
        """Clear `skipped` so the record is retried; two more identical failures skip it again."""
        return await self._set_skipped(mapping, direction, source_id, False)

    async def skip_error(self, mapping: str, direction: str, source_id: str) -> ErrorRecord:
        """Mark the record skipped by hand: no automatic retries until restored."""
        return await self._set_skipped(mapping, direction, source_id, True)

    async def list_errors(self, mapping: str | None = None, *,
                          skipped: bool | None = None) -> AsyncIterator[ErrorRecord]:
        """Errors of one mapping (or all); `skipped=False` gives the ones due for an automatic retry."""
        clauses, params = [], {}
        if mapping is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = encode_key(mapping)
        if skipped is not None:
            clauses.append("skipped eq @skipped")
            params["skipped"] = skipped
        pages = (self.table.query_entities(" and ".join(clauses), parameters=params) if clauses
                 else self.table.list_entities())
        async for entity in pages:
            yield _from_entity(entity)

    async def purge_errors(self, older_than: dt.timedelta, *, now: dt.datetime | None = None) -> int:
        """Delete errors last seen before now − `older_than`; returns how many."""
        return await purge_before(self.table, "last_seen", older_than, now)

    async def _set_skipped(self, mapping: str, direction: str, source_id: str, skipped: bool) -> ErrorRecord:
        record = await self.get_error(mapping, direction, source_id)
        record.skipped = skipped
        record.repeats = record.repeats if skipped else 0
        entity = {"PartitionKey": encode_key(mapping), "RowKey": record.error_id, "skipped": skipped,
                  "repeats": record.repeats}
        try:
            await self.table.update_entity(entity, mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            raise NotFound(f"no error recorded for {source_id!r} ({direction}) in mapping {mapping!r}") from None
        return record

    def _clean(self, text: str, limit: int) -> str:
        text = self.redactor.text(str(text))
        return text if len(text) <= limit else text[: limit - 1] + "…"
