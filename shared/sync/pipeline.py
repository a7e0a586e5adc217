"""Coupled records of a page in bulk (issue 12): stages over the page instead of a loop over the one-record path.

    the page's error records, one query  →  triage, no request: skipped / echo / unchanged / changed / unusual
    → changed: the counterparts read in bulk (`get_many`), the sources read again in bulk (the values planned
      are fresh: this replaces the live path's re-read of a listed record before it overwrites the target)
    → each pair planned by `record.plan_pair`, the live path's own merge, so the two cannot drift apart
    → the pairs to write held in bulk (`shared.sync.lease`: no other sync merges against our unrecorded writes)
    → each side's writes in `write_batch` requests, If-Match the etag just read, then read back in bulk where
      an answer lacks mapped fields; the ERP side first (a refused ERP write stops that pair's CRM write, as in
      the live path) → couplings stored in bulk → results.

An unchanged page therefore costs one error query (its couplings come with the page, `page_couplings`) and no
API call at all; a changed record costs its share of two reads and one write request per chunk.

Anything unusual goes to the proven per-record path (`record.sync_one`) for that record only, with the same
context the live path would have at that point: a pending or reserved coupling, a company rule, a counterpart
or source gone (deletion rules), a record that left the filter, an unresolved conflict, a field that cannot be
mapped, a lookup whose dependency is not coupled (the live path syncs it first), a pair another sync holds, a
hold lost to another sync, any write the batch did not apply — a 412, a refused value, throttling past the
retries — (the fields already written recorded as synced, the hold let go, then decided again on fresh reads:
`recheck`), a lost race storing the coupling (`recheck`, and what was written counts as synced:
`with_own_writes`). The per-record path then ends the record exactly as it would have: its result, error record
and coupling.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.connectors import ConnectorError, Record, WriteOp, WriteResult
from shared.mapping import Direction, Side, TableMapping, field_values, matches
from shared.state import ConcurrentUpdate, Coupling, ErrorRecord
from shared.sync import companies, conflicts, lease
from shared.sync import record as rec
from shared.sync.context import RunContext
from shared.sync.match import bounded
from shared.sync.outcome import Outcome, SyncResult

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


async def page_couplings(engine: SyncEngine, mapping: TableMapping, side: Side,
                         ids: Sequence[str]) -> dict[str, Coupling]:
    """The couplings of a page's records, by id: one range query when the page comes in row-key order."""
    return await engine.state.couplings.find_page(mapping.name, side, ids)


async def store_couplings(engine: SyncEngine, couplings: Sequence[Coupling]) -> list[Coupling | Exception]:
    """Write many couplings back (each guarded by its row's ETag) in entity-group transactions; one answer per
    coupling, in order: the written coupling, or the `ConcurrentUpdate` (or other error) that refused it."""
    return await engine.state.couplings.update_many(couplings) if couplings else []


@dataclass
class Redo:
    """A record for the per-record path: `record` as read (None: read it again), `recheck` after a concurrent
    change, with the values already `written` (what the live path's retry carries)."""

    source_id: str
    record: Record | None
    recheck: bool = False
    written: dict[Side, dict[str, Any]] = field(default_factory=dict)


@dataclass(eq=False)  # by identity: pairs are kept in sets
class Pair:
    """One changed coupled record on its way through the stages."""

    record: Record  # the source as listed, then as read again
    coupling: Coupling
    had_error: bool
    records: dict[Side, Record] = field(default_factory=dict)
    planned: rec.PairPlan | None = None
    after: dict[Side, Record] = field(default_factory=dict)
    raced: set[Side] = field(default_factory=set)
    done: list[Side] = field(default_factory=list)  # sides written and settled


@dataclass
class Stages:
    """What the stages decided so far: final results, results still to be remembered (error records), and
    records for the per-record path."""

    results: list[SyncResult] = field(default_factory=list)
    redo: list[Redo] = field(default_factory=list)
    remember: list[tuple[SyncResult, bool]] = field(default_factory=list)  # results whose error record may change


