"""Catching up on a source that has no modified-on field (most Finance and Operations data entities).

Without a change marker, "what changed since the last run" is found by content: every source record of the
mapping is read (page by page, the mapping's filter applied by the service) and mapped, and its mapped values
are compared with the snapshot its coupling holds — the very values last synced. Only records that differ, are
uncoupled (when the mapping may create) or whose last sync failed are handed to `sync_record`; coupled records
the listing no longer returns are handed over too, so a deletion or a record leaving the filter is noticed.

Cost per run: the source's pages (`DUALSYNC_ERP__PAGE_SIZE` records per request, at most 10 000 on F&O) plus the
mapping's couplings read once as a partition range query (1 000 rows per Table request) — no request per
unchanged record. Measured per 10 000 records in bench/RESULTS.md §3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.connectors import Record
from shared.mapping import Side, TableMapping, field_values, source_filter
from shared.state import Coupling

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine

FAILURE = "failure"


@dataclass
class Scan:
    """What a content scan found besides the records it hands over: how many were unchanged, and the coupled
    records the listing no longer returned."""

    unchanged: int = 0
    missing: list[str] = field(default_factory=list)


def differs(mapping: TableMapping, side: Side, record: Record, coupling: Coupling) -> bool:
    """True when the record's mapped values are not what was last synced (or the last sync failed)."""
    if coupling.pending or coupling.snapshot is None or FAILURE in (coupling.result_to_crm, coupling.result_to_erp):
        return True
    return field_values(mapping, record.values, side) != coupling.snapshot.get(side.value)


async def changed_pages(engine: SyncEngine, mapping: TableMapping, side: Side,
                        scan: Scan) -> AsyncIterator[list[tuple[str, Record | None]]]:
    """Pages of (record id, record) to sync, in listing order, then the coupled ids the listing did not return
    (as (id, None): `sync_record` reads them and handles a deletion)."""
    couplings: dict[str, Coupling] = {}
    async for c in engine.state.couplings.list_couplings(mapping.name):
        source_id = c.id_of(side)
        if source_id is not None:
            couplings[source_id.lower()] = c
    creates = not mapping.only_coupled
    seen: set[str] = set()
    async for page in engine.connector(side).list(mapping.entity(side).entity, filter=source_filter(mapping, side),
                                                  select=engine.select(mapping, side)):
        due: list[tuple[str, Record | None]] = []
        for record in page:
            key = record.id.lower()
            if key in seen:
                continue
            seen.add(key)
            coupling = couplings.get(key)
            if coupling is None and not creates:
                continue  # not coupled, and the mapping creates nothing: as the listing path ignores it
            if coupling is None or differs(mapping, side, record, coupling):
                due.append((record.id, record))
            else:
                scan.unchanged += 1
        if due:
            yield due
    scan.missing = [c.id_of(side) or "" for key, c in couplings.items() if key not in seen and not c.pending]
    if scan.missing:
        yield [(record_id, None) for record_id in scan.missing]
