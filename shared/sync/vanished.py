"""Deletions no notice reported: coupled source records that are gone, found by the modified-records sync.

A lost webhook for a change is caught up by the modified-on watermark; a lost webhook for a *deletion* is not,
since a deleted record is no longer there to be listed. So every modified-records run also asks, per source
side, which coupled records vanished:

- Dataverse: change tracking. The run follows the delta link it kept (a watermark per mapping and table) and
  takes the `$deletedEntity` ids. The first run, or one whose link the service refused (ExpiredVersionStamp
  past the organization's ExpireChangeTrackingInDays), starts tracking again: that read lists every id of the
  table, which is a key-set comparison, and yields a new link. A table without change tracking falls back to
  the key-set comparison every run, and the run says so.
- Business Central and Finance and Operations have no delete feed over OData: a key-set comparison. The ids of
  every coupled source record (the couplings table) against the ids the source lists (`$select` of the key
  only, paged; every synced company). Cost per run: the couplings partition (1 000 rows a request) plus the
  source's ids (`page_size` a request).

Guards against deleting what is not deleted: the listing carries no mapping filter (a record that left the
filter still exists; the per-record sync ignores it) and only the companies restriction; a coupled id outside
what the listing covers (a company not synced) is never a candidate; each candidate is confirmed by a GET that
answers NotFound; a listing that fails part way applies nothing (the run reports the failure). Confirmed ids
go through the engine's per-record sync, which reads the record again and applies the mapping's deletion rule
(`deletes.source_gone`), so error records and job counts work as for a webhook.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.connectors import ChangeTrackingDisabled, ConnectorError, DeltaLinkExpired, NotFound, TrackedChanges
from shared.mapping import Side, TableMapping

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine

DELTA, KEYSET, CONTENT = "delta link", "key-set comparison", "content comparison"


@dataclass
class Vanished:
    """What one run's deletion check found. `found`: coupled source records confirmed gone (each handed to the
    deletion rule); `unconfirmed`: candidates whose GET failed (handed over too: the per-record sync reads them
    again and records a failure); `outside`: coupled ids the listing does not cover (other companies), not
    checked; `delta_link`: the link to keep once the run has handled what it found."""

    how: str | None = None
    found: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    outside: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    delta_link: str | None = None
    entity: str = ""

    def summary(self) -> str | None:
        """One line for the job's message, or None when there is nothing to say."""
        parts = []
        if self.found:
            parts.append(f"{len(self.found)} coupled record(s) of {self.entity} deleted without a notice "
                         f"(found by {self.how})")
        if self.outside:
            parts.append(f"{self.outside} coupled id(s) outside the companies read, not checked")
        if self.unconfirmed:
            parts.append(f"{len(self.unconfirmed)} possibly deleted record(s) could not be read")
        return "; ".join([*parts, *self.notes, *([self.error] if self.error else [])]) or None


async def find(engine: SyncEngine, mapping: TableMapping, side: Side) -> Vanished:
    """The coupled `side` records of `mapping` that are gone. Raises `ConnectorError` when a listing fails:
    then nothing is applied."""
    entity = mapping.entity(side).entity
    report = Vanished(entity=entity)
    coupled = await coupled_ids(engine, mapping, side, report)
    connector: Any = engine.connector(side)
    if hasattr(connector, "track_changes"):  # a service with a delete feed (Dataverse); the ERPs have none
        candidates = await _by_change_tracking(engine, mapping, connector, entity, coupled, report)
    else:
        report.how = KEYSET
        candidates = _missing(coupled, await _listed(connector, entity, _company_filter(mapping, side)))
    gone, report.unconfirmed = await confirm(engine, mapping, side, candidates)
    report.found = gone
    return report


async def commit(engine: SyncEngine, mapping: TableMapping, report: Vanished) -> None:
    """Keep the new delta link, once the run handled what the old one reported (a crash before this point
    reads the same changes again)."""
    if report.delta_link:
        await engine.state.watermarks.store_delta_link(mapping.name, report.entity, report.delta_link)