async def sync_coupled(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                       coupled: Sequence[tuple[Record, Coupling]]) -> list[SyncResult]:
    """Bring a page's coupled records in step; one result per record, as `sync_in_context` gives each."""
    if not coupled:
        return []
    out = Stages()
    errors = await engine.state.errors.find_errors(mapping.name, flow.value, [r.id for r, _ in coupled])
    changed: list[Pair] = []
    for r, c in coupled:
        verdict = await triage(engine, ctx, mapping, flow, r, c, errors.get(r.id))
        if isinstance(verdict, SyncResult):
            if verdict.outcome is Outcome.SKIPPED:
                out.results.append(verdict)  # as the live path: a skipped record's error stays as it is
            else:
                out.remember.append((verdict, r.id in errors))
        elif verdict is None:
            changed.append(Pair(r, c, r.id in errors))
        else:
            out.redo.append(verdict)
    pairs = await read_pairs(engine, ctx, mapping, flow, changed, out)
    pairs = await plan_pairs(engine, ctx, mapping, flow, pairs, out)
    pairs = await hold(engine, pairs, out)
    try:
        for p in pairs:
            p.after = dict(p.records)
        for side in (Side.ERP, Side.CRM):
            pairs = await write_side(engine, mapping, side, pairs, out)
        await store(engine, ctx, mapping, flow, pairs, out)
    except BaseException as exc:
        # Interrupted while holding pairs (a cancelled run, a store that failed): let them go, as the live path
        # does, so no sync waits for a hold nobody will settle; an error (not a cancellation) also records what
        # was written. A pair already stored refuses the let-go (its ETag moved on): nothing is undone.
        await give_up(engine, mapping, set(pairs), out, amend=isinstance(exc, Exception))
        raise
    finished = await bounded(engine.options.concurrency, (_remember(engine, ctx, mapping, flow, r, had)
                                                          for r, had in out.remember))
    redone = await bounded(engine.options.concurrency, (_redo(engine, ctx, mapping, flow, r) for r in out.redo))
    return [*out.results, *finished, *redone]


async def triage(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, record: Record,
                 coupling: Coupling, error: ErrorRecord | None) -> SyncResult | Redo | None:
    """The live path's shortcuts, in its order (`sync_one`, `_reconcile`, `update_pair`), on the listed record
    and the page's coupling: a result, a `Redo` for the per-record path, or None (changed: merge it)."""
    source, target = flow.source, flow.target
    if error is not None and error.skipped and not ctx.force:
        return SyncResult(mapping.name, flow, record.id, Outcome.SKIPPED, destination_id=error.destination_id,
                          message=f"skipped after repeated failures: {error.message}")
    if not ctx.force and not ctx.recheck and engine.options.is_integration_user(source, record.modified_by):
        return SyncResult(mapping.name, flow, record.id, Outcome.UNCHANGED,
                          message="last changed by the integration user: an echo of our own write")
    if coupling.pending or lease.held(engine, coupling) or not _inside(mapping, source, record) \
            or await companies.outside(engine, ctx, mapping, source, record.values) is not None:
        # It waits for the reservation or for the sync holding the pair, or says which rule leaves it out.
        return Redo(record.id, record)
    if (not ctx.force and not ctx.recheck and record.etag is not None and record.etag == coupling.etag(source)
            and rec.succeeded(coupling)):
        return SyncResult(mapping.name, flow, record.id, Outcome.UNCHANGED, destination_id=coupling.id_of(target),
                          message="unchanged since the last sync")
    return None


def _inside(mapping: TableMapping, side: Side, record: Record) -> bool:
    return matches(mapping, record.values, side)


async def read_many(engine: SyncEngine, mapping: TableMapping, side: Side, ids: Sequence[str]) -> dict[str, Record]:
    """The records of `side` that `ids` name and that exist now, in bulk where the connector can (`get_many`),
    else one GET each."""
    connector, entity, select = engine.connector(side), mapping.entity(side).entity, engine.select(mapping, side)
    if not ids:
        return {}
    get_many = getattr(connector, "get_many", None)
    if get_many is not None:
        return await get_many(entity, list(ids), select=select)
    found = await bounded(engine.options.concurrency,
                          (rec.get_or_none(connector, entity, i, select=select) for i in ids))
    return {i: r for i, r in zip(ids, found, strict=True) if r is not None}


