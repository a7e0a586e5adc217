"""Dataverse bulk operation messages behind `DataverseConnector.write_batch` (Microsoft Learn, "Use bulk operation
messages", "Optimize performance for bulk operations"): creates go as `CreateMultiple`, updates without an etag
guard as `UpdateMultiple`, upserts by alternate key as `UpsertMultiple`; everything else, and every atomic set,
goes through multipart `$batch` as before. The caller sees the same contract: one `WriteResult` per op, in order.

Why each rule:

- Standard tables run a bulk request all-or-nothing and answer with the failing target's error, naming no index.
  The engine needs one answer per op, so a chunk the service refuses (4xx) is sent again through `$batch` with
  continue-on-error — the documented fallback ("On Error behavior with standard tables"). Nothing of the refused
  request was written, so nothing is duplicated, and each op gets its own answer and message. Throttling and
  5xx are retried by the one retry executor like any request; past its budget every op of the chunk gets that
  error, as when a whole `$batch` request fails (sending it again could duplicate what the service may have
  committed).
- The actions return no records (CreateMultiple answers only `Ids`), while a `$batch` write answers the record
  (`Prefer: return=representation`) whose values and etag the engine snapshots (`sync.record.settled`, the
  full-sync couplings). The written records are read back, every column as the representation has them, one GET
  per `READ_SLICE` records. A failed read-back leaves the id only; the engine then reads each record itself.
- UpdateMultiple takes no per-target If-Match in the Web API (the SDK's `ConcurrencyBehavior` is no documented
  Web API parameter, and the emulator ignores `@odata.etag` in targets), so an update guarded by an etag stays
  on `$batch`, where a concurrent change still answers 412. An unguarded update is what `If-Match: *` asks: it
  never re-creates a deleted record (UpdateMultiple answers "does not exist" for it).
- A create-only upsert (`If-None-Match: *`, the full sync's idempotent create) has no bulk form: UpsertMultiple
  would overwrite. It goes as a CreateMultiple target carrying its key values; a taken key fails the request and
  the `$batch` fallback answers `AlreadyExists` for that op exactly as today. Update-only upserts and deletes stay
  on `$batch`.
- Not every standard table has the messages ("Availability with standard tables"). The answer for one that has
  not is undocumented, so it is recognised by what happens: the bulk request is refused but every op of the chunk
  then succeeds through `$batch` (or the refusal says the message does not support the table, wording
  unconfirmed). The connector remembers it and uses `$batch` for that table and message from then on.
- Targets need `"@odata.type": "Microsoft.Dynamics.CRM.<logical name>"`. The connector knows entity sets, not
  logical names: they come from `logical_names=` (the packs' `logical_name`) or one `EntityDefinitions` read per
  table, cached; a table whose name cannot be had uses `$batch`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from shared.connectors.base import (
    ConnectorError,
    PermanentError,
    RateLimited,
    Record,
    TransientError,
    WriteOp,
    WriteResult,
)
from shared.connectors.odata import check_guid, check_identifier, format_literal, key_segment, query_string

if TYPE_CHECKING:
    from shared.connectors.dataverse import DataverseConnector

log = logging.getLogger(__name__)

NAMESPACE = "Microsoft.Dynamics.CRM."
CREATE, UPDATE, UPSERT = "CreateMultiple", "UpdateMultiple", "UpsertMultiple"
# Microsoft Learn: no set limit; "1,000 records per request is a reasonable place to start if the size of the
# record data is small and there are no plug-ins" — synced tables usually have plug-ins (dual-write, ours), and a
# refused chunk is sent again whole through `$batch`, so we start at half that. DUALSYNC_CRM__BULK_SIZE.
DEFAULT_BULK_SIZE = 500
# A bulk request plus its read-back are two round trips; for a few records one `$batch` answers as cheaply and
# with every record at once.
MIN_BULK = 10
# Records read back per GET: `pk eq <guid> or …` stays near 6 KB of URL (the Web API's URL limit is not
# documented; 100 is a conservative choice).
READ_SLICE = 100
HEADERS = {"Content-Type": "application/json"}
# How the refusal for a table without the message reads (the platform's wording for other messages; unconfirmed
# for the bulk ones).
UNSUPPORTED_TEXTS = ("does not support entities of type", "MessageProcessor.Empty")
DOP_HINT = "x-ms-dop-hint"


@dataclass(frozen=True)
class Target:
    index: int  # the op's position in the caller's list
    op: WriteOp
    body: dict[str, Any]  # the target without its @odata.type


@dataclass(frozen=True)
class Chunk:
    entity: str
    action: str
    logical: str
    targets: Sequence[Target]


Answers = list[tuple[int, WriteResult]]


class BulkWrites:
    """The bulk-message path of one connector: its plan, its caches (logical names, tables without the
    messages) and its results. `size` 0 sends everything through `$batch`."""

    def __init__(self, host: DataverseConnector, *, size: int = DEFAULT_BULK_SIZE,
                 logical_names: Mapping[str, str] | None = None) -> None:
        if size < 0:
            raise ValueError(f"Dataverse bulk_size must be 0 (off) or more, got {size}")
        self.host = host
        self.size = size
        self.logical_names: dict[str, str | None] = dict(logical_names or {})
        self.unsupported: set[tuple[str, str]] = set()  # (entity set, message) the service refused
        self._lookup = asyncio.Lock()

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """One result per op, in order: bulk chunks and the rest (one `$batch` write) run concurrently; the
        connector's limiter bounds how many requests are in flight."""
        chunks, rest = await self._plan(ops)
        jobs = [self._send(chunk) for chunk in chunks]
        if rest:
            jobs.append(self._multipart(rest))
        results: list[WriteResult | None] = [None] * len(ops)
        for answers in await asyncio.gather(*jobs):
            for index, result in answers:
                results[index] = result
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    # ----- plan
    async def _plan(self, ops: Sequence[WriteOp]) -> tuple[list[Chunk], list[Target]]:
        everything = [Target(i, op, {}) for i, op in enumerate(ops)]
        if self.size < 1 or _names_a_record_twice(ops):
            # Two ops on one record must run in order, which only one `$batch` guarantees.
            return [], everything
        groups: dict[tuple[str, str], list[Target]] = {}
        rest: list[Target] = []
        for i, op in enumerate(ops):
            planned = self._target(op)
            if planned is None or (op.entity, planned[0]) in self.unsupported:
                rest.append(Target(i, op, {}))
            else:
                groups.setdefault((op.entity, planned[0]), []).append(Target(i, op, planned[1]))
        chunks: list[Chunk] = []
        for (entity, action), targets in groups.items():
            logical = await self.logical_name(entity) if len(targets) >= MIN_BULK else None
            if logical is None:
                rest += targets
                continue
            chunks += [Chunk(entity, action, logical, targets[i:i + self.size])
                       for i in range(0, len(targets), self.size)]
        return chunks, sorted(rest, key=lambda t: t.index)

    def _target(self, op: WriteOp) -> tuple[str, dict[str, Any]] | None:
        """(message, target body) for an op a bulk message carries with the meaning `$batch` gives it; None
        keeps the op on `$batch` (which also answers malformed ops with their own error)."""
        try:
            check_identifier(op.entity)
            if op.method == "create":
                return CREATE, dict(op.payload)
            if op.method == "update" and op.id and not op.etag:
                return UPDATE, {**op.payload, self.host.primary_key(op.entity): check_guid(op.id)}
            if op.method == "upsert" and op.key:
                if op.upsert_mode == "create_only":
                    body = keyed_create(op)
                    return None if body is None else (CREATE, body)
                if op.upsert_mode is None:
                    # A relative URL with the key, as in the UpsertMultiple reference.
                    return UPSERT, {**op.payload, "@odata.id": op.entity + key_segment(op.key)}
        except PermanentError:
            pass
        return None

    async def logical_name(self, entity: str) -> str | None:
        """The table's logical name: given, cached, or read once from its definition. None: use `$batch`."""
        if entity in self.logical_names:
            return self.logical_names[entity]
        async with self._lookup:  # one definition read per table, however many chunks ask at once
            if entity not in self.logical_names:
                try:
                    self.logical_names[entity] = await self._read_logical_name(entity)
                except (RateLimited, TransientError) as exc:
                    log.info("%s; writing %s through $batch this time", exc.message, entity)
                    return None  # not cached: the next write asks again
        return self.logical_names[entity]

    async def _read_logical_name(self, entity: str) -> str | None:
        url = self.host.root + "EntityDefinitions" + query_string(
            select=["LogicalName"], filter=f"EntitySetName eq {format_literal(entity)}")
        try:
            body = await self.host.svc.json("GET", url, context=f"read the definition of {entity}")
        except (RateLimited, TransientError):
            raise
        except ConnectorError as exc:
            log.warning("%s; %s is written through $batch", exc.message, entity)
            return None
        values = body.get("value")
        names = [v.get("LogicalName") for v in values if isinstance(v, dict)] if isinstance(values, list) else []
        return names[0] if len(names) == 1 and isinstance(names[0], str) and names[0] else None

    # ----- send
    async def _multipart(self, targets: Sequence[Target]) -> Answers:
        results = await self.host.multipart_write_batch([t.op for t in targets])
        return [(t.index, r) for t, r in zip(targets, results, strict=True)]

    async def _send(self, chunk: Chunk) -> Answers:
        url = f"{self.host.url(chunk.entity)}/{NAMESPACE}{chunk.action}"
        body = {"Targets": [{"@odata.type": NAMESPACE + chunk.logical, **t.body} for t in chunk.targets]}
        context = f"{chunk.action} of {len(chunk.targets)} {chunk.entity}"
        try:
            response = await self.host.svc.send("POST", url, json=body, headers=HEADERS, context=context)
        except (RateLimited, TransientError) as exc:
            return [(t.index, WriteResult(t.op, error=exc)) for t in chunk.targets]
        except ConnectorError as exc:
            return await self._fall_back(chunk, exc)
        records = await self._written(chunk, response)
        if isinstance(records, ConnectorError):
            return [(t.index, WriteResult(t.op, error=records)) for t in chunk.targets]
        return [(t.index, WriteResult(t.op, record=r)) for t, r in zip(chunk.targets, records, strict=True)]

    async def _fall_back(self, chunk: Chunk, refusal: ConnectorError) -> Answers:
        """The refused chunk through `$batch`: each op its own answer. When they all succeed there, the service
        refused the message rather than a record: remember the table."""
        log.info("%s; sending its operations through $batch", refusal.message)
        answers = await self._multipart(chunk.targets)
        said = f"{refusal.message} {refusal.detail or ''}"
        if any(text in said for text in UNSUPPORTED_TEXTS) or all(r.ok for _, r in answers):
            self.unsupported.add((chunk.entity, chunk.action))
            log.warning("%s refused for %s, whose records were then accepted one by one: the table is written "
                        "through $batch from now on", chunk.action, chunk.entity)
        return answers

    # ----- read back
    async def _written(self, chunk: Chunk, response: httpx.Response) -> list[Record | None] | ConnectorError:
        """The written records, one per target (None: written, but not found again by its key)."""
        entity = chunk.entity
        if chunk.action == CREATE:
            ids = _created_ids(response)
            if ids is None or len(ids) != len(chunk.targets):
                return PermanentError(f"CreateMultiple of {len(chunk.targets)} {entity} answered "
                                      f"{'no Ids' if ids is None else f'{len(ids)} Ids'}; the records may exist",
                                      status=response.status_code, code="UnexpectedResponse")
            return await self._by_ids(entity, ids)
        if chunk.action == UPDATE:
            key = self.host.primary_key(entity)
            return await self._by_ids(entity, [str(t.body[key]) for t in chunk.targets])
        return await self._by_keys(entity, [t.op.key or {} for t in chunk.targets])

    async def _by_ids(self, entity: str, ids: Sequence[str]) -> list[Record | None]:
        key = self.host.primary_key(entity)
        filters = [" or ".join(f"{key} eq {i}" for i in ids[n:n + READ_SLICE]) for n in range(0, len(ids), READ_SLICE)]
        found = {r.id.lower(): r for r in await self._read(entity, filters)}
        return [found.get(i.lower()) or Record(entity, i, {}) for i in ids]

    async def _by_keys(self, entity: str, keys: Sequence[Mapping[str, Any]]) -> list[Record | None]:
        """UpsertMultiple answers nothing: the records are found by their alternate keys (compared as Dataverse
        does, ignoring case); one the filter missed is read by its key URL."""
        clauses = ["(" + " and ".join(f"{k} eq {format_literal(v)}" for k, v in key.items()) + ")" for key in keys]
        filters = [" or ".join(clauses[n:n + READ_SLICE]) for n in range(0, len(clauses), READ_SLICE)]
        records = await self._read(entity, filters)
        indexes: dict[tuple[str, ...], dict[tuple[str, ...], Record]] = {}  # per alternate key used
        found: list[Record | None] = []
        for key in keys:
            names = tuple(key)
            if names not in indexes:
                indexes[names] = {_key_of(r.values, names): r for r in records}
            found.append(indexes[names].get(_key_of(key, names)) or await self._one_by_key(entity, key))
        return found

    async def _read(self, entity: str, filters: Sequence[str]) -> list[Record]:
        async def one(filter_: str) -> list[Record]:
            try:
                return [r async for page in self.host.list(entity, filter=filter_) for r in page]
            except ConnectorError as exc:
                log.info("%s; the written %s are read one by one", exc.message, entity)
                return []

        return [r for part in await asyncio.gather(*(one(f) for f in filters)) for r in part]

    async def _one_by_key(self, entity: str, key: Mapping[str, Any]) -> Record | None:
        try:
            return self.host.record(entity, await self.host.svc.json("GET", self.host.url(entity, key=key)))
        except ConnectorError as exc:
            log.info("%s", exc.message)
            return None


