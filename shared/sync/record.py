"""`sync_record` for one record: read the source now, then bring its pair in step (level-triggered).

The flow (ARCHITECTURE.md): integration-user echo → company (a company-specific record of a company this
deployment does not sync is ignored, with the reason) → filter → coupling (wait for or take over a pending
reservation) → create the counterpart idempotently, or read the counterpart and run the per-field three-way
merge against the coupling's snapshot → write with If-Match → store the new snapshot. A record or coupling
that changed under us is re-read and decided again; failures become results (and error records).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.connectors import (
    ConcurrencyConflict,
    Connector,
    ConnectorError,
    NotFound,
    RateLimited,
    Record,
    TransientError,
)
from shared.mapping import Direction, Side, Snapshot, TableMapping, field_values, matches, read_name, same
from shared.state import ConcurrentUpdate, Coupling, ErrorRecord
from shared.sync import companies, conflicts, create, deletes, lease
from shared.sync.context import RunContext
from shared.sync.errors import SyncFailure, UpdateConflict
from shared.sync.expected import expected_for
from shared.sync.failures import remember_failure
from shared.sync.outcome import Outcome, SyncResult
from shared.sync.plan import Expected, Plan, candidates, plan_sync
from shared.sync.wire import for_wire

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine

SUCCESS, FAILURE, RETRY = "success", "failure", "retry"
log = logging.getLogger(__name__)


async def sync_one(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, source_id: str,
                   record: Record | None = None) -> SyncResult:
    """Synchronise one source record and record the outcome (error record, coupling's last result).
    Never raises for a per-record problem: the result says what happened."""
    couplings = engine.state.couplings
    error: ErrorRecord | None = None
    looked = False
    result: SyncResult | None = None
    for attempt in range(engine.options.max_attempts):
        try:
            # The coupling first, every attempt: a sync holding the pair changes the coupling before it writes
            # either record (`shared.sync.lease`), so a record read after the coupling is at least as new as
            # what that sync knew. (A listed record was read before; `merge_and_write` reads it again before it
            # overwrites anything.) The first attempt may take it as this process last saw it: stale, the hold
            # (a compare-and-swap) fails and the next attempt reads it fresh (`shared.state.recent`).
            coupling = await couplings.find_coupling(mapping.name, flow.source, source_id,
                                                     recent=attempt == 0 and not ctx.force)
            if not looked:
                looked = True
                if may_have_error(ctx, flow, coupling):
                    error = await engine.state.errors.find_error(mapping.name, flow.value, source_id)
                if error is not None and error.skipped and not ctx.force:
                    return SyncResult(mapping.name, flow, source_id, Outcome.SKIPPED,
                                      destination_id=error.destination_id,
                                      message=f"skipped after repeated failures: {error.message}")
            if coupling is not None and lease.held(engine, coupling):
                # Before reading anything: the notice may be of the very write the holder is making (BC's
                # notice of our own write can arrive before our settlement), which the settled coupling names.
                coupling = await lease.await_release(engine, mapping, flow.source, coupling)
            if attempt == 0 and record is None and notice_synced(engine, ctx, flow, coupling):
                result = SyncResult(mapping.name, flow, source_id, Outcome.UNCHANGED,
                                    destination_id=coupling.id_of(flow.target) if coupling else None,
                                    message="the notice names the version last synced: our own write, or a "
                                            "duplicate")
                break
            result = await _reconcile(engine, ctx, mapping, flow, source_id, record, coupling)
            break
        except (ConcurrencyConflict, ConcurrentUpdate) as exc:
            # Another writer got in between: read everything again and decide again — both sides, whatever the
            # etags say (the two directions of one pair run in different sessions and may have crossed). What
            # we wrote before losing the race to store the coupling is ours, not a person's change.
            record = None
            ctx = dataclasses.replace(ctx, recheck=True, written=merge_written(ctx.written, exc))
        except SyncFailure as exc:
            result = _failed(mapping, flow, source_id, exc.message, exc.detail, exc.retryable, exc.destination_id)
            break
        except ConnectorError as exc:
            result = connector_failure(mapping, flow, source_id, exc)
            break
    if result is None:
        result = _failed(mapping, flow, source_id, "the record kept changing while it was synced", None, True)
    result.dependencies = list(ctx.dependencies)
    await remember_result(engine, ctx, mapping, flow, result, had_error=error is not None)
    return result


def may_have_error(ctx: RunContext, flow: Direction, coupling: Coupling | None) -> bool:
    """Whether the record's error record must be looked up. Every failure of a coupled record marks the
    coupling's last result for its direction (`remember_result`: FAILURE, or RETRY when transient), so a
    coupling whose last result is SUCCESS has none — the live path's common case costs no error lookup. An
    operator's retry and the retry timer (`force`, `create`) always look, which also clears an error record
    written without marking the coupling (a dead letter, a route's `otherwise: error`)."""
    if ctx.force or ctx.create or coupling is None or coupling.pending or coupling.skipped:
        return True
    return getattr(coupling, f"result_{flow.value}") != SUCCESS


def notice_synced(engine: SyncEngine, ctx: RunContext, flow: Direction, coupling: Coupling | None) -> bool:
    """The notice being processed names the source version the coupling says was synced last (and nothing
    else is pending on the pair): nothing to read. A later change has a notice of its own, and the modified
    sync catches one that got lost, so skipping this version's read loses nothing."""
    if ctx.marker is None or ctx.force or ctx.recheck or coupling is None or coupling.pending:
        return False
    if lease.held(engine, coupling) or coupling.intent or not succeeded(coupling):
        return False
    synced = coupling.modified_on(flow.source)
    try:
        named = dt.datetime.fromisoformat(ctx.marker)
    except ValueError:
        return False
    if synced is None or named.tzinfo is None:
        return False
    return named == synced


def _failed(mapping: TableMapping, flow: Direction, source_id: str, message: str, detail: str | None,
            retryable: bool, destination_id: str | None = None) -> SyncResult:
    return SyncResult(mapping.name, flow, source_id, Outcome.FAILED, destination_id=destination_id, message=message,
                      detail=detail, retryable=retryable)


def connector_failure(mapping: TableMapping, flow: Direction, source_id: str, exc: ConnectorError) -> SyncResult:
    """A request a service refused, or that failed past the retry budget (transient: retry later)."""
    if isinstance(exc, RateLimited | TransientError):
        return _failed(mapping, flow, source_id, f"service unavailable: {exc.message}", exc.detail, True)
    return _failed(mapping, flow, source_id, exc.message, exc.detail, False)


async def remember_result(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                          result: SyncResult, *, had_error: bool) -> None:
    """Every failure becomes an error record (`shared.sync.failures`): permanent ones also mark the coupling's
    last result (and are skipped after the same error twice); transient ones are recorded as such, never
    skipped, so a throttling storm parks nothing yet nothing it leaves behind is silent. A success clears the
    record's error."""
    errors = engine.state.errors
    if result.outcome is Outcome.FAILED:
        record = await remember_failure(engine, ctx, result)
        if record is None:
            return
        coupling = await engine.state.couplings.find_coupling(mapping.name, flow.source, result.source_id)
        if coupling is not None and not coupling.pending:
            # The coupling says its record has an error record (`may_have_error`); a transient one is RETRY,
            # which neither counts an attempt nor stops the etag shortcut (`succeeded`).
            setattr(coupling, f"result_{flow.value}", RETRY if result.retryable else FAILURE)
            if not result.retryable:
                coupling.attempts += 1
                coupling.skipped = record.skipped
            coupling.last_job_id = ctx.job_id or coupling.last_job_id
            with contextlib.suppress(ConcurrentUpdate):  # someone synced it meanwhile: their result stands
                await engine.state.couplings.update_coupling(coupling)
    elif had_error and (result.synced or ((ctx.force or ctx.create) and result.outcome is Outcome.IGNORED)):
        # In step; or an operator's retry found that a rule now leaves nothing to do (they removed the coupling,
        # the record left the filter, it is gone): the recorded error no longer describes the record. A pass
        # that ignores it only because it does not create (only coupled records) leaves the error for the
        # retry, which creates.
        await errors.delete_error(mapping.name, flow.value, result.source_id)


async def get_or_none(connector: Connector, entity: str, record_id: str, *,
                      select: list[str] | None = None) -> Record | None:
    try:
        return await connector.get(entity, record_id, select=select)
    except NotFound:
        return None


async def _reconcile(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, source_id: str,
                     record: Record | None, coupling: Coupling | None) -> SyncResult:
    """`coupling` as read just now, before `record` unless the record was listed."""
    source = flow.source
    listed = record is not None  # read with a page of a listing, maybe a while ago (full / modified sync)
    if record is None:
        record = await get_or_none(engine.connector(source), mapping.entity(source).entity, source_id,
                                   select=engine.select(mapping, source))
        if record is None:
            return await deletes.source_gone(engine, ctx, mapping, flow, source_id)
    if not ctx.force and not ctx.recheck and engine.options.is_integration_user(source, record.modified_by):
        return SyncResult(mapping.name, flow, source_id, Outcome.UNCHANGED,
                          message="last changed by the integration user: an echo of our own write")
    if (why := await companies.outside(engine, ctx, mapping, source, record.values)) is not None:
        return SyncResult(mapping.name, flow, source_id, Outcome.IGNORED, message=f"not synced: {why}")
    if not matches(mapping, record.values, source):
        return SyncResult(mapping.name, flow, source_id, Outcome.IGNORED, message="outside the mapping's filter")
    # An earlier attempt may have created the counterpart without coupling it (crashed, or its answer was
    # lost): a reservation it left, or the failure it recorded, says since when to look for its record.
    earlier = coupling.reserved_at if coupling is not None and coupling.pending else None
    if coupling is not None and coupling.pending:
        coupling = await create.await_reservation(engine, mapping, source, coupling)
    if coupling is None or coupling.pending:
        if earlier is None and (error := await engine.state.errors.find_error(mapping.name, flow.value,
                                                                             source_id)) is not None:
            earlier = error.first_seen
        return await create.create_counterpart(engine, ctx, mapping, flow, record, reserved=coupling,
                                               earlier=earlier)
    return await update_pair(engine, ctx, mapping, flow, record, coupling, listed=listed)


def merge_written(earlier: dict[Side, dict[str, Any]], exc: Exception) -> dict[Side, dict[str, Any]]:
    """The field values this sync wrote, so far (attached to the `ConcurrentUpdate` that lost the coupling)."""
    return union(earlier, getattr(exc, "written", None) or {})


def union(first: dict[Side, dict[str, Any]], then: dict[Side, dict[str, Any]]) -> dict[Side, dict[str, Any]]:
    """Per side, the fields of both (`then` wins for a field in both)."""
    return {side: {**first.get(side, {}), **then.get(side, {})} for side in {*first, *then}}


def with_own_writes(base: Snapshot | None, written: dict[Side, dict[str, Any]],
                    values: dict[Side, dict[str, Any]]) -> Snapshot | None:
    """The base of a merge retried after our coupling update lost a race: a field that still holds the value we
    wrote counts as synced on that side (else our own write would look like a person's change and, with the
    policy on its side, overwrite the change the other writer was carrying)."""
    if base is None or not written:
        return base
    sides = {side: dict(base.side(side)) for side in Side}
    for side, fields in written.items():
        for key, value in fields.items():
            if same(values[side].get(key), value):
                sides[side][key] = value
    return Snapshot(erp=sides[Side.ERP], crm=sides[Side.CRM])


def succeeded(coupling: Coupling) -> bool:
    return FAILURE not in (coupling.result_to_crm, coupling.result_to_erp)


async def update_pair(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, record: Record,
                      coupling: Coupling, *, listed: bool = False) -> SyncResult:
    """The source record is coupled: read its counterpart and bring both in step."""
    source, target = flow.source, flow.target
    target_id = coupling.id_of(target)
    assert target_id is not None
    if (not ctx.force and not ctx.recheck and record.etag is not None and record.etag == coupling.etag(source)
            and succeeded(coupling)):
        # The source is exactly as we last synced (or wrote) it: nothing to carry from it.
        return SyncResult(mapping.name, flow, record.id, Outcome.UNCHANGED, destination_id=target_id,
                          message="unchanged since the last sync")
    counterpart = await get_or_none(engine.connector(target), mapping.entity(target).entity, target_id,
                                    select=engine.select(mapping, target))
    if counterpart is None:
        if coupling.recent:  # a deletion rule acts on a fresh coupling only (`shared.state.recent`)
            raise ConcurrentUpdate(f"counterpart {target_id!r} is gone: reading the coupling again")
        return await deletes.counterpart_gone(engine, ctx, mapping, flow, record, coupling)
    return await merge_and_write(engine, ctx, mapping, flow, coupling, {source: record, target: counterpart},
                                 listed=listed)


@dataclass
class PairPlan:
    """What the three-way merge of a coupled pair decided: `plan` says which fields each side receives;
    `expected` what each side should hold (the payloads). Shared by the live path (`merge_and_write`) and the
    bulk path (`shared.sync.pipeline`), so the two cannot decide differently."""

    records: dict[Side, Record]
    expected: dict[Side, Expected]
    plan: Plan

    def intent(self) -> dict[Side, dict[str, Any]]:
        """What each written side will hold, per field, as that side reads it back (`lease`'s intent)."""
        return {side: {k: self.expected[side].values.get(k) for k in self.plan.push[side]}
                for side in self.plan.writes}

    def payload(self, engine: SyncEngine, side: Side) -> dict[str, Any]:
        """The body that writes `side`'s share of the plan, as `side`'s API takes it."""
        return for_wire(engine.pack.systems.get(side), self.expected[side].payload_for(self.plan.push[side]),
                        self.records[side].values)


async def plan_pair(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                    coupling: Coupling, records: dict[Side, Record]) -> PairPlan:
    """Map both records, merge them against the coupling's snapshot and decide what each side must receive.
    Reads nothing but the lookups the changed fields need (through the run's cache). Raises `UpdateConflict`
    for a conflict the policy leaves to an operator, and the `SyncFailure` of a field that must be written but
    cannot be mapped."""
    source, target = flow.source, flow.target
    values = {side: field_values(mapping, records[side].values, side) for side in Side}
    # Values written by this sync's earlier attempt, or by any holder that did not settle (its intent):
    # a field holding exactly such a value is ours, not a person's change.
    written = union(lease.intended(coupling), ctx.written)
    base = with_own_writes(Snapshot(**coupling.snapshot) if coupling.snapshot else None, written, values)
    keys = candidates(mapping, base, values)
    expected: dict[Side, Expected] = {}
    # A first sync (no base) goes one way: what the source side "should" hold is not needed.
    sides = (target, source) if base is not None else (target,)
    for side in sides if keys else ():
        towards = Direction.from_source(side.other)
        if mapping.direction.allows(towards):
            expected[side] = await expected_for(engine, ctx, mapping, towards, records[side.other].values, keys)
    modified = {side: records[side].modified_on for side in Side}
    plan = plan_sync(mapping, source, base=base, values=values, expected=expected, keys=keys,
                     policy=ctx.conflict, modified=modified)
    if plan.unresolved:
        listed = "; ".join(f"'{c.field}': ERP {c.erp!r}, CRM {c.crm!r} (last synced {c.base!r})"
                           for c in plan.unresolved)
        raise UpdateConflict(f"update conflict: both sides changed {listed}; conflict policy "
                             f"'{(ctx.conflict or mapping.conflict).value}' leaves it to an operator",
                             destination_id=records[target].id)
    for side in Side:
        if (failure := expected[side].failure(plan.errors[side]) if side in expected else None) is not None:
            failure.destination_id = records[target].id
            raise failure
    return PairPlan(dict(records), expected, plan)


def raced_write(written: Record, after: Record) -> bool:
    """The read-back after our write found a newer version: someone edited the record right after it."""
    return written.etag is not None and after.etag not in (None, written.etag)


def settlement(mapping: TableMapping, coupling: Coupling, planned: PairPlan, after: dict[Side, Record],
               raced: set[Side]) -> tuple[dict[str, dict], bool]:
    """The snapshot to store once the plan's writes went through, and whether the coupling must be written
    (anything written, or its snapshot, etags or last result differ). A raced side's values must not become
    the snapshot (their edit would look synced and never travel): the values we wrote over are kept, and no
    etag (`after` is changed so), so the next sync sees that side changed and merges it."""
    records = planned.records
    snapshot = {side.value: field_values(mapping, (records if side in raced else after)[side].values, side)
                for side in Side}
    for side in raced:
        after[side] = dataclasses.replace(after[side], etag=None)
    # An intent left by a holder that did not settle was merged on: the settlement replaces it (left there, it
    # would count a person's later edit to that very value as ours).
    stale = (bool(planned.plan.writes) or snapshot != coupling.snapshot or not succeeded(coupling)
             or coupling.intent is not None or any(after[s].etag != coupling.etag(s) for s in Side))
    return snapshot, stale


def partial_snapshot(mapping: TableMapping, coupling: Coupling, planned: PairPlan,
                     ours: dict[Side, dict[str, Any]]) -> dict[str, dict]:
    """The coupling's snapshot with the fields one side received marked as synced on both sides: the value we
    wrote on that side, and on the other the value it held when we read it (the value we carried over)."""
    snapshot = {s.value: dict((coupling.snapshot or {}).get(s.value, {})) for s in Side}
    for side, fields in ours.items():
        other = field_values(mapping, planned.records[side.other].values, side.other)
        for key, value in fields.items():
            snapshot[side.value][key] = value
            snapshot[side.other.value][key] = other.get(key, value)
    return snapshot


def own_writes(planned: PairPlan, snapshot: dict[str, dict], raced: set[Side]) -> dict[Side, dict[str, Any]]:
    """What a merge wrote and saw settle, per side: carried by the `ConcurrentUpdate` that lost the coupling."""
    return {side: snapshot[side.value] for side in planned.plan.writes if side not in raced}


def merged(mapping: TableMapping, flow: Direction, planned: PairPlan) -> SyncResult:
    """The result of a settled merge: MODIFIED when anything was written, else UNCHANGED."""
    records, plan = planned.records, planned.plan
    return SyncResult(mapping.name, flow, records[flow.source].id,
                      Outcome.MODIFIED if plan.writes else Outcome.UNCHANGED, destination_id=records[flow.target].id,
                      writes=len(plan.writes), conflicts=plan.conflicts)


async def merge_and_write(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                          coupling: Coupling, records: dict[Side, Record], *, listed: bool = False) -> SyncResult:
    """Three-way merge of a coupled pair against the coupling's snapshot; write what each side must receive
    (If-Match), then store the new snapshot. Returns MODIFIED when anything was written, else UNCHANGED."""
    source, target = flow.source, flow.target
    planned = await plan_pair(engine, ctx, mapping, flow, coupling, records)
    plan = planned.plan
    if listed and target in plan.writes:
        # The source came with a page read a while ago; its values are about to overwrite the target (guarded by
        # the target's etag only). Stale, they would undo a change made since: check, and decide again if so.
        now = await get_or_none(engine.connector(source), mapping.entity(source).entity, records[source].id,
                                select=engine.select(mapping, source))
        if now is None or now.etag != records[source].etag:
            raise ConcurrencyConflict(f"the {source.value} record changed since it was listed")
    if plan.writes:
        # ConcurrentUpdate if another sync got in: decide again
        coupling = await lease.hold(engine, coupling, planned.intent())
    after = dict(records)
    raced: set[Side] = set()
    done: list[Side] = []
    try:
        for side in plan.writes:
            written = await engine.connector(side).update(mapping.entity(side).entity, records[side].id,
                                                          planned.payload(engine, side), etag=records[side].etag)
            after[side] = await settled(engine, mapping, side, written)
            if raced_write(written, after[side]):
                raced.add(side)
            done.append(side)
    except BaseException as exc:
        # One side was written, the other refused (changed meanwhile, or the service failed): what we wrote is
        # ours, not a person's change. Keep it in the snapshot (and on the exception, for this sync's retry),
        # else the next merge would take our write for an edit and could push it over a newer one.
        ours = {side: {k: field_values(mapping, after[side].values, side).get(k) for k in plan.push[side]}
                for side in done if side not in raced}
        if ours and isinstance(exc, Exception):
            if coupling.snapshot is not None:  # a first sync has no base to amend: its retry carries `written`
                coupling.snapshot = partial_snapshot(mapping, coupling, planned, ours)
            exc.written = union(getattr(exc, "written", None) or {}, ours)  # type: ignore[attr-defined]
        await lease.let_go(engine, coupling)  # a failed write must not keep others waiting for the hold
        raise
    snapshot, stale = settlement(mapping, coupling, planned, after, raced)
    if stale:
        stamp(engine, ctx, coupling, snapshot, after)
        try:
            await engine.state.couplings.update_coupling(coupling)
        except ConcurrentUpdate as exc:
            exc.written = own_writes(planned, snapshot, raced)  # type: ignore[attr-defined]
            raise
    # Stored once the settlement is written: a merge retried after a concurrent change records nothing twice.
    await conflicts.remember(engine, ctx, mapping, after, plan.conflicts)
    return merged(mapping, flow, planned)


def stamp(engine: SyncEngine, ctx: RunContext, coupling: Coupling, snapshot: dict[str, dict],
          after: dict[Side, Record]) -> None:
    """Put a successful sync's state on the coupling (the caller writes it, which also releases the pair)."""
    lease.release(coupling)
    coupling.intent = None  # settled: the snapshot now says what each side holds
    coupling.snapshot = snapshot
    for side in Side:
        coupling.record_synced(side, modified_on=_aware(after[side].modified_on), etag=after[side].etag)
    coupling.result_to_crm = coupling.result_to_erp = SUCCESS
    coupling.skipped, coupling.attempts = False, 0
    coupling.last_job_id = ctx.job_id or coupling.last_job_id
    coupling.synced_at = engine.options.clock()


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


async def settled(engine: SyncEngine, mapping: TableMapping, side: Side, written: Record) -> Record:
    """The record as it is after our write: the write's answer when it carries every mapped field (BC PATCH,
    Dataverse `return=representation`), else read back, so the snapshot holds what the side really holds
    (normalised by the service) and our own write comes back as no change."""
    if carries_mapped(mapping, side, written):
        return written
    return await engine.connector(side).get(mapping.entity(side).entity, written.id,
                                            select=engine.select(mapping, side))


def carries_mapped(mapping: TableMapping, side: Side, written: Record) -> bool:
    """A write's answer holds every field the mapping reads on `side`: it can stand for a read-back."""
    names = {read_name(mapping, f, side) for f in mapping.fields if f.enabled and not f.sourceless}
    return all(n in written.values for n in names if n)
