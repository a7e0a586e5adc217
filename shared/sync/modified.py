"""The modified-records sync of one mapping: every record changed since the watermark, both directions for a
bidirectional mapping, plus records whose last sync failed and that are not skipped.

Watermarks follow meltano's rule: read `modified-on ge (watermark − overlap)`, de-duplicate by id, and store
the *run's start* as the new watermark (never a record's timestamp, which may lie in a future the next run
would skip past). A record that failed transiently holds the watermark back to its modified-on, so the next
run reads it again; a record that failed permanently has an error record and is retried from there.

A source without a modified-on field (most Finance and Operations entities) has no watermark: `catchup` finds
its changed records by comparing content with the couplings' snapshots.

Each run also catches up deletions no notice reported (`vanished`: Dataverse delta links, a key-set comparison
for the ERPs; the content comparison already sees coupled records its listing no longer returns) and hands
the coupled records found gone to the mapping's deletion rule; the run counts them as "vanished".
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.connectors import ConnectorError, Record
from shared.mapping import Direction, Side, TableMapping, source_filter
from shared.sync import catchup, vanished
from shared.sync.context import RunContext
from shared.sync.outcome import Outcome, SyncResult, Tally

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


@dataclass
class ModifiedRun:
    """One direction of one modified-records run: its job, the window read, and what came of it."""

    mapping: str
    direction: Direction
    job_id: str
    since: dt.datetime | None
    reached: dt.datetime | None  # the watermark stored at the end (None: not advanced)
    tally: Tally
    failures: list[SyncResult] = field(default_factory=list)
    error: str | None = None  # the run itself failed (e.g. the listing); its job is marked failed
    deletions: vanished.Vanished | None = None  # the check for deletions no notice reported

    @property
    def counts(self) -> dict[str, int]:
        """The job's counters, plus "vanished": coupled source records found deleted without a notice."""
        found = len(self.deletions.found) if self.deletions is not None else 0
        return {**self.tally.job_counts(), **({"vanished": found} if found else {})}


def source_sides(mapping: TableMapping) -> list[Side]:
    """The sides records are read from: the ERP first (the system of record), then the CRM."""
    return [s for s in (Side.ERP, Side.CRM) if mapping.direction.allows(Direction.from_source(s))]


async def sync_direction(engine: SyncEngine, mapping: TableMapping, side: Side, *, trigger: str,
                         run_start: dt.datetime) -> ModifiedRun:
    flow = Direction.from_source(side)
    state, connector = engine.state, engine.connector(side)
    modified_field = engine.modified_field(mapping, side)
    # No modified-on field (most F&O entities): find changes by content instead of by watermark.
    by_content = not modified_field
    watermark = None if by_content else await state.watermarks.find_watermark(mapping.name, flow.value)
    since = watermark - engine.options.overlap if watermark is not None else None
    text = None if by_content else source_filter(mapping, side, modified_field=modified_field, modified_since=since)
    job = await state.jobs.start_job(mapping.name, direction=flow.value, trigger=trigger, started_at=run_start)
    ctx = RunContext(job_id=job.job_id, recheck=True)  # the catch-up looks at both sides of every pair it reads
    run = ModifiedRun(mapping.name, flow, job.job_id, since, None, Tally())
    seen: set[str] = set()
    hold_back: list[dt.datetime | None] = []
    gate = asyncio.Semaphore(engine.options.concurrency)

    done: set[str] = set()

    async def one(record_id: str, record: Record | None, context: RunContext = ctx) -> None:
        async with gate:
            result = await engine.sync_in_context(context, mapping, flow, record_id, record)
        if result.outcome is not Outcome.IGNORED:
            done.add(record_id)
        run.tally.add(result)
        if not result.ok:
            run.failures.append(result)
        if result.retryable:
            hold_back.append(record.modified_on if record is not None else None)

    scan = catchup.Scan()
    try:
        if by_content:
            async for due in catchup.changed_pages(engine, mapping, side, scan):
                await asyncio.gather(*(one(record_id, record) for record_id, record in due))
            run.tally.counts["unchanged"] += scan.unchanged
            # The scan handed over the coupled records its listing missed; count those that are really gone.
            found, unconfirmed = await vanished.confirm(engine, mapping, side, scan.missing)
            run.deletions = vanished.Vanished(how=vanished.CONTENT, found=found, unconfirmed=unconfirmed,
                                              entity=mapping.entity(side).entity)
        else:
            async for page in connector.list(mapping.entity(side).entity, filter=text,
                                             select=engine.select(mapping, side)):
                fresh = [r for r in page if r.id not in seen]
                seen.update(r.id for r in fresh)
                await asyncio.gather(*(one(r.id, r) for r in fresh))
        # Failed, not skipped: retried as they were first tried, so an uncoupled one is created this time.
        retry = [e.source_id async for e in state.errors.list_errors(mapping.name, skipped=False)
                 if e.direction == flow.value and e.source_id not in done]
        again = dataclasses.replace(ctx, create=True)
        await asyncio.gather(*(one(source_id, None, again) for source_id in retry))
        if not by_content:
            run.deletions = await _deletions(engine, mapping, side, lambda ids: asyncio.gather(
                *(one(i, None) for i in ids if i not in done)))
    except ConnectorError as exc:
        # The listing itself failed (service down past the retry budget): this direction's run fails visibly,
        # its watermark stays, and the next run reads the same window again.
        run.error = exc.message
        await state.jobs.increment(mapping.name, job.job_id, **run.tally.job_counts())
        await state.jobs.finish_job(mapping.name, job.job_id, status="failed", message=exc.message,
                                    finished_at=engine.options.clock())
        return run
    except BaseException as exc:
        await state.jobs.increment(mapping.name, job.job_id, **run.tally.job_counts())
        await state.jobs.finish_job(mapping.name, job.job_id, status="failed", message=str(exc) or type(exc).__name__)
        raise
    reached: dt.datetime | None = None if by_content else run_start
    if hold_back and not by_content:
        known = [t for t in hold_back if t is not None]
        reached = min([run_start, *known]) if len(known) == len(hold_back) else None
    if reached is not None and (watermark is None or reached > watermark):
        run.reached = await state.watermarks.advance_watermark(mapping.name, flow.value, reached)
    await state.jobs.increment(mapping.name, job.job_id, **run.tally.job_counts())
    note = run.deletions.summary() if run.deletions is not None else None
    if run.deletions is not None and run.deletions.error:
        # The changed records were synced (the watermark moved); the deletion check failed and applied nothing.
        run.error = run.deletions.error
    await state.jobs.finish_job(mapping.name, job.job_id, status="failed" if run.error else "finished",
                                message=note, finished_at=engine.options.clock())
    return run


async def _deletions(engine: SyncEngine, mapping: TableMapping, side: Side,
                     apply: Callable[[list[str]], Awaitable[object]]) -> vanished.Vanished:
    """Find the coupled records deleted without a notice and `apply` the per-record sync to them (which reads
    each again and follows the deletion rule). A listing that fails applies nothing: the run reports it and
    the next run looks again."""
    try:
        found = await vanished.find(engine, mapping, side)
    except ConnectorError as exc:
        return vanished.Vanished(entity=mapping.entity(side).entity,
                                 error=f"deletion check failed, nothing applied: {exc.message}")
    await apply([*found.found, *found.unconfirmed])
    await vanished.commit(engine, mapping, found)
    return found