async def coupled_ids(engine: SyncEngine, mapping: TableMapping, side: Side, report: Vanished) -> dict[str, str]:
    """Complete couplings' `side` ids inside what a listing covers, by lower-case id (ids compare as the
    services compare keys: GUIDs and F&O key text case-insensitively)."""
    connector = engine.connector(side)
    entity = mapping.entity(side).entity
    found: dict[str, str] = {}
    async for c in engine.state.couplings.list_couplings(mapping.name):
        record_id = c.id_of(side)
        if c.pending or not record_id:
            continue
        if _outside(connector, mapping, side, entity, record_id):
            report.outside += 1
        else:
            found[record_id.lower()] = record_id
    return found


def _outside(connector: Any, mapping: TableMapping, side: Side, entity: str, record_id: str) -> bool:
    """True when the listing does not cover `record_id`: an id of a company this connector does not read, or of
    one outside the pack's `companies.only`."""
    try:
        key = connector.key_values(entity, record_id)
    except (ConnectorError, ValueError):
        return True
    scope = mapping.company
    if side is Side.ERP and scope is not None and scope.erp_field in key:
        return not scope.allows(str(key[scope.erp_field]))
    return False


def _company_filter(mapping: TableMapping, side: Side) -> str | None:
    """Only the companies restriction: the mapping's filter is left out on purpose (see the module docstring)."""
    return mapping.company.erp_filter() if side is Side.ERP and mapping.company is not None else None


async def _listed(connector: Any, entity: str, filter: str | None) -> set[str]:
    """Every id the source lists now; all pages or an exception."""
    ids: set[str] = set()
    async for page in connector.list_ids(entity, filter=filter):
        ids.update(i.lower() for i in page)
    return ids


def _missing(coupled: dict[str, str], present: set[str]) -> list[str]:
    return [record_id for key, record_id in coupled.items() if key not in present]


async def _by_change_tracking(engine: SyncEngine, mapping: TableMapping, connector: Any, entity: str,
                              coupled: dict[str, str], report: Vanished) -> list[str]:
    links = engine.state.watermarks
    link = await links.find_delta_link(mapping.name, entity)
    if link is not None:
        try:
            changes: TrackedChanges = await connector.track_changes(entity, link)
        except DeltaLinkExpired as exc:
            report.notes.append(f"the kept delta link of {entity} was refused ({exc.message}); deletions found by "
                                "key-set comparison this once, and tracking started again")
        else:
            report.how, report.delta_link = DELTA, changes.delta_link
            return [coupled[d.lower()] for d in dict.fromkeys(changes.deleted) if d.lower() in coupled]
    report.how = KEYSET
    try:
        started = await connector.track_changes(entity)
    except ChangeTrackingDisabled as exc:
        report.notes.append(f"change tracking is not enabled on {entity} ({exc.message}); deletions found by "
                            "key-set comparison (turn on 'Track changes' for the table to read them from a delta "
                            "link)")
        return _missing(coupled, await _listed(connector, entity, None))
    if started.delta_link is None:
        report.notes.append(f"the service returned no delta link for {entity}; deletions found by key-set "
                            "comparison")
    report.delta_link = started.delta_link
    return _missing(coupled, {i.lower() for i in started.changed})


async def confirm(engine: SyncEngine, mapping: TableMapping, side: Side,
                  candidates: list[str]) -> tuple[list[str], list[str]]:
    """(gone, unconfirmed) among `candidates`: a GET of the key answered NotFound, or failed otherwise. Those
    the GET finds exist and are left alone (created meanwhile, or not deleted after all)."""
    connector = engine.connector(side)
    entity = mapping.entity(side).entity
    gate = asyncio.Semaphore(engine.options.concurrency)
    select = list(connector.key_fields(entity))

    async def check(record_id: str) -> str:
        async with gate:
            try:
                await connector.get(entity, record_id, select=select)
            except NotFound:
                return "gone"
            except ConnectorError:
                return "unconfirmed"
        return "present"

    verdicts = await asyncio.gather(*(check(i) for i in candidates))
    return ([i for i, v in zip(candidates, verdicts, strict=True) if v == "gone"],
            [i for i, v in zip(candidates, verdicts, strict=True) if v == "unconfirmed"])
