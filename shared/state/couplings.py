"""Couplings: which ERP record is which CRM record, and what was last synced between them.

Each coupling is two rows in the mapping's partition, `erp:<id>` and `crm:<id>`, carrying the same data, so
a lookup from either side is one point read. Both rows are always written in one entity-group transaction,
which is atomic, so they never disagree. Every write is guarded by the ETag of the row it was read from;
since every write changes both rows, that one guard catches any concurrent writer (→ `ConcurrentUpdate`).

Creating a destination record idempotently: `reserve` inserts a *pending* coupling (only the source row,
insert-if-absent: of two concurrent reservers exactly one succeeds, the other gets `AlreadyCoupled` with the
winner's row), the winner creates the record, then `complete` adds the destination row and id atomically.

Key design
----------
PartitionKey = the mapping (escaped), RowKey = `erp:<id>` / `crm:<id>` (ids escaped by `encode_key`). Two
requirements leave no other choice of partition:

* both rows of a coupling are written atomically, and Table storage makes only an entity-group transaction
  atomic, which must stay inside one partition: a coupling's two rows share their partition;
* a lookup from either side knows only that side's id, so the partition must be computable from the ERP id
  alone and from the CRM id alone. For any pair of ids to land together, that function can depend on
  neither id: it is a function of the mapping. Hashing ids into shards would put a pair's rows in two
  partitions, i.e. two separate writes, with a half-written coupling after a crash between them.

One partition per mapping is also what the bulk paths want. A full sync reads source pages in key order, so
a page's row keys are (nearly) one contiguous range: `find_page` reads a page of 1 000 couplings with one
range query instead of 1 000 point reads (or 72 filtered queries of 14 ids), and every coupling write of a
page lands in the same partition, 50 couplings (100 rows) per entity-group transaction (`update_many`,
`create_many`, `reserve_many`, `complete_many`; shared batching in `coupling_batches.py`). `encode_key` does
not preserve the ids' order (an escaped `~20` sorts after letters), so ranges are taken over the encoded
row keys, the order Table storage uses; `find_page` is correct whatever order the source pages come in, and
bounded in cost when that order differs (it stops scanning and falls back to `find_couplings`).

Load on one partition, against Azure Table storage's documented targets of 2 000 entities/s per partition
and 20 000 entities/s per account (1 KiB entities). Per source record a full sync touches: unchanged, 1 row
read (a range query, 1 000 rows a request); updated, 1 read + 2 written; created, 1 read + 1 reserved + 2
completed = 4; match-coupled, 1 read + 2 created + 2 updated. At 4 entities a record one partition carries
about 500 created or 2 000 unchanged records a second — more than BC or F&O usually deliver, but a fast
source (Dataverse bulk reads, a re-run on unchanged data) or a page's burst (`update_many` of 1 000
couplings = 2 000 rows in 20 transactions sent together) would exceed it. Beyond a target the service
answers 503 Server Busy and the SDK backs off; rather than relying on that, the bulk methods of a store cap
each partition at `partition_rate` entities/s (default 1 500: a token bucket with one second of burst;
reads are charged when their page arrives), and send at most `concurrency` transactions of one partition at
once. The remaining 25 % is headroom for the live path (per-record point reads and two-row writes, paced by
webhooks and Service Bus sessions, uncapped here). A full sync works through mappings one at a time, so one
process puts at most 1 500 entities/s on the account; the 20 000/s account target would need more than a
dozen full syncs of different mappings at once. The cap is per process: two processes syncing the same
mapping in bulk would share one partition's target (the full sync of a mapping runs in one process).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from shared.mapping.types import Side
from shared.state.coupling_batches import (
    DEFAULT_PARTITION_CONCURRENCY,
    DEFAULT_PARTITION_RATE,
    DEFAULT_SCAN_FACTOR,
    OpGroup,
    PartitionRate,
    run_groups,
    scan_range,
)
from shared.state.coupling_model import STALE_CODES, Coupling, from_entity, row_key, to_entity
from shared.state.exceptions import AlreadyCoupled, ConcurrentUpdate, NotFound
from shared.state.keys import encode_key, json_hash
from shared.state.recent import DEFAULT_SIZE, RecentCouplings

# Table storage: at most 15 comparisons per $filter.
MAX_FILTER_KEYS = 14  # plus the PartitionKey comparison

class CouplingStore:
    """Couplings in one table; every method is safe to call from concurrent workers."""

    def __init__(self, table: TableClient, *, partition_rate: float | None = DEFAULT_PARTITION_RATE,
                 concurrency: int = DEFAULT_PARTITION_CONCURRENCY, scan_factor: int = DEFAULT_SCAN_FACTOR,
                 recent: int = DEFAULT_SIZE) -> None:
        """`partition_rate`: entities/s the bulk methods put on one partition (None: no cap); `concurrency`:
        transactions of one partition in flight at once; `scan_factor`: rows `find_page`'s range scan may read
        per asked id before it falls back to filtered queries (see the module docstring); `recent`: couplings
        kept for `find_coupling(recent=True)` (`shared.state.recent`; 0: none)."""
        if concurrency < 1 or scan_factor < 1:
            raise ValueError("concurrency and scan_factor must be at least 1")
        self.table = table
        self.rate = PartitionRate(partition_rate)
        self.concurrency = concurrency
        self.scan_factor = scan_factor
        self.recent = RecentCouplings(recent)

    def _forget(self, couplings: Iterable[Coupling]) -> None:
        """Couplings about to be written by other means than `update_coupling`: not recent any more."""
        for c in couplings:
            self.recent.forget(c)

    async def find_coupling(self, mapping: str, side: Side | str, record_id: str, *,
                            recent: bool = False) -> Coupling | None:
        """The coupling of `record_id` on `side`, or None. `recent`: as this process last read or wrote it, when
        it did — maybe stale, so only for a caller whose writes are guarded by its ETag (`shared.state.recent`)."""
        if recent and (known := self.recent.get(mapping, side, record_id)) is not None:
            return known
        try:
            entity = await self.table.get_entity(encode_key(mapping), row_key(side, record_id))
        except ResourceNotFoundError:
            return None
        found = from_entity(entity)
        self.recent.remember(found)
        return found

    async def find_couplings(self, mapping: str, side: Side | str, record_ids: Sequence[str]) -> dict[str, Coupling]:
        """The couplings of many records of one side, by record id (absent: not coupled). One query per
        `MAX_FILTER_KEYS` ids instead of one point read each, whatever their order (a page in key order is
        cheaper with `find_page`)."""
        found: dict[str, Coupling] = {}
        ids = list(dict.fromkeys(record_ids))
        pk = encode_key(mapping)
        for start in range(0, len(ids), MAX_FILTER_KEYS):
            chunk = ids[start:start + MAX_FILTER_KEYS]
            params = {"pk": pk, **{f"r{i}": row_key(side, rid) for i, rid in enumerate(chunk)}}
            # Spaces around the parentheses: the SDK finds `@name` parameters between spaces.
            query = "PartitionKey eq @pk and ( " + " or ".join(f"RowKey eq @r{i}" for i in range(len(chunk))) + " )"
            await self.rate.spend(pk, 0)
            entities = [entity async for entity in self.table.query_entities(query, parameters=params)]
            self.rate.charge(pk, len(entities))
            for entity in entities:
                c = from_entity(entity)
                found[c.id_of(side) or ""] = c
        return found

    async def find_page(self, mapping: str, side: Side | str, ids: Sequence[str]) -> dict[str, Coupling]:
        """The couplings of a page of source records, by record id (absent: not coupled) — `find_couplings`'
        answer, read with one range query over the page's row keys (1 000 rows a request) when the page comes
        in row-key order, as a full sync's key-ordered pages mostly do. When it does not (ids scattered over
        the partition), the scan stops after `scan_factor` rows per id and the ids it has not reached are read
        with `find_couplings`: at most ⌈scan_factor × len(ids) / 1000⌉ extra requests."""
        wanted = {row_key(side, rid): rid for rid in dict.fromkeys(ids)}
        entities, unresolved = await scan_range(self.table, encode_key(mapping), wanted.keys(),
                                                bound=self.scan_factor * len(wanted), rate=self.rate)
        found = {wanted[key]: from_entity(entity) for key, entity in entities.items()}
        if unresolved:
            found.update(await self.find_couplings(mapping, side, [wanted[key] for key in sorted(unresolved)]))
        return found

    async def get_coupling(self, mapping: str, side: Side | str, record_id: str) -> Coupling:
        """Like `find_coupling`, but raises `NotFound` when the record is not coupled."""
        found = await self.find_coupling(mapping, side, record_id)
        if found is None:
            raise NotFound(f"{Side(side).value} record {record_id!r} is not coupled in mapping {mapping!r}")
        return found

    async def reserve(self, mapping: str, source_side: Side | str, source_id: str, *,
                      job_id: str | None = None, now: dt.datetime | None = None) -> Coupling:
        """Claim the right to create `source_id`'s counterpart. Raises `AlreadyCoupled` (with the existing
        coupling, pending or complete) when another worker reserved or coupled it first."""
        side = Side(source_side)
        c = Coupling(mapping=mapping, reserved_by=side, reservation=uuid.uuid4().hex,
                     reserved_at=now or dt.datetime.now(dt.UTC), last_job_id=job_id)
        setattr(c, f"{side.value}_id", source_id)
        try:
            meta = await self.table.create_entity(to_entity(c, side))
        except ResourceExistsError:
            existing = await self.find_coupling(mapping, side, source_id)
            raise AlreadyCoupled(f"{side.value} record {source_id!r} is already reserved or coupled "
                                 f"in mapping {mapping!r}", existing) from None
        c.row_side, c.row_etag = side, meta["etag"]
        return c

    async def reserve_many(self, mapping: str, source_side: Side | str, source_ids: Sequence[str], *,
                           job_id: str | None = None, now: dt.datetime | None = None) -> dict[str, Coupling]:
        """`reserve` for many records, up to `MAX_TRANSACTION` in one atomic transaction. Returns the
        reservations won, by source id; ids another worker reserved or coupled first are left out (the caller
        takes the per-record path for them, which waits or syncs)."""
        side = Side(source_side)
        fresh = []
        for rid in dict.fromkeys(source_ids):
            c = Coupling(mapping=mapping, reserved_by=side, reservation=uuid.uuid4().hex,
                         reserved_at=now or dt.datetime.now(dt.UTC), last_job_id=job_id)
            setattr(c, f"{side.value}_id", rid)
            fresh.append(c)

        def reserve_group(c: Coupling) -> OpGroup[Coupling]:
            def done(answers: list[Any]) -> Coupling:
                c.row_side, c.row_etag = side, answers[0]["etag"]
                return c

            async def failed(at: int, exc: TableTransactionError) -> Exception:
                # Taken by someone else: not ours, the caller's per-record path deals with it.
                return AlreadyCoupled("reserved or coupled already") if exc.error_code == "EntityAlreadyExists" else exc

            return OpGroup([("create", to_entity(c, side))], done, failed)

        outcomes = await self._run([reserve_group(c) for c in fresh])
        for outcome in outcomes:
            if isinstance(outcome, Exception) and not isinstance(outcome, AlreadyCoupled):
                raise outcome
        return {c.id_of(side) or "": c for c in outcomes if isinstance(c, Coupling)}

    async def renew_reservation(self, coupling: Coupling, *, now: dt.datetime | None = None) -> Coupling:
        """Take over a pending reservation (e.g. one left by a crashed worker); one taker wins, the others get
        `ConcurrentUpdate`. The caller must check the destination for a record the crashed worker created."""
        if not coupling.pending:
            raise ValueError("renew_reservation needs a pending coupling")
        renewed = dataclasses.replace(coupling, reservation=uuid.uuid4().hex,
                                      reserved_at=now or dt.datetime.now(dt.UTC))
        return await self.update_coupling(renewed)

    async def complete(self, coupling: Coupling, destination_id: str) -> Coupling:
        """Record the created destination: both rows, atomically, guarded by the reservation's ETag.

        Raises `ConcurrentUpdate` when the reservation changed meanwhile, `AlreadyCoupled` when the
        destination record is already coupled to another record.
        """
        if not coupling.pending or coupling.reserved_by is None:
            raise ValueError("complete needs a pending coupling returned by reserve")
        self.recent.forget(coupling)
        source = Side(coupling.reserved_by)
        done = dataclasses.replace(coupling, reservation=None)
        setattr(done, f"{source.other.value}_id", destination_id)
        ops = [self._guarded_update(done, source), ("create", to_entity(done, source.other))]
        try:
            result = await self.table.submit_transaction(ops)
        except TableTransactionError as exc:
            if exc.error_code == "EntityAlreadyExists" and exc.index == 1:
                existing = await self.find_coupling(done.mapping, source.other, destination_id)
                raise AlreadyCoupled(f"{source.other.value} record {destination_id!r} is already coupled in "
                                     f"mapping {done.mapping!r}", existing) from None
            raise self._concurrent(done, exc) from None
        done.row_side, done.row_etag = source, result[0]["etag"]
        return done

    async def complete_many(self, done: Sequence[tuple[Coupling, str]]) -> list[Coupling | Exception]:
        """`complete` for many reservations of one mapping, 50 per transaction (two operations each). A chunk
        that fails as a whole is retried record by record, so each gets its own answer: the completed
        coupling, or the `ConcurrentUpdate` / `AlreadyCoupled` that `complete` raises."""
        if any(not c.pending or c.reserved_by is None for c, _ in done):  # refused before anything is written
            raise ValueError("complete_many needs pending couplings returned by reserve")
        self._forget(c for c, _ in done)

        def complete_group(coupling: Coupling, destination_id: str) -> OpGroup[Coupling]:
            source = Side(coupling.reserved_by or "")
            c = dataclasses.replace(coupling, reservation=None)
            setattr(c, f"{source.other.value}_id", destination_id)

            def done(answers: list[Any]) -> Coupling:
                c.row_side, c.row_etag, c.snapshot_hash = source, answers[0]["etag"], _hash(c)
                return c

            async def failed(at: int, exc: TableTransactionError) -> Exception:
                if at == 1 and exc.error_code == "EntityAlreadyExists":
                    return await self._already_coupled(c, source.other)
                return self._item_error(c, exc)

            return OpGroup([self._guarded_update(c, source), ("create", to_entity(c, source.other))], done, failed)

        return await self._run_each(done, lambda pair: complete_group(*pair))

    async def create_many(self, couplings: Sequence[Coupling]) -> list[Coupling | Exception]:
        """`create_coupling` for many matched pairs: both rows of each created atomically, 50 pairs per
        transaction. One answer per pair, in order: the created coupling, `AlreadyCoupled` (with the existing
        coupling) when either record is coupled or reserved already, or the error that refused it."""
        if any(c.pending for c in couplings):  # refused before anything is written
            raise ValueError("create_many needs both erp_id and crm_id of every coupling")
        self._forget(couplings)

        def create_group(coupling: Coupling) -> OpGroup[Coupling]:
            def done(answers: list[Any]) -> Coupling:
                return dataclasses.replace(coupling, reservation=None, row_side=Side.ERP,
                                           row_etag=answers[0]["etag"], snapshot_hash=_hash(coupling))

            async def failed(at: int, exc: TableTransactionError) -> Exception:
                if exc.error_code == "EntityAlreadyExists":
                    return await self._already_coupled(coupling, Side.CRM if at == 1 else Side.ERP)
                return exc

            return OpGroup([("create", to_entity(coupling, Side.ERP)), ("create", to_entity(coupling, Side.CRM))],
                           done, failed)

        return await self._run_each(couplings, create_group)

    async def update_many(self, couplings: Sequence[Coupling]) -> list[Coupling | Exception]:
        """`update_coupling` for many couplings, 50 per transaction (a pending one is one row). One answer per
        coupling, in order: the written coupling with its new ETag, `ConcurrentUpdate` when another worker
        wrote or removed it since it was read, or the error that refused it; the others are written whatever
        happens to one."""
        if any(c.row_side is None or c.row_etag is None for c in couplings):  # refused before anything is written
            raise ValueError("update_many needs couplings read from the store (they carry the ETag)")
        self._forget(couplings)

        def update_group(coupling: Coupling) -> OpGroup[Coupling]:
            loaded = Side(coupling.row_side or "")
            ops: list[Any] = [self._guarded_update(coupling, loaded)]
            if not coupling.pending:
                ops.append(("update", to_entity(coupling, loaded.other), {"mode": UpdateMode.REPLACE}))

            def done(answers: list[Any]) -> Coupling:
                return dataclasses.replace(coupling, row_etag=answers[0]["etag"], snapshot_hash=_hash(coupling))

            async def failed(at: int, exc: TableTransactionError) -> Exception:
                return self._item_error(coupling, exc)

            return OpGroup(ops, done, failed)

        return await self._run_each(couplings, update_group)

    async def create_coupling(self, coupling: Coupling) -> Coupling:
        """Couple two existing records (manual or match-based coupling): both rows, created atomically.
        Raises `AlreadyCoupled` when either record is coupled (or reserved) already."""
        if coupling.pending:
            raise ValueError("create_coupling needs both erp_id and crm_id")
        self.recent.forget(coupling)
        ops = [("create", to_entity(coupling, Side.ERP)), ("create", to_entity(coupling, Side.CRM))]
        try:
            result = await self.table.submit_transaction(ops)
        except TableTransactionError as exc:
            if exc.error_code != "EntityAlreadyExists":
                raise
            side = Side.CRM if exc.index == 1 else Side.ERP
            existing = await self.find_coupling(coupling.mapping, side, coupling.id_of(side) or "")
            raise AlreadyCoupled(f"{side.value} record {coupling.id_of(side)!r} is already coupled in mapping "
                                 f"{coupling.mapping!r}", existing) from None
        return dataclasses.replace(coupling, reservation=None, row_side=Side.ERP, row_etag=result[0]["etag"],
                                   snapshot_hash=json_hash(coupling.snapshot) if coupling.snapshot else None)

    async def update_coupling(self, coupling: Coupling) -> Coupling:
        """Write the coupling back (both rows), unless another worker wrote it since it was read
        (→ `ConcurrentUpdate`). Returns the coupling with its new ETag."""
        if coupling.row_side is None or coupling.row_etag is None:
            raise ValueError("update_coupling needs a coupling read from the store (it carries the ETag)")
        loaded = Side(coupling.row_side)
        ops = [self._guarded_update(coupling, loaded)]
        if not coupling.pending:
            ops.append(("update", to_entity(coupling, loaded.other), {"mode": UpdateMode.REPLACE}))
        try:
            result = await self.table.submit_transaction(ops)
        except TableTransactionError as exc:
            self.recent.forget(coupling)
            raise self._concurrent(coupling, exc) from None
        snapshot_hash = json_hash(coupling.snapshot) if coupling.snapshot is not None else None
        written = dataclasses.replace(coupling, row_etag=result[0]["etag"], snapshot_hash=snapshot_hash, recent=False)
        self.recent.remember(written)
        if len(result) > 1:  # the other row too: the other direction's next notice finds it by its own id
            self.recent.remember(dataclasses.replace(written, row_side=loaded.other, row_etag=result[1]["etag"]))
        return written

    async def delete_coupling(self, coupling: Coupling) -> None:
        """Uncouple: remove both rows atomically. Succeeds when already gone; raises `ConcurrentUpdate` when
        the coupling changed since it was read (decide again on the fresh state)."""
        self.recent.forget(coupling)
        sides = [Side(s) for s in (Side.ERP, Side.CRM) if coupling.id_of(s) is not None]
        ops: list[Any] = []
        for side in sides:
            entity = {"PartitionKey": encode_key(coupling.mapping), "RowKey": row_key(side, coupling.id_of(side))}
            guarded = side is coupling.row_side and coupling.row_etag is not None
            kwargs = {"etag": coupling.row_etag, "match_condition": MatchConditions.IfNotModified} if guarded else {}
            ops.append(("delete", entity, kwargs))
        try:
            await self.table.submit_transaction(ops)
        except TableTransactionError as exc:
            if exc.error_code != "ResourceNotFound":
                raise self._concurrent(coupling, exc) from None
            # Rows are only ever removed in pairs, so one missing row means the coupling is gone, unless the
            # row we read is still there (then it changed shape, e.g. pending → complete).
            if coupling.row_side is not None:
                again = await self.find_coupling(coupling.mapping, coupling.row_side,
                                                 coupling.id_of(coupling.row_side) or "")
                if again is not None:
                    raise ConcurrentUpdate(f"coupling of {coupling.row_side.value} record "
                                           f"{coupling.id_of(coupling.row_side)!r} changed while uncoupling") from None

    async def uncouple(self, mapping: str, side: Side | str, record_id: str) -> Coupling | None:
        """Remove the coupling of one record, whatever it holds; returns what was removed (None if nothing)."""
        for _ in range(5):
            found = await self.find_coupling(mapping, side, record_id)
            if found is None:
                return None
            try:
                await self.delete_coupling(found)
                return found
            except ConcurrentUpdate:
                continue
        raise ConcurrentUpdate(f"coupling of {Side(side).value} record {record_id!r} kept changing while uncoupling")

    async def list_couplings(self, mapping: str, *, page_size: int = 1000) -> AsyncIterator[Coupling]:
        """Every coupling of a mapping once (complete ones from their ERP row, pending ones from their only
        row), streamed page by page."""
        query = "PartitionKey eq @pk"
        pages = self.table.query_entities(query, parameters={"pk": encode_key(mapping)},
                                          results_per_page=page_size)
        async for entity in pages:
            c = from_entity(entity)
            if c.pending or c.row_side is Side.ERP:
                yield c

    async def _run(self, groups: Sequence[OpGroup[Coupling]]) -> list[Coupling | Exception]:
        return await run_groups(self.table, groups, rate=self.rate, concurrency=self.concurrency)

    async def _run_each(self, items: Sequence[Any],
                        group: Callable[[Any], OpGroup[Coupling]]) -> list[Coupling | Exception]:
        """`group(item)` for each item, run as transactions; an item whose rows cannot even be built (a naive
        datetime, a snapshot too large or not JSON) gets that error as its answer instead of failing the rest."""
        answers: list[Coupling | Exception | None] = [None] * len(items)
        groups, slots = [], []
        for n, item in enumerate(items):
            try:
                groups.append(group(item))
                slots.append(n)
            except ValueError as exc:
                answers[n] = exc
        for n, outcome in zip(slots, await self._run(groups), strict=True):
            answers[n] = outcome
        return answers  # type: ignore[return-value]

    async def _already_coupled(self, c: Coupling, side: Side) -> AlreadyCoupled:
        existing = await self.find_coupling(c.mapping, side, c.id_of(side) or "")
        return AlreadyCoupled(f"{side.value} record {c.id_of(side)!r} is already coupled in mapping {c.mapping!r}",
                              existing)

    def _item_error(self, c: Coupling, exc: TableTransactionError) -> Exception:
        """A guarded write's refusal: its row changed or vanished → `ConcurrentUpdate`; anything else (a row
        the service refused as invalid) is returned as it is, not mistaken for a race."""
        return self._concurrent(c, exc) if exc.error_code in STALE_CODES else exc

    def _guarded_update(self, c: Coupling, side: Side) -> tuple[str, dict[str, Any], dict[str, Any]]:
        return ("update", to_entity(c, side),
                {"mode": UpdateMode.REPLACE, "etag": c.row_etag, "match_condition": MatchConditions.IfNotModified})

    @staticmethod
    def _concurrent(c: Coupling, exc: TableTransactionError | ResourceModifiedError) -> ConcurrentUpdate:
        side = c.row_side or c.reserved_by or Side.ERP
        return ConcurrentUpdate(f"coupling of {Side(side).value} record {c.id_of(side)!r} in mapping {c.mapping!r} "
                                f"was changed or removed by another worker ({getattr(exc, 'error_code', exc)})")



def _hash(c: Coupling) -> str | None:
    return json_hash(c.snapshot) if c.snapshot is not None else None
