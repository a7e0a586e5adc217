"""Full synchronisation (BC's "full sync" with "couple records" first): every source record of a mapping, in
dependency order across mappings, each source side of a bidirectional mapping (the ERP first).

Per page of source records (read in key order, so memory stays at one page whatever the table size):
1. coupled records go through the bulk pipeline (`pipeline.sync_coupled`): the page's couplings and error
   records read in bulk, unchanged records decided without a request, changed ones read, merged by the live
   path's own planning and written in batches; anything unusual takes the per-record path for that record;
2. uncoupled records are matched (`match.match_page`): a unique uncoupled counterpart is coupled, then
   brought in step; ambiguous ones are reported and left uncoupled;
3. the rest are created in `$batch` requests (`full_create`), when the mapping (or the caller) allows it;
4. the page's counts go to the job and the last key to the checkpoint, so an interrupted run resumes after
   the last finished page (a page in flight is redone: every step above is idempotent).

Pages overlap: while one page waits for its writes, the next ones are read and planned (`pages_in_flight`,
3 by default; a dry run goes one page at a time). Their results are taken in page order, so the checkpoint
only ever moves past pages that are all done. Nothing a page does depends on an earlier page being finished:
a record whose lookup names a record of an earlier page still in flight syncs that record first, through the
per-record path, and its reservation keeps the two from creating it twice.

`FullOptions.progress`, when given, hears of every page (records done so far) and of each run's end: what the
command line's progress display counts in records.

A dry run reads everything and writes nothing (no couplings, jobs or checkpoints): it reports what it would
create, couple and update. "Update" there means "changed since the last sync" (the source etag differs from
the coupling's); whether fields really differ is decided only when syncing.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.connectors import Record
from shared.mapping import Direction, Side, TableMapping, dependency_order, matches, source_filter
from shared.state import AlreadyCoupled, Coupling, Job
from shared.sync import companies, full_create, match, pipeline
from shared.sync.checkpoint import Checkpoint, CheckpointStore
from shared.sync.context import RunContext
from shared.sync.modified import source_sides
from shared.sync.outcome import Outcome, SyncResult, Tally
from shared.sync.record import succeeded

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine

@dataclass(frozen=True)
class Progress:
    """Where one direction of a mapping's full sync is: source records done so far (pages read and decided),
    and whether the run has finished."""

    mapping: str
    direction: Direction
    done: int
    finished: bool = False


@dataclass(frozen=True)
class FullOptions:
    """`create`: None follows each mapping's `create_new`; False only couples. `directions`: restrict to these
    one-way flows (default: every source side of each mapping). `resume`: continue from a checkpoint."""

    dry_run: bool = False
    create: bool | None = None
    directions: frozenset[Direction] | None = None
    page_size: int = 1000
    pages_in_flight: int = 3
    resume: bool = True
    match_chunk: int = 25
    max_listed: int = 200  # planned actions listed one by one in a dry run (all are counted)
    # Coupled records through the bulk pipeline; False sends each through the per-record path (as before issue
    # 12: the reference the pipeline is tested against, and a way out should a service refuse the bulk reads).
    bulk: bool = True
    progress: Callable[[Progress], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Planned:
    action: str  # create / couple / update / unchanged / ambiguous / no match / failed / ignored
    source_id: str
    target_id: str | None = None
    message: str | None = None


@dataclass
class FullRun:
    """One direction of one mapping's full sync."""

    mapping: str
    direction: Direction
    job_id: str | None  # None for a dry run
    resumed_after: str | None = None  # the checkpoint's last key, when resumed
    pages: int = 0
    tally: Tally = field(default_factory=Tally)
    failures: list[SyncResult] = field(default_factory=list)
    planned: Counter[str] = field(default_factory=Counter)
    listed: list[Planned] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return self.tally.job_counts()


def plan_order(engine: SyncEngine, names: Sequence[str] | None) -> list[TableMapping]:
    """The mappings to sync, dependencies first; unknown names raise (UnknownMappingError)."""
    wanted = None if names is None else {engine.mapping(n).name for n in names}
    return [m for m in dependency_order(engine.pack)
            if (wanted is None or m.name in wanted) and m.enabled and m.kind == "table"]


async def sync_full(engine: SyncEngine, names: Sequence[str] | None, options: FullOptions) -> list[FullRun]:
    runs = []
    for m in plan_order(engine, names):
        for side in source_sides(m):
            flow = Direction.from_source(side)
            if options.directions is None or flow in options.directions:
                runs.append(await full_direction(engine, m, side, options))
    return runs


