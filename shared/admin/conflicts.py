"""The admin operations on settled conflicts (`GET conflicts`, `POST conflicts/{id}/reverse`) and their JSON
documents. An unknown entry is 404; one that cannot be reversed (reversed already, a deletion, a redacted value,
a pair that changed since) is 409 with the reason; a source system that refuses is 502."""

from __future__ import annotations

from typing import Any

from shared.admin import documents
from shared.admin.ops import translated
from shared.admin.params import AdminError
from shared.state import ConflictEntry
from shared.sync import SyncEngine
from shared.sync import conflicts as settled


def conflict(e: ConflictEntry) -> dict[str, Any]:
    return {"id": e.entry_id, "mapping": e.mapping, "kind": e.kind, "erp_id": e.erp_id, "crm_id": e.crm_id,
            "field": e.field, "erp_value": e.erp_value, "crm_value": e.crm_value, "base_value": e.base_value,
            "winner": e.winner.value if e.winner else None, "policy": e.policy, "at": documents.when(e.at),
            "job_id": e.job_id, "reversible": e.exact and not e.reversed and e.kind == "update",
            "reversed_at": documents.when(e.reversed_at)}


async def list_conflicts(engine: SyncEngine, name: str | None, *, reversed_: bool | None = None,
                         limit: int = 50) -> dict[str, Any]:
    """Entries newest first; `reversed_` keeps only reversed (True) or not reversed (False) ones."""
    if name is not None:
        with translated():
            engine.mapping(name)
    found = [e async for e in engine.state.conflicts.list_conflicts(name)
             if reversed_ is None or e.reversed == reversed_]
    found.sort(key=lambda e: (e.at, e.entry_id), reverse=True)
    return {"conflicts": [conflict(e) for e in found[:limit]], "total": len(found)}


async def reverse_conflict(engine: SyncEngine, entry_id: str) -> dict[str, Any]:
    with translated():
        try:
            done = await settled.reverse(engine, entry_id)
        except settled.Refused as exc:
            raise AdminError(409, exc.code, exc.message) from None
    return {"conflict": conflict(done.entry), "result": documents.result(done.sync), "ok": done.sync.ok}
