"""Jobs: one row per sync run (mapping, job id) with its outcome counters.

Many workers (queue messages of one run) count into the same row; `increment` is a read-modify-write
guarded by the row's ETag and retried on conflict, so no count is lost.

Each row records who started it (`started_by`, e.g. `user:ana@contoso.com`; none for timers and webhooks).
The admin API sets it for the duration of a request with `acting_as`, and every job started inside (however
deep in the engine, in whatever task) picks it up: the engine between them need not carry a caller around.
Operator actions that start no sync (couple, uncouple, skip, restore) are recorded as finished rows of trigger
`operator` (`record_action`), so one table, one retention, shows every change and who made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.state.exceptions import ConcurrentUpdate, NotFound
from shared.state.keys import aware, decode_key, encode_key, purge_before, read_time

COUNTERS = ("inserted", "modified", "deleted", "unchanged", "skipped", "failed", "coupled", "uncoupled")
MAX_INCREMENT_TRIES = 100
OPERATOR = "operator"  # the trigger of an operator action's audit row
_started_by: ContextVar[str | None] = ContextVar("dualsync_started_by", default=None)


@contextlib.contextmanager
def acting_as(caller: str | None) -> Iterator[None]:
    """Jobs started inside this block (and the tasks it creates) record `caller` as `started_by`."""
    token = _started_by.set(caller)
    try:
        yield
    finally:
        _started_by.reset(token)


@dataclass
class Job:
    mapping: str
    job_id: str
    direction: str
    trigger: str                      # e.g. "webhook", "schedule", "full", "manual"
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    status: str = "running"           # running / finished / failed
    message: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    started_by: str | None = None     # who asked (the admin API's caller); None for timers and webhooks


def _from_entity(entity: Any) -> Job:
    return Job(mapping=entity.get("mapping") or decode_key(entity["PartitionKey"]),
               job_id=decode_key(entity["RowKey"]), direction=entity.get("direction", ""),
               trigger=entity.get("trigger", ""), started_at=read_time(entity["started_at"]),  # type: ignore[arg-type]
               finished_at=read_time(entity.get("finished_at")), status=entity.get("status", "running"),
               message=entity.get("message"), counts={c: int(entity.get(c, 0)) for c in COUNTERS},
               started_by=entity.get("started_by"))


class JobStore:
    def __init__(self, table: TableClient, *, sleep: Any = asyncio.sleep) -> None:
        self.table = table
        self._sleep = sleep

    async def start_job(self, mapping: str, *, direction: str, trigger: str, job_id: str | None = None,
                        started_at: dt.datetime | None = None) -> Job:
        """Create the job row, recording the caller `acting_as` names. The default id sorts by start time."""
        started = aware(started_at, "started_at") or dt.datetime.now(dt.UTC)
        job = Job(mapping, job_id or f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", str(direction),
                  trigger, started, started_by=_started_by.get())
        await self.table.create_entity(self._row(job))
        return job

    async def record_action(self, mapping: str, action: str, *, direction: str = "", message: str,
                            counts: dict[str, int] | None = None) -> Job:
        """An operator action that starts no sync (e.g. uncouple): a finished row of trigger `operator`, the
        caller from `acting_as`, `message` saying what was done (ids, never record contents)."""
        unknown = set(counts or {}) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown job counter(s) {sorted(unknown)}; known: {', '.join(COUNTERS)}")
        now = dt.datetime.now(dt.UTC)
        job = Job(mapping, f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", direction, OPERATOR, now, finished_at=now,
                  status="finished", message=f"{action}: {message}"[:8000], started_by=_started_by.get())
        job.counts.update(counts or {})
        await self.table.create_entity(self._row(job))
        return job

    @staticmethod
    def _row(job: Job) -> dict[str, Any]:
        row: dict[str, Any] = {
            "PartitionKey": encode_key(job.mapping), "RowKey": encode_key(job.job_id), "mapping": job.mapping,
            "direction": job.direction, "trigger": job.trigger, "started_at": job.started_at, "status": job.status,
            **job.counts}
        optional = {"started_by": job.started_by, "finished_at": job.finished_at, "message": job.message}
        row.update({k: v for k, v in optional.items() if v is not None})
        return row

    async def get_job(self, mapping: str, job_id: str) -> Job:
        try:
            return _from_entity(await self.table.get_entity(encode_key(mapping), encode_key(job_id)))
        except ResourceNotFoundError:
            raise NotFound(f"no job {job_id!r} for mapping {mapping!r}") from None

    async def increment(self, mapping: str, job_id: str, **counts: int) -> Job:
        """Add to counters, e.g. `increment(m, j, inserted=1)`; safe under concurrent workers."""
        unknown = set(counts) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown job counter(s) {sorted(unknown)}; known: {', '.join(COUNTERS)}")
        pk, rk = encode_key(mapping), encode_key(job_id)
        for attempt in range(MAX_INCREMENT_TRIES):
            try:
                entity = await self.table.get_entity(pk, rk)
            except ResourceNotFoundError:
                raise NotFound(f"no job {job_id!r} for mapping {mapping!r}") from None
            changes = {c: int(entity.get(c, 0)) + n for c, n in counts.items()}
            try:
                await self.table.update_entity({"PartitionKey": pk, "RowKey": rk, **changes}, mode=UpdateMode.MERGE,
                                               etag=entity.metadata["etag"],
                                               match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                # Lost the race: back off a little (randomised, growing) so contenders spread out.
                await self._sleep(random.random() * min(0.2, 0.005 * 2 ** min(attempt, 6)))
                continue
            job = _from_entity(entity)
            job.counts.update(changes)
            return job
        raise ConcurrentUpdate(f"job {job_id!r} counters kept changing; gave up after {MAX_INCREMENT_TRIES} tries")

    async def finish_job(self, mapping: str, job_id: str, *, status: str = "finished", message: str | None = None,
                         finished_at: dt.datetime | None = None) -> None:
        """Mark the job finished (or failed); counters are left as they are."""
        entity: dict[str, Any] = {"PartitionKey": encode_key(mapping), "RowKey": encode_key(job_id), "status": status,
                                  "finished_at": aware(finished_at, "finished_at") or dt.datetime.now(dt.UTC)}
        if message is not None:
            entity["message"] = message[:8000]
        try:
            await self.table.update_entity(entity, mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            raise NotFound(f"no job {job_id!r} for mapping {mapping!r}") from None

    async def list_jobs(self, mapping: str | None = None, *,
                        since: dt.datetime | None = None) -> AsyncIterator[Job]:
        """Jobs of one mapping (or all), optionally only those started at or after `since`."""
        clauses, params = [], {}
        if mapping is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = encode_key(mapping)
        if since is not None:
            clauses.append("started_at ge @since")
            params["since"] = aware(since, "since")
        pages = (self.table.query_entities(" and ".join(clauses), parameters=params) if clauses
                 else self.table.list_entities())
        async for entity in pages:
            yield _from_entity(entity)

    async def purge_jobs(self, older_than: dt.timedelta, *, now: dt.datetime | None = None) -> int:
        """Delete jobs started before now − `older_than`; returns how many."""
        return await purge_before(self.table, "started_at", older_than, now)