async def full_direction(engine: SyncEngine, mapping: TableMapping, side: Side, options: FullOptions) -> FullRun:
    flow = Direction.from_source(side)
    state = engine.state
    checkpoints = CheckpointStore(state.watermarks.table)
    cp = await checkpoints.find(mapping.name, flow.value) if options.resume else None
    if cp is None:
        cp = Checkpoint(mapping.name, flow.value)
    earlier = set(cp.job_ids)
    job: Job | None = None
    if not options.dry_run:
        job = await state.jobs.start_job(mapping.name, direction=flow.value, trigger="full",
                                         started_at=engine.options.clock())
        cp.job_ids.append(job.job_id)
    run = FullRun(mapping.name, flow, job.job_id if job else None, resumed_after=cp.last_key)
    ctx = RunContext(job_id=run.job_id, dry_run=options.dry_run)
    orderby, after = engine.connector(side).keyset(mapping.entity(side).entity, cp.last_key)
    text = source_filter(mapping, side)
    if after is not None:
        text = f"({text}) and ({after})" if text else after
    claimed: set[str] = set()
    done = 0
    if options.progress is not None:
        options.progress(Progress(mapping.name, flow, done))
    window = 1 if options.dry_run else max(1, options.pages_in_flight)
    in_flight: deque[tuple[list[Record], asyncio.Task[list[SyncResult]]]] = deque()

    async def finish_oldest() -> None:
        """Take the oldest page's results (in page order: the checkpoint never passes an unfinished page)."""
        nonlocal done
        page, task = in_flight.popleft()
        tally = Tally()
        for result in await task:
            tally.add(result)
            run.tally.add(result)
            if not result.ok:
                run.failures.append(result)
        run.pages += 1
        if job is not None and page:
            if tally.job_counts():
                await state.jobs.increment(mapping.name, job.job_id, **tally.job_counts())
            cp.last_key, cp.pages = page[-1].id, cp.pages + 1
            await checkpoints.save(cp)
        done += len(page)
        if options.progress is not None:
            options.progress(Progress(mapping.name, flow, done))

    try:
        async for page in engine.connector(side).list(mapping.entity(side).entity, filter=text,
                                                      select=engine.select(mapping, side), orderby=orderby,
                                                      page_size=options.page_size):
            in_flight.append((page, asyncio.create_task(
                _page(engine, ctx, mapping, flow, page, options, run, earlier, claimed))))
            while len(in_flight) >= window or (in_flight and in_flight[0][1].done()):
                await finish_oldest()
        while in_flight:
            await finish_oldest()
    except BaseException as exc:
        for _, task in in_flight:  # pages after the one that stopped the run: redone by the resumed run
            task.cancel()
        await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)
        if job is not None:
            await state.jobs.finish_job(mapping.name, job.job_id, status="failed",
                                        message=f"interrupted ({exc or type(exc).__name__}); run the full sync "
                                                f"again to resume after {cp.last_key or 'the start'}")
        raise
    if job is not None:
        await checkpoints.clear(mapping.name, flow.value)
        await state.jobs.finish_job(mapping.name, job.job_id, finished_at=engine.options.clock())
    if options.progress is not None:
        options.progress(Progress(mapping.name, flow, done, finished=True))
    return run


