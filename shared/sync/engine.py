"""`SyncEngine`: the product's heart, free of Azure Functions. It holds the pack, one connector per side and
the state store, and offers the operations the processor, the schedules and the CLI call.

    engine = SyncEngine(pack, erp=bc_connector, crm=dataverse_connector, state=state_store,
                        options=EngineOptions(integration_users={Side.CRM: frozenset({"<systemuserid>"})}))
    result = await engine.sync_record("customers", "to_crm", "<bc customer id>")
    runs = await engine.sync_modified("customers")

Building blocks for full sync, match-based coupling and reconcile: `sync_in_context` (one record inside a
caller's run, optionally with a record already read from a page), `records.update_pair` /
`create.create_counterpart` / `create.find_by_natural_key`, and the pure `plan` module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from shared.connectors import Connector, Record
from shared.mapping import ConflictPolicy, Direction, Pack, Side, TableMapping
from shared.state import StateStore
from shared.sync import full, modified
from shared.sync import record as records
from shared.sync.context import EngineOptions, RunContext
from shared.sync.live_jobs import LiveJobs
from shared.sync.modified import ModifiedRun
from shared.sync.outcome import SyncResult, Tally
from shared.sync.reads import fields_to_read

# Triggers whose changes count into the live path's hourly jobs rather than a job each.
LIVE_TRIGGERS = frozenset({"webhook"})


class SyncEngine:
    def __init__(self, pack: Pack, *, erp: Connector, crm: Connector, state: StateStore,
                 options: EngineOptions | None = None) -> None:
        self.pack = pack
        self.connectors = {Side.ERP: erp, Side.CRM: crm}
        self.state = state
        self.options = options or EngineOptions()
        self._selects: dict[tuple[str, Side], list[str] | None] = {}
        self.live_jobs = LiveJobs(state.jobs, flush_s=self.options.live_job_flush, clock=self.options.clock)

    async def aclose(self) -> None:
        """Write what is still only in memory (the live path's job counts)."""
        await self.live_jobs.aclose()

    def connector(self, side: Side) -> Connector:
        return self.connectors[Side(side)]

    def modified_field(self, mapping: TableMapping, side: Side) -> str | None:
        """The field that says when a `side` record of `mapping` changed: the pack's `modified_field` when set
        ("" declares there is none), else what the connector knows of the entity; None: catch up by content."""
        declared = mapping.entity(side).modified_field
        if declared is not None:
            return declared or None
        return self.connector(side).modified_field_of(mapping.entity(side).entity)

    def select(self, mapping: TableMapping, side: Side) -> list[str] | None:
        """The fields a read of `side` for `mapping` asks for (`reads.fields_to_read`), computed once."""
        key = (mapping.name, Side(side))
        if key not in self._selects:
            self._selects[key] = fields_to_read(self.pack, mapping, Side(side), self.modified_field(mapping, side))
        return self._selects[key]

    def mapping(self, mapping: str | TableMapping) -> TableMapping:
        return mapping if isinstance(mapping, TableMapping) else self.pack.mapping(mapping)

    async def sync_record(self, mapping: str | TableMapping, direction: Direction | str, source_id: str, *,
                          job_id: str | None = None, trigger: str = "record", create: bool | None = None,
                          conflict: ConflictPolicy | None = None, force: bool = False,
                          marker: str | None = None) -> SyncResult:
        """Bring one record and its counterpart in step, reading the source record now.

        `direction` is the one-way flow the notice came from (`to_crm` for an ERP change). A bidirectional
        mapping reconciles the whole pair, so a change waiting on the other side travels too. `create`:
        None follows the mapping's `only_coupled`; True creates the counterpart of an uncoupled record.
        `conflict` overrides the mapping's policy for this call; `force` bypasses the echo shortcuts and a
        skipped error (an operator's retry); `marker`, the version a notice named (`RunContext.marker`).
        With no `job_id`, a job of its own (trigger `trigger`) is started and finished — except for a live
        trigger (`webhook`), whose changes count into the hour's live job (`shared.sync.live_jobs`);
        otherwise the outcome is counted into the given job.

        Raises ValueError for a direction the mapping does not carry or a disabled mapping; every per-record
        problem is in the result (FAILED with a message; `retryable` for transient ones)."""
        m = self.mapping(mapping)
        flow = self._flow(m, direction)
        if job_id is None and trigger in LIVE_TRIGGERS:
            ctx = RunContext(job_id=self.live_jobs.job_id(m.name, flow.value, trigger), conflict=conflict,
                             create=create, force=force, marker=marker)
            result = await self.sync_in_context(ctx, m, flow, source_id)
            await self.live_jobs.count(m.name, flow.value, trigger, result)
            return result
        own_job = job_id is None
        if own_job:
            job = await self.state.jobs.start_job(m.name, direction=flow.value, trigger=trigger,
                                                  started_at=self.options.clock())
            job_id = job.job_id
        ctx = RunContext(job_id=job_id, conflict=conflict, create=create, force=force, marker=marker)
        result = await self.sync_in_context(ctx, m, flow, source_id)
        tally = Tally()
        tally.add(result)
        if tally.job_counts():
            await self.state.jobs.increment(m.name, job_id, **tally.job_counts())
        if own_job:
            await self.state.jobs.finish_job(m.name, job_id, finished_at=self.options.clock())
        return result

    async def sync_in_context(self, ctx: RunContext, mapping: TableMapping, flow: Direction, source_id: str,
                              record: Record | None = None) -> SyncResult:
        """One record inside the caller's run (no job bookkeeping): the piece full sync and the modified
        sync reuse. Pass `record` when it was just read (a page of a listing); it is trusted as "now"."""
        return await records.sync_one(self, ctx.for_record(), mapping, flow, source_id, record)

    async def sync_modified(self, mapping: str | TableMapping, *, trigger: str = "schedule",
                            now: dt.datetime | None = None) -> list[ModifiedRun]:
        """Sync the records changed since the watermark (one job per direction; both directions for a
        bidirectional mapping, the ERP first) and retry failed, non-skipped records. `now` is the run's start
        (the watermark is capped at it)."""
        m = self.mapping(mapping)
        if not m.enabled:
            raise ValueError(f"mapping '{m.name}' is disabled")
        run_start = now or self.options.clock()
        return [await modified.sync_direction(self, m, side, trigger=trigger, run_start=run_start)
                for side in modified.source_sides(m)]

    async def sync_full(self, mappings: Sequence[str] | None = None, *, dry_run: bool = False,
                        **options: Any) -> list[full.FullRun]:
        """Full synchronisation of `mappings` (default: every enabled table mapping) in dependency order:
        couple by match fields, create the rest in batches, resumable from a checkpoint; `dry_run` only
        reports. Options: see `full.FullOptions` (create, directions, page_size, resume, …)."""
        return await full.sync_full(self, mappings, full.FullOptions(dry_run=dry_run, **options))

    @staticmethod
    def _flow(mapping: TableMapping, direction: Direction | str) -> Direction:
        flow = Direction.parse(direction) if isinstance(direction, str) else direction
        if flow is Direction.BIDIRECTIONAL:
            raise ValueError("sync_record needs the one-way direction the change came from: to_crm or to_erp")
        if not mapping.enabled:
            raise ValueError(f"mapping '{mapping.name}' is disabled")
        if not mapping.direction.allows(flow):
            raise ValueError(f"mapping '{mapping.name}' is {mapping.direction.value}: it does not sync {flow.value}")
        return flow
