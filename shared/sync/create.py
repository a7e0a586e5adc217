"""Creating a counterpart idempotently: never a second record for the same source, also under concurrent
calls, redelivered notices and crashed workers.

The source record's coupling row is reserved first (insert-if-absent: exactly one worker wins); the winner
creates and completes the coupling in one atomic transaction. A loser waits for the winner's coupling and then
reconciles normally (finding nothing to do). A reservation older than `stale_reservation` was left by a crashed
worker: it is taken over. Before creating, the destination is searched by the mapping's natural key (when it has
one): an uncoupled record found there — made by hand, or by a crashed worker — is coupled instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.connectors import AlreadyExists, ConnectorError, Record
from shared.mapping import Direction, Side, TableMapping, field_values
from shared.state import AlreadyCoupled, ConcurrentUpdate, Coupling
from shared.sync import keys, lease, recovery
from shared.sync import record as rec
from shared.sync.context import RunContext
from shared.sync.expected import expected_for, full_payload
from shared.sync.outcome import Outcome, SyncResult
from shared.sync.wire import for_wire

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


async def await_reservation(engine: SyncEngine, mapping: TableMapping, side: Side,
                            coupling: Coupling) -> Coupling | None:
    """Wait until another worker's pending reservation completes (→ the coupling) or disappears (→ None);
    take over a stale one (→ the renewed pending coupling, now ours to create). Raises RetryLater when the
    other worker is still busy after `reservation_wait` seconds."""
    couplings, options = engine.state.couplings, engine.options
    record_id = coupling.id_of(side) or ""

    def creating(c: Coupling) -> bool:
        stale = c.reserved_at is not None and options.clock() - c.reserved_at > options.stale_reservation
        return c.pending and not stale

    current = await lease.wait_while(engine, mapping, side, coupling, creating, "creating the counterpart of")
    while current is not None and current.pending:  # stale: take it over (of several takers, one wins)
        try:
            return await couplings.renew_reservation(current, now=options.clock())
        except ConcurrentUpdate:
            current = await couplings.find_coupling(mapping.name, side, record_id)
            if current is not None:
                current = await lease.wait_while(engine, mapping, side, current, creating,
                                                 "creating the counterpart of")
    return current


async def create_counterpart(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                             record: Record, *, reserved: Coupling | None,
                             earlier: dt.datetime | None = None) -> SyncResult:
    """Create the counterpart of an uncoupled `record` (or finish a taken-over reservation `reserved`).
    `earlier`: when an earlier attempt that may have created the counterpart started (a taken-over
    reservation, a recorded failure): its record is looked for before creating (`shared.sync.recovery`)."""
    source, target = flow.source, flow.target
    may_create = ctx.create if ctx.create is not None else not mapping.only_coupled
    if reserved is None and not may_create:
        return SyncResult(mapping.name, flow, record.id, Outcome.IGNORED,
                          message=f"not coupled, and mapping '{mapping.name}' synchronises only coupled records "
                                  f"(couple it, or synchronise it with create)")
    if not mapping.direction.allows(flow):
        return SyncResult(mapping.name, flow, record.id, Outcome.IGNORED,
                          message=f"not coupled, and mapping '{mapping.name}' does not create {flow.value}")
    # Map before reserving: a record that cannot be mapped is reported and leaves no reservation behind.
    exp = await expected_for(engine, ctx, mapping, flow, record.values, None, creating=True)
    if (failure := exp.failure(exp.errors)) is not None:
        raise failure
    payload = full_payload(exp)
    couplings = engine.state.couplings
    if reserved is None:
        try:
            coupling = await couplings.reserve(mapping.name, source, record.id, job_id=ctx.job_id,
                                               now=engine.options.clock())
        except AlreadyCoupled:
            raise ConcurrentUpdate("reserved by another worker meanwhile") from None  # decide again
    else:
        coupling = reserved
    connector = engine.connector(target)
    entity = mapping.entity(target).entity
    chosen = recovery.chosen_id(engine, mapping, target, source, record.id)
    try:
        existing, writes = await _find_or_create(engine, mapping, target, payload, chosen, earlier)
    except BaseException:
        # Nothing was created (or the service said so): drop our reservation so the next attempt — the queue's
        # retry, the retry timer — does not wait for a worker that is gone.
        await _release(engine, coupling)
        raise
    try:
        after = await rec.settled(engine, mapping, target, existing) if writes else existing
    except ConnectorError:
        # Created, but the read-back failed: couple it now without a snapshot (the next sync merges one way,
        # from the source) rather than leave a record nobody knows is ours.
        await couplings.complete(coupling, existing.id)
        raise
    if writes:
        # A record we created holds exactly what we mapped: this pair is in step, snapshot it.
        snapshot = {source.value: field_values(mapping, record.values, source),
                    target.value: field_values(mapping, after.values, target)}
        rec.stamp(engine, ctx, coupling, snapshot, {source: record, target: after})
    try:
        done = await couplings.complete(coupling, after.id)
    except ConcurrentUpdate:
        # Our reservation was taken over (we were too slow): undo our create so the taker's stays the only one.
        # A chosen id is the taker's too: it has coupled (or will couple) that very row, so it stays.
        if writes and chosen is None:
            await connector.delete(entity, after.id)
        raise
    if writes:
        return SyncResult(mapping.name, flow, record.id, Outcome.INSERTED, destination_id=after.id, writes=writes)
    # Coupled to a record found by natural key: bring the pair in step (first sync, one-way from the source).
    merged = await rec.merge_and_write(engine, ctx, mapping, flow, done, {source: record, target: after})
    merged.outcome = Outcome.COUPLED
    return merged


async def _find_or_create(engine: SyncEngine, mapping: TableMapping, target: Side, payload: dict[str, Any],
                          chosen: str | None, earlier: dt.datetime | None) -> tuple[Record, int]:
    """The counterpart: an uncoupled record with the same natural key (made by hand, or by a crashed
    worker), an earlier attempt's record, or a new one (→ writes 1)."""
    existing = await find_by_natural_key(engine, mapping, target, payload)
    if existing is None and earlier is not None:
        if chosen is not None:
            existing = await recovery.by_chosen_id(engine, mapping, target, chosen)
        elif not mapping.entity(target).natural_key:
            existing = await recovery.by_content(engine, mapping, target, payload, earlier)
    if existing is not None:
        return existing, 0
    body = for_wire(engine.pack.systems.get(target), payload, None)
    if chosen is not None:
        body[mapping.entity(target).key] = chosen
    try:
        return await engine.connector(target).create(mapping.entity(target).entity, body), 1
    except AlreadyExists:
        found = await find_by_natural_key(engine, mapping, target, payload)
        if found is None and chosen is not None:
            found = await recovery.by_chosen_id(engine, mapping, target, chosen)
        if found is None:
            raise
        return found, 0


async def _release(engine: SyncEngine, coupling: Coupling) -> None:
    """Drop our reservation after a failed create, so the next attempt does not wait for a dead worker."""
    with contextlib.suppress(ConcurrentUpdate):
        await engine.state.couplings.delete_coupling(coupling)


async def find_by_natural_key(engine: SyncEngine, mapping: TableMapping, side: Side,
                              payload: Mapping[str, Any]) -> Record | None:
    """The one uncoupled `side` record whose natural key equals the payload's, if the mapping has a key. A
    company-specific mapping's key starts with the company, so a record of another company never answers."""
    key = keys.natural_key(mapping, side, payload)
    if key is None:
        return None
    found: list[Record] = []
    async for page in engine.connector(side).list(mapping.entity(side).entity, filter=keys.key_filter(key),
                                                  select=engine.select(mapping, side), page_size=2):
        found.extend(page)
    if len(found) != 1:
        return None
    if await engine.state.couplings.find_coupling(mapping.name, side, found[0].id) is not None:
        return None
    return found[0]
