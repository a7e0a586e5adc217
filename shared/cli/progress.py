"""Progress of the long runs (full sync, match coupling, reconcile) in records, not steps: one line per
mapping and direction with the records done, the total when known, the rate and the time left, fed page by
page by the engine's callbacks (`shared.sync.full.Progress`, reconcile's `progress`). On stderr and only on
a terminal, like every progress display here, so stdout keeps the tables and `--json` clean.

No service tells the number of records without a request of its own, so the total is an estimate: what the
last finished full sync of that mapping and direction went through (its job's counts). A run that finds more
records than that raises the total as it goes; without an earlier run the line shows the count and the rate,
and no time left. Reconcile keeps no history: count and rate only.

With `--remote`, a run is one request per mapping and the app sends nothing until it ends: the display then
counts mappings (`RecordProgress.step`), and the summary still gives each run's records, time and rate.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from shared.cli.backend import Backend, Document, LocalBackend
from shared.cli.common import err
from shared.state import COUNTERS, StateStore, encode_key
from shared.state.keys import read_time

Key = tuple[str, str]  # (mapping, direction; "" for reconcile, which reads both sides)


class CountColumn(ProgressColumn):
    """`1 200/5 000 records`, `~` before an estimated total, or `1 200 records` without one."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}".replace(",", " ")
        unit = task.fields.get("unit", "records")
        if task.total is None:
            return Text(f"{done} {unit}", style="progress.download")
        approx = "~" if task.fields.get("estimated") else ""
        return Text(f"{done}/{approx}{int(task.total):,} {unit}".replace(",", " "), style="progress.download")


class RateColumn(ProgressColumn):
    """Records per second, over rich's sliding window of recent updates."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s".replace(",", " "), style="progress.data.speed")


@dataclass
class Run:
    """What the summary needs of one run: records gone through and seconds taken."""

    records: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None

    @property
    def rate(self) -> float | None:
        return self.records / self.seconds if self.seconds else None


class RecordProgress:
    """The display (a context manager) and the callbacks that feed it; `runs` holds what the summary needs."""

    def __init__(self, console: Console | None = None, *, estimates: dict[Key, int] | None = None) -> None:
        self.console = console or err
        self.estimates = estimates or {}
        self.runs: dict[Key, Run] = {}
        self._tasks: dict[Key, TaskID] = {}
        self._totals: dict[Key, int | None] = {}
        self.display = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), CountColumn(),
                                RateColumn(), TimeRemainingColumn(), TimeElapsedColumn(), console=self.console,
                                transient=True, disable=not self.console.is_terminal)

    def __enter__(self) -> RecordProgress:
        self.display.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.display.stop()

    def _advance(self, key: Key, description: str, done: int, finished: bool) -> None:
        if key not in self._tasks:
            estimate = self.estimates.get(key) or None
            self._tasks[key] = self.display.add_task(description, total=estimate, estimated=estimate is not None)
            self._totals[key], self.runs[key] = estimate, Run()
        run, total = self.runs[key], self._totals[key]
        if total is not None and done > total:
            total = done  # more records than the last run went through
        if finished:
            total, run.seconds = done, time.monotonic() - run.started
        run.records, self._totals[key] = done, total
        self.display.update(self._tasks[key], completed=done, total=total)

    # ----- the engine's callbacks
    def full(self, event: Any) -> None:
        """`shared.sync.full.Progress` of a full sync or a match."""
        flow = event.direction.value
        self._advance((event.mapping, flow), f"{event.mapping} {flow}", event.done, event.finished)

    def reconcile(self, mapping: str, checked: int) -> None:
        self._advance((mapping, ""), f"{mapping} (both sides)", checked, False)

    def finish(self, mapping: str) -> None:
        """Reconcile has no end-of-run callback: its command says when a mapping is done."""
        key = (mapping, "")
        self._advance(key, mapping, self.runs[key].records if key in self.runs else 0, True)

    # ----- remote: one request per mapping
    def step(self, description: str, total: int) -> TaskID:
        return self.display.add_task(description, total=total, estimated=False, unit="mappings")

    def timed(self, key: Key, records: int, seconds: float) -> None:
        """A run measured from outside (a remote request): for the summary."""
        self.runs[key] = Run(records, seconds=seconds)


async def estimates(state: StateStore, names: Iterable[str]) -> dict[Key, int]:
    """Per mapping and direction, the records the newest finished full sync went through (its job's counts).
    One filtered query per mapping: the jobs table also holds a row per live change, none of them wanted."""
    found: dict[Key, tuple[dt.datetime, int]] = {}
    for name in names:
        async for e in state.jobs.table.query_entities(
                "PartitionKey eq @pk and trigger eq 'full' and status eq 'finished'",
                parameters={"pk": encode_key(name)}, select=["direction", "started_at", *COUNTERS]):
            key, started = (name, str(e.get("direction", ""))), read_time(e.get("started_at"))
            if started is not None and (key not in found or started > found[key][0]):
                found[key] = (started, sum(int(e.get(c) or 0) for c in COUNTERS))
    return {key: records for key, (_, records) in found.items()}


async def run_full(backend: Backend, names: Sequence[str], one: Callable[[str, dict[str, Any]], Awaitable[Document]],
                   *, what: str, dry_run: bool) -> tuple[Document, dict[Key, Run]]:
    """Full syncs (or matches) of `names`, one mapping at a time, dependencies first: `one(name, extra)` runs
    one, `extra` holding the progress callback when the engine runs here. Returns the runs' documents merged
    (the admin API's `full-sync` shape) and their measures for the summary."""
    here = isinstance(backend, LocalBackend)
    guesses = await estimates(backend.engine.state, names) if isinstance(backend, LocalBackend) else {}
    merged: Document = {"dry_run": dry_run, "runs": []}
    with RecordProgress(estimates=guesses) as shown:
        step = None if here else shown.step(what, len(names))
        for name in names:
            started = time.monotonic()
            doc = await one(name, {"progress": shown.full} if here else {})
            merged["runs"] += doc["runs"]
            if step is not None:  # remote: the request's time shared out by each direction's records
                shown.display.advance(step)
                elapsed = time.monotonic() - started
                sizes = [sum((r["planned"] if r["job_id"] is None else r["counts"]).values()) for r in doc["runs"]]
                for r, size in zip(doc["runs"], sizes, strict=True):
                    share = size / sum(sizes) if sum(sizes) else 1 / len(sizes)
                    shown.timed((r["mapping"], r["direction"]), size, elapsed * share)
    return merged, shown.runs