async def read_pairs(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                     pairs: list[Pair], out: Stages) -> list[Pair]:
    """Counterparts, then the sources again (fresh values to plan with). A counterpart gone is a deletion,
    a source gone or changed out of scope is decided by the per-record path."""
    source, target = flow.source, flow.target
    try:
        counterparts = await read_many(engine, mapping, target, [p.coupling.id_of(target) or "" for p in pairs])
    except ConnectorError:  # the read as a whole failed (throttled past its retries, refused): record by record
        out.redo += [Redo(p.record.id, p.record) for p in pairs]
        return []
    present = []
    for p in pairs:
        other = counterparts.get(p.coupling.id_of(target) or "")
        if other is None:
            out.redo.append(Redo(p.record.id, p.record))  # the deletion rules
        else:
            p.records[target] = other
            present.append(p)
    try:
        fresh = await read_many(engine, mapping, source, [p.record.id for p in present])
    except ConnectorError:
        out.redo += [Redo(p.record.id, p.record) for p in present]
        return []
    kept = []
    for p in present:
        now = fresh.get(p.record.id)
        if now is None:
            out.redo.append(Redo(p.record.id, None))  # deleted since it was listed
        elif not _inside(mapping, source, now) \
                or await companies.outside(engine, ctx, mapping, source, now.values) is not None:
            out.redo.append(Redo(p.record.id, now))
        else:
            p.record = p.records[source] = now
            kept.append(p)
    return kept


async def plan_pairs(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                     pairs: list[Pair], out: Stages) -> list[Pair]:
    """`record.plan_pair` for every pair. Lookups resolve through existing couplings only: a dependency that
    is not coupled sends the record to the per-record path, which syncs it first; so do conflicts left to an
    operator and fields that cannot be mapped (it records them exactly as it always has)."""
    # At the depth limit nothing is synced first: planning reads, it does not create.
    planning = dataclasses.replace(ctx.for_record(), depth=engine.options.max_dependency_depth)

    async def one(p: Pair) -> bool:
        try:
            p.planned = await rec.plan_pair(engine, planning, mapping, flow, p.coupling, p.records)
        except Exception:  # the per-record path meets it again, and ends it (or raises) its own way
            return False
        return not any(e.unresolved for e in p.planned.expected.values())

    kept = []
    for p, ok in zip(pairs, await bounded(engine.options.concurrency, (one(p) for p in pairs)), strict=True):
        if ok:
            kept.append(p)
        else:
            out.redo.append(Redo(p.record.id, p.record))
    return kept


async def hold(engine: SyncEngine, pairs: list[Pair], out: Stages) -> list[Pair]:
    """Hold every pair about to be written, as `lease.hold` does for one (a compare-and-swap of the coupling the
    page read, before the records that are merged were read): a pair another sync stored or holds since is
    decided again by the per-record path, as the live path's retry after `ConcurrentUpdate`."""
    writing = [p for p in pairs if p.planned is not None and p.planned.plan.writes]
    taken = [lease.taking(engine, p.coupling, p.planned.intent()) for p in writing]  # type: ignore[union-attr]
    lost: set[Pair] = set()
    for p, answer in zip(writing, await store_couplings(engine, taken), strict=True):
        if isinstance(answer, Coupling):
            p.coupling = answer
        else:
            lost.add(p)
            out.redo.append(Redo(p.record.id, None, recheck=True))
    return [p for p in pairs if p not in lost]


async def write_side(engine: SyncEngine, mapping: TableMapping, side: Side, pairs: list[Pair],
                     out: Stages) -> list[Pair]:
    """Send every write `side` receives in `write_batch` requests, each guarded by the etag its pair read, and
    settle them (`read_back`). Returns the pairs still going (those with nothing for `side` included)."""
    sending = [p for p in pairs if p.planned is not None and side in p.planned.plan.writes]
    if not sending:
        return pairs
    entity = mapping.entity(side).entity
    ops = [WriteOp("update", entity, p.planned.payload(engine, side), id=p.records[side].id,  # type: ignore[union-attr]
                   etag=p.records[side].etag, ref=p.record.id) for p in sending]
    try:
        answers = await engine.connector(side).write_batch(ops)
    except ConnectorError as exc:
        answers = [WriteResult(op, error=exc) for op in ops]
    # A 412 (someone changed the record since it was read), a refused value, a record gone, throttling past the
    # batch's retries, an operation the batch never reached: the per-record path decides again on fresh reads,
    # with its own retries, and ends it as it would have.
    failed = {p for p, answer in zip(sending, answers, strict=True) if not answer.ok}
    written = {p: _written(answer) for p, answer in zip(sending, answers, strict=True) if answer.ok}
    failed |= await read_back(engine, mapping, side, written)
    await give_up(engine, mapping, failed, out)
    for p in written:
        if p not in failed:
            p.done.append(side)
    return [p for p in pairs if p not in failed]


