"""The last hour of each mapping, from the per-minute activity rows the processor records
(`shared.telemetry.activity`): changes, failures and end-to-end lag per minute, summed over directions and
instances, as the overview's numbers and sparklines.

A minute without a row had no change: its count is 0. Its lag is unknown, not 0 (None, a gap in the line).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.state import StateStore
from shared.telemetry.activity import recent

WINDOW = dt.timedelta(hours=1)


@dataclass
class Activity:
    """One mapping's last hour, minute by minute (oldest first), and its totals."""

    changes: list[int] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    lag_ms: list[float | None] = field(default_factory=list)   # mean lag of the minute's changes
    lag_max_ms: float | None = None
    throttled: int = 0

    @property
    def total_changes(self) -> int:
        return sum(self.changes)

    @property
    def total_failures(self) -> int:
        return sum(self.failures)

    @property
    def last_lag_ms(self) -> float | None:
        """The mean lag of the latest minute that had changes: "how far behind are we now"."""
        return next((v for v in reversed(self.lag_ms) if v is not None), None)


def minute_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(second=0, microsecond=0)


def summarise(minutes: Iterable[Any], *, now: dt.datetime, window: dt.timedelta = WINDOW) -> dict[str, Activity]:
    """Per mapping, the minutes of (`now` - `window`, `now`] as series; `minutes` are activity `Minute`s (rows of
    several directions and instances for one minute are added up)."""
    end = minute_of(now)
    slots = int(window / dt.timedelta(minutes=1))
    start = end - dt.timedelta(minutes=slots - 1)
    sums: dict[str, dict[int, list[float]]] = {}
    result: dict[str, Activity] = {}
    for m in minutes:
        index = int((minute_of(m.at) - start) / dt.timedelta(minutes=1))
        if not 0 <= index < slots:
            continue
        a = result.setdefault(m.mapping, Activity([0] * slots, [0] * slots, [None] * slots))
        a.changes[index] += m.changes
        a.failures[index] += m.failures
        a.throttled += m.throttled
        lag = sums.setdefault(m.mapping, {}).setdefault(index, [0.0, 0.0])
        lag[0] += m.lag_ms_sum
        lag[1] += m.changes
        if m.changes:
            a.lag_max_ms = max(a.lag_max_ms or 0.0, m.lag_ms_max)
    for name, by_minute in sums.items():
        for index, (total, count) in by_minute.items():
            result[name].lag_ms[index] = total / count if count else None
    return result


async def last_hour(state: StateStore, *, now: dt.datetime | None = None) -> dict[str, Activity]:
    """Every mapping's last hour, from Table storage."""
    now = now or dt.datetime.now(dt.UTC)
    return summarise(await recent(state, since=minute_of(now) - WINDOW), now=now)


def empty() -> Activity:
    slots = int(WINDOW / dt.timedelta(minutes=1))
    return Activity([0] * slots, [0] * slots, [None] * slots)
