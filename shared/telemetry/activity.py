"""Per-minute activity of each mapping and direction, in Table storage, so the console shows lag, changes in the
last hour and failures without Azure Monitor:

    recorder = ActivityRecorder(state)               # one per process (the Function App's runtime owns it)
    recorder.add("customers", "to_crm", at=now, changes=1, lag_ms=840.0)
    minutes = await recent(state, mapping="customers", since=now - dt.timedelta(hours=1))

The processor adds to counts kept in memory; a background task writes them at most every
`DUALSYNC_TELEMETRY__ACTIVITY_FLUSH_S` seconds, in one Table transaction per flush (all rows of a flush share
the hour's partition), never a Table write per change: a live change keeps its budget of Table transactions
(issue 12). Each process writes its own row per mapping, direction and minute (the row key names the
instance), replacing it with the minute's running totals, so a flush repeated after a failure counts nothing
twice; `recent` adds the instances up.

Rows: partition = the hour (`YYYYMMDDHH`, UTC), row = `<minute>|<mapping>|<direction>|<instance>`; the console's
"last hour" is a range over two partitions. `purge` drops rows older than the retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables.aio import TableClient

from shared.state import StateStore
from shared.state.keys import encode_key, purge_before, read_time

log = logging.getLogger(__name__)
TRANSACTION_LIMIT = 100       # operations in one entity-group transaction
KEEP_UNFLUSHED = dt.timedelta(hours=1)  # with storage down, older minutes are dropped rather than kept forever


@dataclass
class Minute:
    """One minute (`at`, its start, UTC) of one mapping and direction. `changes`: changes written (each with
    its end-to-end lag in `lag_ms_sum` / `lag_ms_max`, so `lag_ms_sum / changes` is the mean); `failures`:
    syncs that failed (a transient one counts at each attempt); `throttled`: 429 / busy answers waited on."""

    mapping: str
    direction: str
    at: dt.datetime
    changes: int = 0
    failures: int = 0
    lag_ms_sum: float = 0.0
    lag_ms_max: float = 0.0
    throttled: int = 0

    @property
    def lag_ms_avg(self) -> float | None:
        return self.lag_ms_sum / self.changes if self.changes else None

    def merge(self, other: Minute) -> None:
        self.changes += other.changes
        self.failures += other.failures
        self.lag_ms_sum += other.lag_ms_sum
        self.lag_ms_max = max(self.lag_ms_max, other.lag_ms_max)
        self.throttled += other.throttled


def minute_of(at: dt.datetime) -> dt.datetime:
    at = at.astimezone(dt.UTC) if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return at.replace(second=0, microsecond=0)


def table_name(state: StateStore) -> str:
    """The activity table beside the state tables: `<prefix>activity` (named by the store if it knows it)."""
    named = getattr(state.names, "activity", None)
    if named:
        return named
    jobs = state.names.jobs
    return (jobs[:-len("jobs")] if jobs.endswith("jobs") else jobs[:55]) + "activity"


def _partition(at: dt.datetime) -> str:
    return at.strftime("%Y%m%d%H")


def _instance() -> str:
    """This process: the App Service instance when there is one, plus a random part (two workers of one
    instance must not overwrite each other's rows)."""
    site = os.environ.get("WEBSITE_INSTANCE_ID", "")[:12]
    return encode_key(f"{site}-{uuid.uuid4().hex[:8]}" if site else uuid.uuid4().hex[:12])


class ActivityRecorder:
    """Counts in memory, written in the background (see the module docstring). Use it on one event loop;
    `aclose()` writes what is left."""

    def __init__(self, state: StateStore, *, flush_s: float = 5.0, instance: str | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.state = state
        self.flush_s = flush_s
        self.instance = instance or _instance()
        self.clock = clock
        self.flushes = 0  # Table transactions sent (tests check the budget)
        self._minutes: dict[tuple[str, str, dt.datetime], Minute] = {}
        self._dirty: set[tuple[str, str, dt.datetime]] = set()
        self._table: TableClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def add(self, mapping: str, direction: str, *, at: dt.datetime, changes: int = 0, failures: int = 0,
            lag_ms: float | None = None, throttled: int = 0) -> None:
        key = (mapping, direction, minute_of(at))
        minute = self._minutes.get(key)
        if minute is None:
            minute = self._minutes[key] = Minute(mapping, direction, key[2])
        minute.merge(Minute(mapping, direction, key[2], changes, failures, lag_ms or 0.0, lag_ms or 0.0, throttled))
        self._dirty.add(key)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        while self._dirty:
            await asyncio.sleep(self.flush_s * (6 if self._failing else 1))
            await self.flush()

    async def flush(self) -> int:
        """Write the minutes changed since the last flush; returns the rows written (0 when storage refused:
        they are kept for the next flush)."""
        keys, self._dirty = sorted(self._dirty, key=lambda k: k[2]), set()
        if not keys:
            return 0
        entities = [self._entity(self._minutes[k]) for k in keys]
        written = 0
        try:
            table = await self._open()
            by_hour: dict[str, list[dict]] = {}
            for entity in entities:
                by_hour.setdefault(entity["PartitionKey"], []).append(entity)
            for rows in by_hour.values():
                for i in range(0, len(rows), TRANSACTION_LIMIT):
                    chunk = rows[i:i + TRANSACTION_LIMIT]
                    await table.submit_transaction([("upsert", e, {"mode": "replace"}) for e in chunk])
                    self.flushes += 1
                    written += len(chunk)
            self._failing = False
        except Exception as exc:  # storage down or the client closed: never the processor's problem
            if not self._failing:
                log.warning("activity: writing %d minute(s) failed, kept for the next try: %s", len(keys),
                            type(exc).__name__)
            self._failing = True
            self._dirty |= set(keys)
        self._forget_old()
        return written

    def _forget_old(self) -> None:
        current = minute_of(self.clock())
        for key in [k for k in self._minutes if k[2] < current - dt.timedelta(minutes=1)]:
            if key not in self._dirty or key[2] < current - KEEP_UNFLUSHED:
                del self._minutes[key]
                self._dirty.discard(key)

    async def _open(self) -> TableClient:
        if self._table is None:
            name = table_name(self.state)
            with contextlib.suppress(AzureError):  # exists already; a real failure shows at the write
                await self.state.service.create_table_if_not_exists(name)
            self._table = self.state.service.get_table_client(name)
        return self._table

    def _entity(self, m: Minute) -> dict:
        return {"PartitionKey": _partition(m.at),
                "RowKey": f"{m.at:%Y%m%dT%H%M}|{encode_key(m.mapping)}|{encode_key(m.direction)}|{self.instance}",
                "mapping": m.mapping, "direction": m.direction, "at": m.at, "instance": self.instance,
                "changes": m.changes, "failures": m.failures, "lag_ms_sum": float(m.lag_ms_sum),
                "lag_ms_max": float(m.lag_ms_max), "throttled": m.throttled}

    async def aclose(self) -> None:
        """Stop the background task and write what is left (once; failures are logged, not raised)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._dirty:
            await self.flush()


async def recent(state: StateStore, *, mapping: str | None = None, since: dt.datetime) -> list[Minute]:
    """The minutes from `since` on (all instances added up), ordered by mapping, direction and time; empty
    when nothing was recorded yet."""
    since = minute_of(since)
    table = state.service.get_table_client(table_name(state))
    query = "PartitionKey ge @first and at ge @since"
    params: dict[str, object] = {"first": _partition(since), "since": since}
    if mapping is not None:
        query += " and mapping eq @mapping"
        params["mapping"] = mapping
    totals: dict[tuple[str, str, dt.datetime], Minute] = {}
    try:
        async for e in table.query_entities(query, parameters=params):
            at = read_time(e["at"])
            assert at is not None
            row = Minute(e["mapping"], e["direction"], at, int(e.get("changes", 0)), int(e.get("failures", 0)),
                         float(e.get("lag_ms_sum", 0.0)), float(e.get("lag_ms_max", 0.0)), int(e.get("throttled", 0)))
            key = (row.mapping, row.direction, at)
            if key in totals:
                totals[key].merge(row)
            else:
                totals[key] = row
    except ResourceNotFoundError:  # the table is made by the first flush
        return []
    return [totals[k] for k in sorted(totals)]


async def purge(state: StateStore, *, older_than: dt.timedelta, now: dt.datetime | None = None) -> int:
    """Delete minutes older than `older_than`; returns how many rows went."""
    table = state.service.get_table_client(table_name(state))
    try:
        return await purge_before(table, "at", older_than, now)
    except ResourceNotFoundError:
        return 0
