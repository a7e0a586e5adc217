"""Pausing and resuming a mapping (dual-write's "pause a table map"), and the auto-pause's visible side.

How a pause works, end to end:
- **State.** `engine.state.pauses` (shared.state.pauses): one row per mapping in Table storage, so a pause
  survives restarts and every instance sees it (within the processor's 10 s snapshot).
- **Notices are kept, not dropped.** The processor reads no record of a paused mapping: it puts the notice
  back on the queue, scheduled after the retry back-off (`held` + 1, attempt and `seen_at` unchanged, a new
  message id so duplicate detection keeps it). Service Bus holds it; the queue's time to live is 14 days and
  each copy is a new message, so a pause of any length loses none.
- **Nothing else runs on it.** The modified-records and retry timers skip it; a full sync, a match and a
  modified sync refuse with 409 `MappingPaused` (a dry run, which writes nothing, still runs). An operator's
  sync of one record or retry of an error still runs: a deliberate act, e.g. to try a fix before resuming.
- **Resume catches up at once.** Resuming runs the mapping's modified-records sync (`catch_up`): from the
  watermark, which stood still while paused, it reads every record changed since and brings each pair to its
  latest state (level-triggered: one read decides, whatever happened in between), and finds records deleted
  meanwhile. It does not wait for the kept notices' back-off. Those notices still come back (within the
  back-off's longest delay) and each costs one read of its record, now unchanged: a superseded change costs
  at most that read. A catch-up that fails leaves the mapping running; the next timer run catches up.
- **Auto-pause** (shared.autopause) pauses a mapping by itself, state `auto-paused`, its reason kept.

Every pause and resume writes an audit row (jobs table, trigger `operator`) and a structured event
(`mapping_paused`, `mapping_resumed`; `mapping_auto_paused` from the auto-pause).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.admin import documents, ops
from shared.admin.params import AdminError, bad_request
from shared.mapping import TableMapping, UnknownMappingError
from shared.state.pauses import MAX_REASON_CHARS, Pause
from shared.sync import SyncEngine
from shared.telemetry.events import emit

log = logging.getLogger(__name__)
RUNNING = "running"


def status_fields(pause: Pause | None) -> dict[str, Any]:
    """The `state` and `paused` fields of a mapping's status document."""
    if pause is None:
        return {"state": RUNNING, "paused": None}
    return {"state": pause.state, "paused": {"reason": pause.reason, "by": pause.by, "at": documents.when(pause.at)}}


def _refusal(pause: Pause) -> AdminError:
    return AdminError(409, "MappingPaused",
                      f"mapping '{pause.mapping}' is {pause.state} since {documents.when(pause.at)} by {pause.by} "
                      f"({pause.reason}): resume it first (dualsync resume {pause.mapping})")


async def refuse_if_paused(engine: SyncEngine, names: Sequence[str] | None) -> None:
    """409 when a named mapping is paused; with no names (every enabled mapping), when any is."""
    if names:
        for name in names:
            pause = await engine.state.pauses.get(engine.mapping(name).name)
            if pause is not None:
                raise _refusal(pause)
        return
    paused = await engine.state.pauses.list()
    enabled = {m.name for m in engine.pack.mappings if m.enabled and m.kind == "table"}
    found = sorted(set(paused) & enabled)
    if len(found) == 1:
        raise _refusal(paused[found[0]])
    if found:
        raise AdminError(409, "MappingPaused", f"mappings {', '.join(found)} are paused: name the mappings to "
                                               f"sync, or resume them first")


def _known(engine: SyncEngine, name: str) -> TableMapping:
    try:
        return engine.mapping(name)
    except UnknownMappingError as exc:
        raise AdminError(404, "UnknownMapping", str(exc.args[0] if exc.args else exc)) from None


async def pause_mapping(engine: SyncEngine, name: str, reason: str | None = None) -> dict[str, Any]:
    """Pause an enabled table mapping (404 unknown, 400 disabled or an option mapping); pausing a paused
    mapping replaces its reason. Answers the mapping's status document."""
    m = ops.table_mapping(engine, name)
    why = " ".join((reason or "").split()) or "paused by an operator"
    if len(why) > MAX_REASON_CHARS:
        raise bad_request(f"'reason' is longer than {MAX_REASON_CHARS} characters")
    # The audit row first: it carries the caller (`jobs.acting_as`), which the pause records as `by`.
    audit = await engine.state.jobs.record_action(m.name, "pause", message=why)
    pause = await engine.state.pauses.pause(m.name, reason=why, by=audit.started_by or "unknown")
    emit("mapping_paused", f"mapping {m.name} paused by {pause.by}: {why}", mapping=m.name, reason=why, by=pause.by)
    return await ops.mapping_status(engine, m)


async def resume_mapping(engine: SyncEngine, name: str, *, catch_up: bool = True) -> dict[str, Any]:
    """Resume a mapping (404 unknown; a running one is left as it is) and, with `catch_up`, run its
    modified-records sync now. Answers the status document plus `catch_up`: the runs, or why it failed (null
    when nothing was resumed or no catch-up was asked)."""
    m = _known(engine, name)
    lifted = None
    if await engine.state.pauses.get(m.name) is not None:
        audit = await engine.state.jobs.record_action(m.name, "resume", message="resumed")
        lifted = await engine.state.pauses.resume(m.name, by=audit.started_by or "unknown")
    caught: dict[str, Any] | None = None
    if lifted is not None:
        paused_for = (engine.options.clock() - lifted.at).total_seconds()
        emit("mapping_resumed", f"mapping {m.name} resumed after {paused_for:.0f} s ({lifted.state}: "
                                f"{lifted.reason})", mapping=m.name, was=lifted.state, paused_s=round(paused_for))
        if catch_up and m.enabled and m.kind == "table":
            caught = await _catch_up(engine, m)
    return {**await ops.mapping_status(engine, m), "catch_up": caught}


async def _catch_up(engine: SyncEngine, m: TableMapping) -> dict[str, Any]:
    try:
        runs = await engine.sync_modified(m, trigger="resume")
    except Exception as exc:  # the mapping runs again anyway; the modified-records timer catches up later
        log.exception("catch-up of %s after resume failed", m.name)
        return {"runs": [], "ok": False, "error": str(exc) or type(exc).__name__}
    return {"runs": [documents.modified_run(r) for r in runs], "ok": not any(r.error or r.failures for r in runs),
            "error": None}