def keyed_create(op: WriteOp) -> dict[str, Any] | None:
    """The body of a create that carries a create-only upsert's key: plain key attributes as values, a lookup
    part (`_x_value`: a GUID) through the `@odata.bind` the body already holds. None when the key cannot be
    written so (the op keeps `$batch`)."""
    body = dict(op.payload)
    binds = [str(v).lower() for k, v in body.items() if k.endswith("@odata.bind")]
    for name, value in (op.key or {}).items():
        if isinstance(value, uuid.UUID) or (name.startswith("_") and name.endswith("_value")):
            if not any(f"({str(value).lower()})" in bind for bind in binds):
                return None
        elif isinstance(value, str | int) and body.get(name, value) == value:
            body[name] = value
        else:
            return None
    return body


def _names_a_record_twice(ops: Sequence[WriteOp]) -> bool:
    seen: set[tuple[str, str, Any]] = set()
    for op in ops:
        if op.id:
            ident: tuple[str, str, Any] = (op.entity, "id", str(op.id).lower())
        elif op.key:
            ident = (op.entity, "key", _key_of(op.key, sorted(op.key)))
        else:
            continue
        if ident in seen:
            return True
        seen.add(ident)
    return False


def _key_of(values: Mapping[str, Any], names: Any) -> tuple[str, ...]:
    """Key values compared as Dataverse compares alternate keys and ids: ignoring case."""
    return tuple(str(values.get(n)).casefold() for n in names)


