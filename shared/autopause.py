"""Auto-pause: a mapping whose permanent failures reach N within T minutes pauses by itself, the reason kept
(`DUALSYNC_AUTOPAUSE__FAILURES`, `__MINUTES`; 0 failures turns it off).

Only permanent failures count (a validation error, a refused write, a dependency that cannot be resolved):
throttling and outages are transient, retried with back-off, and a pause would only delay their recovery.

Counting costs nothing on success and no Table write ever:
- each instance keeps the times of its own failures per mapping in memory (`FailureWindow`) and pauses as
  soon as they alone reach N;
- failures spread over several instances are seen through the error records the engine writes anyway (one
  row per failing record, with its last failure time): at most every `check_every` seconds per mapping, on
  a failure, one query counts the mapping's permanent error records last seen within the window.
Only failures after the mapping's last resume count (`PauseStore.resumed_at`), so the burst that paused a
mapping does not pause it again the moment an operator resumes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from shared.settings import AutoPauseSettings, SettingsError, load_autopause
from shared.state import StateStore
from shared.state.keys import encode_key, read_time
from shared.state.pauses import Pause
from shared.sync.outcome import Outcome, SyncResult
from shared.telemetry.events import emit

log = logging.getLogger(__name__)
BY = "auto-pause"


@dataclass(frozen=True)
class Threshold:
    failures: int = 25  # 0: auto-pause off
    minutes: float = 10.0

    @classmethod
    def from_settings(cls, settings: AutoPauseSettings) -> Threshold:
        return cls(settings.failures, settings.minutes)

    @property
    def window(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.minutes)


def permanent_failures(results: Iterable[SyncResult]) -> list[SyncResult]:
    return [r for r in results if r.outcome is Outcome.FAILED and not r.retryable]


class FailureWindow:
    """The failure times of one instance, per mapping, and when the error records were last counted."""

    def __init__(self, threshold: Threshold, *, check_every: float = 30.0) -> None:
        self.threshold = threshold
        self.check_every = check_every
        self.times: dict[str, deque[dt.datetime]] = {}
        self._checked: dict[str, float] = {}

    def add(self, mapping: str, count: int, now: dt.datetime, since: dt.datetime) -> int:
        """Record `count` failures at `now`; how many of this instance's fall after `since`."""
        times = self.times.setdefault(mapping, deque())
        times.extend([now] * count)
        while times and times[0] <= since:
            times.popleft()
        return len(times)

    def due_check(self, mapping: str) -> bool:
        last = self._checked.get(mapping)
        if last is not None and time.monotonic() - last < self.check_every:
            return False
        self._checked[mapping] = time.monotonic()
        return True

    def forget(self, mapping: str) -> None:
        self.times.pop(mapping, None)
        self._checked.pop(mapping, None)


_windows: weakref.WeakKeyDictionary[StateStore, FailureWindow] = weakref.WeakKeyDictionary()


def window_for(state: StateStore, threshold: Threshold | None = None) -> FailureWindow:
    """This instance's window for `state` (the threshold read from the app settings on first use, or given)."""
    window = _windows.get(state)
    if window is None or (threshold is not None and window.threshold != threshold):
        if threshold is None:
            try:
                threshold = Threshold.from_settings(load_autopause())
            except SettingsError as exc:  # a bad value must not stop syncing: say so, use the defaults
                log.error("auto-pause settings invalid, using the defaults: %s", exc)
                threshold = Threshold()
        window = _windows[state] = FailureWindow(threshold)
    return window


async def _recorded_failures(state: StateStore, mapping: str, since: dt.datetime) -> int:
    """Permanent error records of `mapping` last seen after `since` (one partition query)."""
    count = 0
    async for e in state.errors.table.query_entities(
            "PartitionKey eq @pk and last_seen gt @since", parameters={"pk": encode_key(mapping), "since": since},
            select=["last_seen", "transient"]):
        if not e.get("transient") and (read_time(e.get("last_seen")) or since) > since:
            count += 1
    return count


async def note_results(state: StateStore, mapping: str, results: Iterable[SyncResult], *,
                       now: dt.datetime | None = None, threshold: Threshold | None = None) -> Pause | None:
    """Count the permanent failures among `results` of `mapping`; pause it when they reach the threshold.
    Returns the pause this call put in force (None: below the threshold, off, or already paused)."""
    failed = permanent_failures(results)
    if not failed:
        return None
    window = window_for(state, threshold)
    limit = window.threshold
    if limit.failures <= 0:
        return None
    now = now or dt.datetime.now(dt.UTC)
    since = now - limit.window
    resumed = await state.pauses.resumed_at(mapping)
    if resumed is not None and resumed > since:
        since = resumed
    seen = window.add(mapping, len(failed), now, since)
    if seen < limit.failures and window.due_check(mapping):
        seen = max(seen, await _recorded_failures(state, mapping, since))
    if seen < limit.failures or await state.pauses.paused(mapping) is not None:
        return None
    last = state.errors.redactor.text(failed[-1].message or "")[:200]
    reason = (f"{seen} failures in {limit.minutes:g} minutes (threshold {limit.failures})"
              + (f"; last: {last}" if last else ""))
    pause = await state.pauses.pause(mapping, reason=reason, by=BY, auto=True)
    window.forget(mapping)
    if not pause.fresh:
        return None
    await state.jobs.record_action(mapping, "auto-pause", message=reason)
    emit("mapping_auto_paused", f"mapping {mapping} paused by itself: {reason}", level=logging.WARNING,
         mapping=mapping, reason=reason, failures=seen, minutes=limit.minutes, threshold=limit.failures)
    return pause
