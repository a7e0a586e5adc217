"""Batched creates for the full sync: map a page's uncoupled records, reserve their couplings, create the
counterparts in `$batch` requests, and complete the couplings — the same guarantees as
`create.create_counterpart` (never a second record for one source), amortised over a page.

Idempotence across crashes: where the target has an alternate key for the mapping's natural key
(Dataverse), each create is an upsert with `If-None-Match: *`; a record a crashed run already created answers
`AlreadyExists` and is found by its key and coupled instead. Without one, the natural-key search of the
per-record path (`create.find_by_natural_key`) still finds it when the mapping has a natural key.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.connectors import (
    Aborted,
    AlreadyExists,
    ConnectorError,
    RateLimited,
    Record,
    TransientError,
    WriteOp,
    WriteResult,
)
from shared.mapping import Direction, TableMapping, field_values
from shared.state import AlreadyCoupled, ConcurrentUpdate, Coupling
from shared.sync import create, keys
from shared.sync import record as rec
from shared.sync.context import RunContext
from shared.sync.errors import SyncFailure
from shared.sync.expected import expected_for, full_payload
from shared.sync.failures import remember_failure
from shared.sync.match import bounded
from shared.sync.outcome import Outcome, SyncResult
from shared.sync.wire import for_wire

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


@dataclass
class Prepared:
    record: Record
    payload: dict[str, Any]
    coupling: Coupling | None = None


def failed(mapping: TableMapping, flow: Direction, source_id: str, message: str, *, detail: str | None = None,
           retryable: bool = False, destination_id: str | None = None) -> SyncResult:
    return SyncResult(mapping.name, flow, source_id, Outcome.FAILED, destination_id=destination_id,
                      message=message, detail=detail, retryable=retryable)


async def record(engine: SyncEngine, ctx: RunContext, result: SyncResult) -> SyncResult:
    """Make a failure of the batched paths an error record, as the per-record path does for its own."""
    await remember_failure(engine, ctx, result)
    return result


async def prepare(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                  record: Record) -> Prepared | SyncResult:
    """Map one record for a create (lookups resolved, dependencies synced first): Prepared, or FAILED."""
    one = ctx.for_record()
    try:
        exp = await expected_for(engine, one, mapping, flow, record.values, None, creating=True)
    except SyncFailure as exc:
        return failed(mapping, flow, record.id, exc.message, detail=exc.detail, retryable=exc.retryable)
    except ConnectorError as exc:
        return failed(mapping, flow, record.id, exc.message, detail=exc.detail,
                      retryable=isinstance(exc, RateLimited | TransientError))
    if exp.errors:
        return failed(mapping, flow, record.id, "; ".join(f"{k}: {m}" for k, m in sorted(exp.errors.items())))
    return Prepared(record, full_payload(exp))


def write_op(engine: SyncEngine, mapping: TableMapping, flow: Direction, item: Prepared) -> WriteOp:
    target = flow.target
    entity = mapping.entity(target).entity
    wire = for_wire(engine.pack.systems.get(target), item.payload, None)
    key = keys.natural_key(mapping, target, item.payload) if engine.connector(target).supports_upsert else None
    if key is not None:
        # A lookup part (the company) names itself in the key segment (`_msdyn_company_value=<id>`); its
        # `@odata.bind` stays in the body, plain key attributes leave it.
        body = {k: v for k, v in wire.items() if k not in key}
        return WriteOp("upsert", entity, body, key=key, upsert_mode="create_only", ref=item.record.id)
    return WriteOp("create", entity, wire, ref=item.record.id)


async def create_batch(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                       items: Sequence[Prepared]) -> list[SyncResult]:
    """Reserve, create in batches, complete. Records whose reservation another worker holds go through the
    per-record path (which waits for it). Returns one result per item."""
    couplings, source = engine.state.couplings, flow.source
    results: list[SyncResult] = []
    ready: list[Prepared] = []

    async def take_over(item: Prepared) -> Prepared | SyncResult:
        """A reservation of an interrupted run of this full sync: take it over, or let the per-record path
        decide when another worker did first."""
        assert item.coupling is not None
        try:
            item.coupling = await couplings.renew_reservation(item.coupling, now=engine.options.clock())
            return item
        except ConcurrentUpdate:
            return await engine.sync_in_context(ctx, mapping, flow, item.record.id, item.record)

    resumed = [i for i in items if i.coupling is not None]
    fresh = [i for i in items if i.coupling is None]
    won = await couplings.reserve_many(mapping.name, source, [i.record.id for i in fresh], job_id=ctx.job_id,
                                       now=engine.options.clock())
    taken = [i for i in fresh if i.record.id not in won]  # reserved or coupled by another worker meanwhile
    for item in fresh:
        item.coupling = won.get(item.record.id, item.coupling)
    for got in await bounded(engine.options.concurrency, [
            *(take_over(i) for i in resumed),
            *(engine.sync_in_context(ctx, mapping, flow, i.record.id, i.record) for i in taken)]):
        if isinstance(got, SyncResult):
            results.append(got)
        else:
            ready.append(got)
    ready += [i for i in fresh if i.record.id in won]
    if not ready:
        return results
    answers = await engine.connector(flow.target).write_batch([write_op(engine, mapping, flow, i) for i in ready])
    created = [(i, a) for i, a in zip(ready, answers, strict=True) if a.ok and a.record is not None]
    others = [(i, a) for i, a in zip(ready, answers, strict=True) if not (a.ok and a.record is not None)]
    results += await _complete_created(engine, ctx, mapping, flow, created)
    results += await bounded(engine.options.concurrency, (_finish(engine, ctx, mapping, flow, i, a) for i, a in others))
    return results


async def _complete_created(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                            created: Sequence[tuple[Prepared, WriteResult]]) -> list[SyncResult]:
    """Record the created counterparts: snapshots, then the couplings completed in a few transactions."""
    source, target = flow.source, flow.target
    afters = await bounded(engine.options.concurrency,
                           (rec.settled(engine, mapping, target, a.record) for _, a in created))  # type: ignore[arg-type]
    pairs: list[tuple[Coupling, str]] = []
    tokens = [item.coupling.reservation if item.coupling else None for item, _ in created]  # before `stamp`
    for (item, _), after in zip(created, afters, strict=True):
        assert item.coupling is not None
        snapshot = {source.value: field_values(mapping, item.record.values, source),
                    target.value: field_values(mapping, after.values, target)}
        rec.stamp(engine, ctx, item.coupling, snapshot, {source: item.record, target: after})
        pairs.append((item.coupling, after.id))
    results = []
    for (item, _), after, token, outcome in zip(created, afters, tokens,
                                                await engine.state.couplings.complete_many(pairs), strict=True):
        if isinstance(outcome, Exception):
            outcome = await _confirm(engine, mapping, flow, item, token, after.id, outcome)
        if isinstance(outcome, ConcurrentUpdate | AlreadyCoupled):
            # Our reservation was taken over meanwhile: undo our create so the taker's stays the only one.
            await engine.connector(target).delete(mapping.entity(target).entity, after.id)
            results.append(failed(mapping, flow, item.record.id, f"reservation lost while creating: {outcome}",
                                  retryable=True))
        elif isinstance(outcome, Exception):
            # Unknown whether the coupling was stored (the store failed, or its answer was lost): the created
            # record stays, and so does our reservation — it tells the retry since when to look for the record
            # it would otherwise create a second time (`create.create_counterpart`, `recovery`).
            results.append(await record(engine, ctx, failed(
                mapping, flow, item.record.id, f"created {target.value} record {after.id!r}, but storing its "
                f"coupling failed ({outcome}); the next attempt couples it", retryable=True,
                destination_id=after.id)))
        else:
            results.append(SyncResult(mapping.name, flow, item.record.id, Outcome.INSERTED,
                                      destination_id=after.id, writes=1))
    return results


async def _confirm(engine: SyncEngine, mapping: TableMapping, flow: Direction, item: Prepared, token: str | None,
                   destination_id: str, error: Exception) -> Coupling | Exception:
    """A completion whose transaction failed without a verdict on the coupling (a transport error: the answer of
    an entity-group transaction can be lost after it was applied): read the coupling to find out. Ours and
    complete: done; ours and still pending: complete it once more; anyone else's: `ConcurrentUpdate`."""
    if isinstance(error, ConcurrentUpdate | AlreadyCoupled):
        return error
    assert item.coupling is not None
    try:
        now = await engine.state.couplings.find_coupling(mapping.name, flow.source, item.record.id)
        if now is not None and not now.pending and now.id_of(flow.target) == destination_id:
            return now
        if now is None or not now.pending or token is None or now.reservation != token:
            return ConcurrentUpdate(f"the reservation changed while its coupling was being stored ({error})")
        done = dataclasses.replace(item.coupling, row_etag=now.row_etag)
        return await engine.state.couplings.complete(done, destination_id)
    except (ConcurrentUpdate, AlreadyCoupled) as exc:
        return exc
    except Exception as exc:  # the store is still failing: the caller keeps the record and the reservation
        return exc


async def _finish(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, item: Prepared,
                  answer: WriteResult) -> SyncResult:
    """A create that did not succeed: an existing record with the key is coupled, anything else fails."""
    target = flow.target
    coupling = item.coupling
    assert coupling is not None
    couplings = engine.state.couplings
    error = answer.error
    if isinstance(error, AlreadyExists):
        existing = await create.find_by_natural_key(engine, mapping, target, item.payload)
        if existing is not None:
            # Created by an interrupted run (or by hand): couple it, then bring the pair in step.
            try:
                await couplings.complete(coupling, existing.id)
            except (ConcurrentUpdate, AlreadyCoupled):
                return await engine.sync_in_context(ctx, mapping, flow, item.record.id, item.record)
            result = await engine.sync_in_context(ctx, mapping, flow, item.record.id, item.record)
            if result.ok:
                result.outcome = Outcome.COUPLED
            return result
    with contextlib.suppress(ConcurrentUpdate):
        await couplings.delete_coupling(coupling)
    message = error.message if error is not None else "the service answered without the created record"
    return await record(engine, ctx, failed(mapping, flow, item.record.id, message,
                                            detail=getattr(error, "detail", None),
                                            retryable=isinstance(error, RateLimited | TransientError | Aborted)))
