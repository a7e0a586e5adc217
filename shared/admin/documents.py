"""The JSON shapes the admin API answers with (docs/admin-api.md documents each). Written out field by field,
not dumped from dataclasses, so an internal rename never changes the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.mapping import TableMapping
from shared.state import ErrorRecord, Job
from shared.sync import ModifiedRun, SyncResult


def when(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def job(j: Job) -> dict[str, Any]:
    return {"mapping": j.mapping, "job_id": j.job_id, "direction": j.direction, "trigger": j.trigger,
            "status": j.status, "started_at": when(j.started_at), "finished_at": when(j.finished_at),
            "message": j.message, "counts": {k: v for k, v in j.counts.items() if v}, "started_by": j.started_by}


def error(e: ErrorRecord) -> dict[str, Any]:
    return {"mapping": e.mapping, "direction": e.direction, "source_id": e.source_id,
            "destination_id": e.destination_id, "message": e.message, "detail": e.detail,
            "first_seen": when(e.first_seen), "last_seen": when(e.last_seen), "attempts": e.attempts,
            "skipped": e.skipped, "job_id": e.job_id}


def mapping(m: TableMapping, *, last_job: Job | None, errors: int, skipped: int) -> dict[str, Any]:
    return {"name": m.name, "enabled": m.enabled, "kind": m.kind, "direction": m.direction.value,
            "erp_entity": m.erp.entity, "crm_entity": m.crm.entity, "depends_on": list(m.depends_on),
            "last_job": job(last_job) if last_job else None, "errors": errors, "skipped": skipped}


def result(r: SyncResult) -> dict[str, Any]:
    return {"mapping": r.mapping, "direction": r.direction.value, "source_id": r.source_id,
            "outcome": r.outcome.value, "destination_id": r.destination_id, "writes": r.writes,
            "message": r.message, "retryable": r.retryable,
            "conflicts": [{"field": c.field, "winner": c.winner.value if c.winner else None} for c in r.conflicts]}


def modified_run(r: ModifiedRun) -> dict[str, Any]:
    return {"mapping": r.mapping, "direction": r.direction.value, "job_id": r.job_id, "since": when(r.since),
            "watermark": when(r.reached), "counts": r.counts, "error": r.error,
            "failures": [{"source_id": f.source_id, "message": f.message} for f in r.failures]}


def full_run(r: Any) -> dict[str, Any]:
    """A `shared.sync.full.FullRun` (one direction of one mapping)."""
    return {"mapping": r.mapping, "direction": r.direction.value, "job_id": r.job_id,
            "resumed_after": r.resumed_after, "pages": r.pages, "counts": r.counts,
            "planned": dict(r.planned),
            "listed": [{"action": p.action, "source_id": p.source_id, "target_id": p.target_id,
                        "message": p.message} for p in r.listed],
            "failures": [{"source_id": f.source_id, "message": f.message} for f in r.failures]}


def retried(r: Any) -> dict[str, Any]:
    """A `shared.maintenance.RetryResult` (one failed record synced again)."""
    return {"mapping": r.mapping, "direction": str(r.direction), "source_id": r.source_id,
            "outcome": str(r.outcome), "destination_id": r.destination_id, "message": r.message}


def reconcile_report(r: Any) -> dict[str, Any]:
    """A `shared.sync.reconcile.ReconcileReport`, its drift in a stable order (kind, side, ids): the
    systems list records in no guaranteed order, and the same state must give the same document."""
    drift = [{"kind": d.kind, "side": d.side.value if d.side else None, "ids": list(d.ids),
              "fields": list(d.fields), "message": d.message} for d in r.drift]
    drift.sort(key=lambda d: (d["kind"], d["side"] or "", d["ids"]))
    return {"mapping": r.mapping, "checked": dict(r.checked), "clean": r.clean, "drift": drift}