def _created_ids(response: httpx.Response) -> list[str] | None:
    try:
        ids = response.json().get("Ids")
    except (ValueError, AttributeError):
        return None
    return [str(i) for i in ids] if isinstance(ids, list) else None


class DopHint:
    """Dataverse's `x-ms-dop-hint` (Microsoft Learn, "Send parallel requests": the degree of parallelism the
    environment recommends), read from every Web API response. `value` is the latest (None until one came);
    listeners (e.g. an adaptive limiter) are called with each new value."""

    def __init__(self) -> None:
        self.value: int | None = None
        self._listeners: list[Callable[[int], None]] = []

    def subscribe(self, listener: Callable[[int], None]) -> None:
        """Call `listener(value)` whenever the hint changes, and now when one is already known."""
        self._listeners.append(listener)
        if self.value is not None:
            listener(self.value)

    def observe(self, response: httpx.Response) -> None:
        raw = response.headers.get(DOP_HINT)
        try:
            value = int(raw) if raw is not None else None
        except ValueError:
            value = None
        if value is None or value < 1 or value == self.value:
            return
        self.value = value
        for listener in self._listeners:
            try:
                listener(value)
            except Exception:  # a listener's bug must not fail the request that carried the hint
                log.exception("x-ms-dop-hint listener failed")