def _written(answer: WriteResult) -> Record:
    """The written record as the batch answered it; an answer without one is read back (no etag to trust)."""
    if answer.record is not None:
        return answer.record
    return Record(answer.op.entity, answer.op.id or "", {})


async def read_back(engine: SyncEngine, mapping: TableMapping, side: Side, written: dict[Pair, Record]) -> set[Pair]:
    """`side` of each pair as it is after our write: the write's answer when it carries every mapped field, else
    read back (in bulk), as `record.settled` does for one record; a read-back that found a newer version is
    `raced`. Returns the pairs whose record could not be read back (gone right after our write, or the read
    failed): the per-record path decides those."""
    short = [p for p, w in written.items() if not rec.carries_mapped(mapping, side, w)]
    try:
        again = await read_many(engine, mapping, side, [written[p].id for p in short])
    except ConnectorError:
        again = {}
    lost: set[Pair] = set()
    for p, w in written.items():
        now = again.get(w.id) if p in short else w
        if now is None:
            lost.add(p)
            continue
        p.after[side] = now
        if rec.raced_write(w, now):
            p.raced.add(side)
    return lost


async def give_up(engine: SyncEngine, mapping: TableMapping, failed: set[Pair], out: Stages, *,
                  amend: bool = True) -> None:
    """Pairs a write (or its read-back) did not settle, as the live path leaves them (`merge_and_write`): the
    fields already written to the other side recorded as synced in the snapshot, the hold let go (best effort:
    else it goes stale), and the record decided again on fresh reads by the per-record path — its retry after a
    `ConcurrencyConflict` (`recheck`), carrying what was written."""
    for p in failed:
        assert p.planned is not None
        ours = {side: {k: field_values(mapping, p.after[side].values, side).get(k) for k in p.planned.plan.push[side]}
                for side in p.done if side not in p.raced}
        if amend and ours and p.coupling.snapshot is not None:  # a first sync has no base: the redo carries it
            p.coupling.snapshot = rec.partial_snapshot(mapping, p.coupling, p.planned, ours)
        lease.release(p.coupling)
        out.redo.append(Redo(p.record.id, None, recheck=True, written=ours))
    with contextlib.suppress(Exception):
        await store_couplings(engine, [p.coupling for p in failed])


async def store(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, pairs: list[Pair],
                out: Stages) -> None:
    """Store the new snapshots in bulk (where anything changed), then the settled conflicts and results."""
    stale: list[tuple[Pair, dict[str, dict]]] = []
    for p in pairs:
        assert p.planned is not None
        snapshot, changed = rec.settlement(mapping, p.coupling, p.planned, p.after, p.raced)
        if changed:
            rec.stamp(engine, ctx, p.coupling, snapshot, p.after)
            stale.append((p, snapshot))
    answers = await store_couplings(engine, [p.coupling for p, _ in stale])
    lost: set[Pair] = set()
    for (p, snapshot), answer in zip(stale, answers, strict=True):
        if isinstance(answer, Exception):
            # Another writer stored the coupling first: decide again on fresh reads, counting what we wrote
            # as synced (the live path's retry after `ConcurrentUpdate`).
            assert p.planned is not None
            written = rec.own_writes(p.planned, snapshot, p.raced) if isinstance(answer, ConcurrentUpdate) else {}
            out.redo.append(Redo(p.record.id, None, recheck=True, written=written))
            lost.add(p)
    for p in pairs:
        if p in lost:
            continue
        assert p.planned is not None
        await conflicts.remember(engine, ctx, mapping, p.after, p.planned.plan.conflicts)
        out.remember.append((rec.merged(mapping, flow, p.planned), p.had_error))


async def _remember(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                    result: SyncResult, had_error: bool) -> SyncResult:
    """The live path's bookkeeping of a result: a failure's error record, a success clearing an old one."""
    await rec.remember_result(engine, ctx.for_record(), mapping, flow, result, had_error=had_error)
    return result


async def _redo(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, redo: Redo) -> SyncResult:
    one = ctx.for_record()
    if redo.recheck:
        one = dataclasses.replace(one, recheck=True, written=redo.written)
    return await rec.sync_one(engine, one, mapping, flow, redo.source_id, redo.record)

