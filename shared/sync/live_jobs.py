"""The live path's job rows: one per mapping, direction, hour and worker process, counted in memory and written
every few seconds — not a row started, counted and finished for each change.

A job of its own per notice cost four Table requests a change (create, read and write the counters, finish),
twice what the change itself needs (the coupling's hold and its settlement), and buried the job list under
one-record runs. Business Central's job queue and dual-write show live activity as periods too. The row's id
sorts with the other jobs by start (`YYYYmmddTHH0000-live-…`), its trigger is the caller's (`webhook`), it is
`running` while its hour is open and finished by the first flush after.

What a crash costs: the counts of the last `flush_s` seconds of one process (never a change: every change is
written, or an error record, before it is counted). `flush_s=0` writes each count at once (tests, the sandbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.state import JobStore
from shared.sync.outcome import SyncResult, Tally

log = logging.getLogger(__name__)


@dataclass
class _Period:
    mapping: str
    direction: str
    trigger: str
    job_id: str
    hour: dt.datetime
    pending: Counter[str] = field(default_factory=Counter)
    started: bool = False


class LiveJobs:
    def __init__(self, jobs: JobStore, *, flush_s: float, clock: Callable[[], dt.datetime]) -> None:
        self.jobs, self.flush_s, self.clock = jobs, flush_s, clock
        self._periods: dict[tuple[str, str, str, dt.datetime], _Period] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # One engine (one per worker process), one id: two never contend for a row's counters.
        self.worker = uuid.uuid4().hex[:8]

    def job_id(self, mapping: str, direction: str, trigger: str) -> str:
        """The job the change being synced now counts into (its id goes on the coupling and error record)."""
        return self._period(mapping, direction, trigger).job_id

    def _period(self, mapping: str, direction: str, trigger: str) -> _Period:
        hour = self.clock().replace(minute=0, second=0, microsecond=0)
        key = (mapping, direction, trigger, hour)
        if key not in self._periods:
            self._periods[key] = _Period(mapping, direction, trigger,
                                         f"{hour:%Y%m%dT%H%M%S}-live-{direction}-{self.worker}", hour)
        return self._periods[key]

    async def count(self, mapping: str, direction: str, trigger: str, result: SyncResult) -> None:
        tally = Tally()
        tally.add(result)
        self._period(mapping, direction, trigger).pending.update(tally.job_counts())
        if self.flush_s <= 0:
            await self.flush()
        elif self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except Exception:  # counts stay pending for the next flush; the changes themselves are all written
                log.warning("could not write the live job counts; trying again later", exc_info=True)
            if not any(n for p in self._periods.values() for n in p.pending.values()):
                return

    async def flush(self) -> None:
        """Write what was counted since the last flush; finish the rows of hours that are over."""
        async with self._lock:
            now_hour = self.clock().replace(minute=0, second=0, microsecond=0)
            for key, p in list(self._periods.items()):
                counts = {k: n for k, n in p.pending.items() if n}
                if counts or not p.started:
                    if not p.started:
                        await self.jobs.start_job(p.mapping, direction=p.direction, trigger=p.trigger,
                                                  job_id=p.job_id, started_at=p.hour)
                        p.started = True
                    if counts:
                        await self.jobs.increment(p.mapping, p.job_id, **counts)
                        p.pending.subtract(counts)
                if p.hour < now_hour:
                    await self.jobs.finish_job(p.mapping, p.job_id, finished_at=p.hour + dt.timedelta(hours=1))
                    del self._periods[key]

    async def aclose(self) -> None:
        """Write what is still counted (at shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()
