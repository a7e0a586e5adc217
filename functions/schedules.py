"""Timer triggers: the modified-records sync of every enabled mapping (the safety net for lost webhooks), BC
webhook subscriptions created and renewed before their 3-day expiry, the retry of failed records, and the
purge of old jobs and errors. Schedules come from `DUALSYNC_SCHEDULES__*` (shared.settings.ScheduleSettings),
read when the app is indexed.

Each timer takes the process's runtime (`shared.app_runtime.current()`), calls one core function in
`shared.maintenance` / `shared.subscriptions` and logs what it did. A failing run raises, so the Functions
host records the invocation as failed (Application Insights shows it); a subscription BC refuses is logged
as an error without stopping the others. A run missed while the app was down is
simply done late (`past_due`): every one of them is idempotent.

A paused mapping (shared.admin.pauses) is left out of the modified-records sync and the retry; the
subscriptions stay renewed, so its notices keep arriving (and are kept) while it is paused. The modified
sync's permanent failures count towards the auto-pause (shared.autopause), as the processor's do.
"""

from __future__ import annotations

import datetime as dt
import logging

import azure.functions as func

from shared import autopause
from shared.app_runtime import current
from shared.maintenance import purge_history, retry_failed, sync_modified_all
from shared.mapping import Side
from shared.settings import ScheduleSettings, load_schedules
from shared.state import StateStore
from shared.subscriptions import BusinessCentralSubscriptions, ensure_subscriptions, wanted_subscriptions

log = logging.getLogger("dualsync.schedules")

FUNCTION_NAMES = ("timer_modified_sync", "timer_bc_subscriptions", "timer_retry_failed", "timer_purge")


def _late(timer: func.TimerRequest, name: str) -> None:
    if timer.past_due:
        log.info("%s: running late (a scheduled run was missed)", name)


async def _paused(state: StateStore, name: str) -> set[str]:
    """The paused mappings, each logged as skipped by the timer `name`."""
    paused = await state.pauses.list()
    for mapping, pause in sorted(paused.items()):
        log.info("%s %s: skipped, %s since %s (%s)", name, mapping, pause.state, pause.at.isoformat(), pause.reason)
    return set(paused)


async def modified_sync(timer: func.TimerRequest) -> None:
    _late(timer, "modified sync")
    engine = await current().engine()
    paused = await _paused(engine.state, "modified sync")
    report = await sync_modified_all(engine, trigger="schedule", skip=paused)
    for run in report.runs:
        log.info("modified sync %s %s: %s", run.mapping, run.direction.value, run.counts or "nothing changed")
        if run.error:
            log.warning("modified sync %s %s failed: %s", run.mapping, run.direction.value, run.error)
        await autopause.note_results(engine.state, run.mapping, run.failures)
    if report.failed:
        raise RuntimeError("modified sync failed for " + ", ".join(f"{m}: {why}" for m, why in report.failed.items()))


async def bc_subscriptions(timer: func.TimerRequest) -> None:
    _late(timer, "BC subscriptions")
    runtime = current()
    settings = runtime.settings()
    engine = await runtime.engine()
    if settings.public_url is None or settings.webhooks.bc_client_state is None:
        # Not an error for a pack without BC or a deployment without webhooks: the modified sync still runs.
        log.warning("BC subscriptions: DUALSYNC_PUBLIC_URL and DUALSYNC_WEBHOOKS__BC_CLIENT_STATE must both be set; "
                    "nothing subscribed")
        return
    erp = engine.connector(Side.ERP)
    wanted = wanted_subscriptions(engine.pack, company_id=getattr(erp, "company_id", ""),
                                  company_ids=getattr(erp, "companies", ()), public_base_url=settings.public_url)
    if not wanted:
        return
    report = await ensure_subscriptions(
        BusinessCentralSubscriptions(erp), engine.state.subscriptions, wanted,  # type: ignore[arg-type]
        client_state=settings.webhooks.bc_client_state.get_secret_value(), now=dt.datetime.now(dt.UTC),
        renew_within=dt.timedelta(hours=settings.schedules.renew_within_hours))
    log.info("BC subscriptions: created %s, renewed %s, kept %d, removed %d", report.created or "none",
             report.renewed or "none", len(report.kept), len(report.removed))
    for what, why in report.failed:
        # Logged, not raised: one entity BC refuses (not subscribable, handshake failed) must not hide the
        # others' renewals, and the next run tries again; the modified sync covers the gap meanwhile.
        log.error("BC subscription for %s failed: %s", what, why)


async def retry_failed_records(timer: func.TimerRequest) -> None:
    _late(timer, "retry")
    engine = await current().engine()
    report = await retry_failed(engine, trigger="retry", skip_mappings=await _paused(engine.state, "retry"))
    if report.results:
        log.info("retry of %d failed record(s): %d synced, %d still failing", len(report.results),
                 len(report.results) - report.still_failing, report.still_failing)


async def purge(timer: func.TimerRequest) -> None:
    _late(timer, "purge")
    runtime = current()
    days = runtime.settings().schedules.retention_days
    report = await purge_history((await runtime.engine()).state, retention=dt.timedelta(days=days))
    log.info("purge: %d job(s) and %d error(s) older than %d days removed", report.jobs, report.errors, days)


def schedules_blueprint(schedules: ScheduleSettings | None = None) -> func.Blueprint:
    """The four timers on `schedules` (default: from `DUALSYNC_SCHEDULES__*`, validated; `SettingsError`
    names a bad one)."""
    schedules = schedules or load_schedules()
    bp = func.Blueprint()
    timers = ((FUNCTION_NAMES[0], schedules.modified, modified_sync),
              (FUNCTION_NAMES[1], schedules.subscriptions, bc_subscriptions),
              (FUNCTION_NAMES[2], schedules.retry, retry_failed_records),
              (FUNCTION_NAMES[3], schedules.purge, purge))
    for name, schedule, handler in timers:
        bp.function_name(name)(bp.timer_trigger(arg_name="timer", schedule=schedule, use_monitor=True)(handler))
    return bp


bp = schedules_blueprint()