async def _page(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, page: list[Record],
                options: FullOptions, run: FullRun, earlier: set[str], claimed: set[str]) -> list[SyncResult]:
    source, limit = flow.source, engine.options.concurrency
    records = [r for r in page if matches(mapping, r.values, source)]
    results: list[SyncResult] = []
    if mapping.company is not None and source is Side.CRM:
        # CRM records of a company this deployment does not sync (or of no coupled company) are reported, not
        # matched or created; the ERP side's `$filter` already leaves other companies out.
        reasons = await match.bounded(limit, (companies.outside(engine, ctx, mapping, source, r.values)
                                              for r in records))
        for r, why in zip(records, reasons, strict=True):
            if why is None:
                continue
            if options.dry_run:
                _plan(run, options, "ignored", r.id, None, why)
            else:
                results.append(SyncResult(mapping.name, flow, r.id, Outcome.IGNORED, message=f"not synced: {why}"))
        records = [r for r, why in zip(records, reasons, strict=True) if why is None]
    known = await pipeline.page_couplings(engine, mapping, source, [r.id for r in records])
    found = [known.get(r.id) for r in records]
    coupled: list[tuple[Record, Coupling]] = []
    resumed: list[full_create.Prepared] = []
    uncoupled: list[Record] = []
    for r, c in zip(records, found, strict=True):
        if c is None:
            uncoupled.append(r)
        elif c.pending and c.last_job_id in earlier:
            resumed.append(full_create.Prepared(r, {}, c))  # left by an interrupted run of this full sync
        else:
            coupled.append((r, c))  # complete, or another worker's reservation: the per-record path waits
    if options.dry_run:
        for r, c in coupled:
            changed = c.pending or r.etag is None or r.etag != c.etag(source) or not succeeded(c)
            _plan(run, options, "update" if changed else "unchanged", r.id, c.id_of(flow.target))
    elif options.bulk:
        results += await pipeline.sync_coupled(engine, ctx, mapping, flow, coupled)
    else:
        results += await match.bounded(limit, (engine.sync_in_context(ctx, mapping, flow, r.id, r)
                                               for r, _ in coupled))
    decisions = (await match.match_page(engine, mapping, flow, uncoupled, claimed=claimed if options.dry_run else None,
                                        chunk=options.match_chunk)
                 if uncoupled and mapping.match_groups() else {})
    may_create = options.create if options.create is not None else mapping.create_new
    to_create: list[Record] = []
    to_couple: list[tuple[Record, Record]] = []
    for r in uncoupled:
        d = decisions.get(r.id)
        if d is not None and d.status is match.MatchStatus.MATCHED and d.target is not None:
            to_couple.append((r, d.target))
        elif d is not None and d.status is match.MatchStatus.AMBIGUOUS:
            message = f"not coupled: match-based coupling is ambiguous ({d.message})"
            if options.dry_run:
                _plan(run, options, "ambiguous", r.id, None, message)
            else:
                results.append(await full_create.record(engine, ctx, full_create.failed(mapping, flow, r.id, message)))
        elif may_create:
            to_create.append(r)
        elif options.dry_run:
            _plan(run, options, "no match", r.id)
        else:
            results.append(SyncResult(mapping.name, flow, r.id, Outcome.IGNORED,
                                      message="no counterpart matches, and creating is off"))
    if options.dry_run:
        for r, t in to_couple:
            _plan(run, options, "couple", r.id, t.id)
    else:
        results += await match.bounded(limit, (_couple(engine, ctx, mapping, flow, r, t) for r, t in to_couple))
    prepared = await match.bounded(limit, (full_create.prepare(engine, ctx, mapping, flow, r)
                                           for r in [*to_create, *(p.record for p in resumed)]))
    batch: list[full_create.Prepared] = []
    reserved = {p.record.id: p.coupling for p in resumed}
    for item in prepared:
        if isinstance(item, SyncResult):
            if options.dry_run:
                _plan(run, options, "failed", item.source_id, None, item.message)
            else:
                results.append(await full_create.record(engine, ctx, item))
        elif options.dry_run:
            _plan(run, options, "create", item.record.id)
        else:
            item.coupling = reserved.get(item.record.id)
            batch.append(item)
    if batch:
        results += await full_create.create_batch(engine, ctx, mapping, flow, batch)
    return results


async def _couple(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction, record: Record,
                  target: Record) -> SyncResult:
    """Couple a matched pair, then bring it in step (the first sync runs one-way from the source)."""
    ids = {flow.source: record.id, flow.target: target.id}
    try:
        await engine.state.couplings.create_coupling(Coupling(mapping=mapping.name, erp_id=ids[Side.ERP],
                                                              crm_id=ids[Side.CRM], last_job_id=ctx.job_id))
    except AlreadyCoupled:  # someone coupled either record meanwhile: the per-record path decides
        return await engine.sync_in_context(ctx, mapping, flow, record.id, record)
    result = await engine.sync_in_context(ctx, mapping, flow, record.id, record)
    if result.ok:
        result.outcome = Outcome.COUPLED
    return result


def _plan(run: FullRun, options: FullOptions, action: str, source_id: str, target_id: str | None = None,
          message: str | None = None) -> None:
    run.planned[action] += 1
    if len(run.listed) < options.max_listed:
        run.listed.append(Planned(action, source_id, target_id, message))
