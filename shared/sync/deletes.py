"""Deleted records. A source record that is gone follows the mapping's deletion policy; a coupled counterpart
that is gone is a deletion conflict (restore / remove coupling / error). `plan.decide_deletion` decides; this
module carries it out."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from shared.connectors import ConcurrencyConflict, Record
from shared.mapping import Direction, Side, TableMapping
from shared.state import Coupling
from shared.sync import conflicts, create
from shared.sync import record as rec
from shared.sync.context import RunContext
from shared.sync.errors import DeletionConflict
from shared.sync.outcome import Outcome, SyncResult
from shared.sync.plan import DeletionAction, decide_deletion

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


async def source_gone(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                      source_id: str) -> SyncResult:
    """The source record does not exist (any more)."""
    coupling = await engine.state.couplings.find_coupling(mapping.name, flow.source, source_id)
    if coupling is None or coupling.pending:
        return SyncResult(mapping.name, flow, source_id, Outcome.IGNORED,
                          message=f"the {flow.source.value} record does not exist and is not coupled")
    return await _apply(engine, ctx, mapping, flow, coupling, deleted=flow.source, survivor=None)


async def counterpart_gone(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                           record: Record, coupling: Coupling) -> SyncResult:
    """The coupled destination record does not exist any more; `record` is the source, still there."""
    return await _apply(engine, ctx, mapping, flow, coupling, deleted=flow.target, survivor=record)


async def _reported_from_the_other_side(engine: SyncEngine, mapping: TableMapping, flow: Direction,
                                        coupling: Coupling) -> str | None:
    """The error id under which the other direction already reports this pair's deletion conflict, if any."""
    other_flow, other_id = Direction.from_source(flow.target), coupling.id_of(flow.target) or ""
    twin = await engine.state.errors.find_error(mapping.name, other_flow.value, other_id)
    if twin is not None and twin.message.startswith("deletion conflict"):
        return twin.error_id
    return None


async def _apply(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, coupling: Coupling,
                 *, deleted: Side, survivor: Record | None) -> SyncResult:
    source_id = coupling.id_of(flow.source) or ""
    other = deleted.other
    other_id = coupling.id_of(other)
    assert other_id is not None
    action, why = decide_deletion(mapping, deleted)
    result = SyncResult(mapping.name, flow, source_id, Outcome.UNCOUPLED, destination_id=coupling.id_of(flow.target),
                        message=why)
    couplings = engine.state.couplings
    if action is DeletionAction.FAIL:
        if (twin := await _reported_from_the_other_side(engine, mapping, flow, coupling)) is not None:
            # One deletion, one error: the pass from the other side (the catch-up reads both) already has it.
            result.outcome, result.message = Outcome.IGNORED, f"{why} — on record as error {twin}"
            return result
        raise DeletionConflict(why, destination_id=coupling.id_of(flow.target))
    if action is DeletionAction.REMOVE_COUPLING:
        await couplings.delete_coupling(coupling)
        await conflicts.remember_deletion(engine, ctx, mapping, coupling, deleted)  # reconcile tells it apart
        return result
    if action is DeletionAction.DELETE_OTHER:
        try:
            # Guarded by the etag we last synced: a survivor changed since then is not silently deleted.
            await engine.connector(other).delete(mapping.entity(other).entity, other_id, etag=coupling.etag(other))
        except ConcurrencyConflict:
            raise DeletionConflict(f"deletion conflict: the {deleted.value} record was deleted, but the coupled "
                                   f"{other.value} record {other_id!r} changed since the last sync; it was not "
                                   f"deleted", destination_id=coupling.id_of(flow.target)) from None
        await couplings.delete_coupling(coupling)
        result.outcome, result.writes = Outcome.DELETED, 1
        return result
    # RESTORE: recreate the deleted record from the survivor and couple the new pair.
    if survivor is None:
        survivor = await rec.get_or_none(engine.connector(other), mapping.entity(other).entity, other_id,
                                         select=engine.select(mapping, other))
        if survivor is None:
            await couplings.delete_coupling(coupling)
            result.message = "both records are gone; the coupling is removed"
            return result
    await couplings.delete_coupling(coupling)
    restore_ctx = dataclasses.replace(ctx, create=True)
    created = await create.create_counterpart(engine, restore_ctx, mapping, Direction.from_source(other), survivor,
                                              reserved=None)
    result.outcome, result.writes = created.outcome, created.writes
    result.destination_id = created.destination_id if flow.target is deleted else other_id
    result.message = f"{why} (new id {created.destination_id})"
    return result
