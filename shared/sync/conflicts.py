"""Settled conflicts as entries an operator can list and reverse (shared/state/conflicts.py keeps them).

`remember` stores what a merge settled, once its writes went through (a retried merge that never wrote
records nothing twice); `remember_deletion` stores a coupling a deletion rule removed. `reverse` undoes one
settled update conflict: the losing value is mapped onto the winning side and written there (If-Match), then
the pair is synced from that side through the engine's usual path, which carries the value to the losing side
and stores the coupling's new snapshot. Both sides end with the value that lost. It is refused, with the
reason, when the entry was reversed already, records a deletion, holds a redacted value, or the pair changed
since: the winner's field no longer holds the settled value, the records are gone or no longer coupled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.connectors import ConcurrencyConflict, Record
from shared.mapping import Conflict, Direction, Side, TableMapping, field_key, field_values, read_name, same
from shared.state import ConcurrentUpdate, ConflictEntry, Coupling
from shared.state.conflicts import UPDATE
from shared.sync import record as records
from shared.sync.context import RunContext
from shared.sync.expected import expected_for
from shared.sync.outcome import SyncResult
from shared.sync.wire import for_wire

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine

log = logging.getLogger(__name__)


class Refused(Exception):
    """A reversal that cannot be done as asked; `code`: AlreadyReversed, NotReversible or PairChanged."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Reversal:
    entry: ConflictEntry
    sync: SyncResult  # the sync that carried the value to the losing side (FAILED: the next sync will)


async def remember(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, pair: Mapping[Side, Record],
                   conflicts: Sequence[Conflict]) -> None:
    """Store one entry per settled conflict of `pair`; the log line names fields and entries, never values
    (values may be personal data, and logs are kept longer and read more widely than state)."""
    settled = [c for c in conflicts if c.winner is not None]
    if not settled:
        return
    policy = (ctx.conflict or mapping.conflict).value
    entries = await engine.state.conflicts.record_conflicts(
        mapping.name, erp_id=pair[Side.ERP].id, crm_id=pair[Side.CRM].id, conflicts=settled, policy=policy,
        job_id=ctx.job_id, now=engine.options.clock())
    log.info("conflict in %s %s/%s settled by policy %s: %s", mapping.name, pair[Side.ERP].id, pair[Side.CRM].id,
             policy, ", ".join(f"{e.field!r} for {e.winner.value if e.winner else '?'} (entry {e.entry_id})"
                               for e in entries))


async def remember_deletion(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, coupling: Coupling,
                            deleted: Side) -> None:
    """The deletion rule removed `coupling` and kept the record on the other side (reconcile reads this)."""
    await engine.state.conflicts.record_deletion(
        mapping.name, erp_id=coupling.erp_id or "", crm_id=coupling.crm_id or "", deleted=deleted,
        policy=mapping.deletion.value, job_id=ctx.job_id, now=engine.options.clock())


def _field(mapping: TableMapping, entry: ConflictEntry) -> str:
    """The read name of the entry's field on the losing side; refused when the mapping no longer carries it
    both ways."""
    for f in mapping.fields:
        if field_key(f) == entry.field and f.enabled and not f.sourceless \
                and mapping.field_direction(f) is Direction.BIDIRECTIONAL:
            name = read_name(mapping, f, Side(entry.winner or Side.ERP).other)
            if name:
                return name
    raise Refused("NotReversible", f"mapping '{mapping.name}' no longer syncs field {entry.field!r} both ways")


async def _pair(engine: SyncEngine, mapping: TableMapping, entry: ConflictEntry) -> dict[Side, Record]:
    coupling = await engine.state.couplings.find_coupling(mapping.name, Side.ERP, entry.erp_id or "")
    if coupling is None or coupling.pending or coupling.crm_id != entry.crm_id:
        raise Refused("PairChanged", f"ERP {entry.erp_id} and CRM {entry.crm_id} are no longer coupled in "
                                     f"'{mapping.name}'; nothing was written")
    pair = {}
    for side in Side:
        found = await records.get_or_none(engine.connector(side), mapping.entity(side).entity,
                                          coupling.id_of(side) or "", select=engine.select(mapping, side))
        if found is None:
            raise Refused("PairChanged", f"the {side.value} record {coupling.id_of(side)} no longer exists; "
                                         f"nothing was written")
        pair[side] = found
    return pair


async def reverse(engine: SyncEngine, entry_id: str) -> Reversal:
    """Give the entry's field the value that lost, on both sides; mark the entry reversed."""
    entry = await engine.state.conflicts.get_conflict(entry_id)
    if entry.kind != UPDATE:
        survivor = entry.winner or Side.ERP
        raise Refused("NotReversible", f"entry {entry_id} records a coupling removed by deletion rule "
                                       f"'{entry.policy}', not a value: recreate the deleted record with "
                                       f"`dualsync sync record -m {entry.mapping} -d to-{survivor.other.value} "
                                       f"--create {entry.erp_id if survivor is Side.ERP else entry.crm_id}`")
    if entry.reversed:
        raise Refused("AlreadyReversed", f"entry {entry_id} was reversed already")
    if not entry.exact:
        raise Refused("NotReversible", f"entry {entry_id} holds a value that was redacted when it was stored "
                                       f"(it looked like a secret); set field {entry.field!r} by hand")
    mapping = engine.mapping(entry.mapping)
    if not mapping.enabled:
        raise Refused("NotReversible", f"mapping '{mapping.name}' is disabled")
    winner = Side(entry.winner or Side.ERP)
    loser = winner.other
    name = _field(mapping, entry)
    pair = await _pair(engine, mapping, entry)
    key = entry.field or ""
    if not same(field_values(mapping, pair[winner].values, winner).get(key), entry.value(winner)):
        raise Refused("PairChanged", f"the {winner.value} value of {key!r} is no longer the one the conflict "
                                     f"settled (it changed since); nothing was written")
    # The losing side's record as it was, for this field: mapped onto the winner as a sync would map it.
    was = {**pair[loser].values, name: entry.value(loser)}
    exp = await expected_for(engine, RunContext(), mapping, Direction.from_source(loser), was, {key})
    if (failure := exp.failure({key})) is not None:
        raise Refused("NotReversible", f"the {loser.value} value of {key!r} cannot be mapped now: {failure.message}")
    if key not in exp.payload:
        raise Refused("NotReversible", f"the {loser.value} value of {key!r} maps to nothing on the {winner.value} side")
    payload = for_wire(engine.pack.systems.get(winner), exp.payload_for({key}), pair[winner].values)
    try:
        await engine.connector(winner).update(mapping.entity(winner).entity, pair[winner].id, payload,
                                              etag=pair[winner].etag)
    except ConcurrencyConflict:
        raise Refused("PairChanged", f"the {winner.value} record changed while the conflict was reversed; "
                                     f"nothing was written") from None
    try:
        entry = await engine.state.conflicts.mark_reversed(entry, now=engine.options.clock())
    except ConcurrentUpdate:
        raise Refused("AlreadyReversed", f"entry {entry_id} was reversed by someone else meanwhile") from None
    # The winner now differs from the snapshot and the loser does not: the sync carries it over (If-Match) and
    # stores the new snapshot. `force`: our own write would otherwise pass for an echo.
    result = await engine.sync_record(mapping, Direction.from_source(winner), pair[winner].id,
                                      trigger="conflict-reverse", create=False, force=True)
    log.info("conflict entry %s in %s reversed: %r now has the %s value on both sides (sync %s)", entry_id,
             mapping.name, key, loser.value, result.outcome.value)
    return Reversal(entry, result)
