"""Which webhooks a pack needs, and which mappings a notice of an entity feeds (one message each)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.mapping import Direction, Pack, Side, System, TableMapping, effective_filter, matches
from shared.notices.model import Change, ChangeNotice
from shared.odata import filter_fields
from shared.queue import SyncMessage

# Systems whose webhooks we receive: BC subscriptions, Dataverse service endpoints, F&O data events.
WEBHOOK_SYSTEMS = (System.BUSINESS_CENTRAL, System.DATAVERSE, System.FINANCE_OPERATIONS)


@dataclass(frozen=True, order=True)
class WebhookSource:
    """One webhook endpoint: records of `entity` (entity set) read from `side` of `system`."""

    system: System
    side: Side
    entity: str

    @property
    def route(self) -> str:
        return f"webhooks/{self.system.value}/{self.entity}"

    @property
    def function_name(self) -> str:
        return f"webhook_{self.system.value}_{self.entity}"


def _carries(mapping: TableMapping, side: Side) -> bool:
    return mapping.enabled and mapping.kind == "table" and mapping.direction.allows(Direction.from_source(side))


def webhook_sources(pack: Pack) -> list[WebhookSource]:
    """Every (system, entity) the pack syncs from, for systems that send webhooks; sorted, no repeats."""
    found = {WebhookSource(pack.systems.get(side), side, m.entity(side).entity)
             for m in pack.mappings for side in (Side.ERP, Side.CRM)
             if _carries(m, side) and pack.systems.get(side) in WEBHOOK_SYSTEMS}
    return sorted(found)


def logical_name(pack: Pack, entity: str, side: Side = Side.CRM) -> str | None:
    """The logical name of `side`'s entity set `entity` when the pack names it: Dataverse's table logical name,
    or F&O's public entity name (`CustomerV3` for `CustomersV3`)."""
    return next((m.entity(side).logical_name for m in pack.mappings
                 if m.entity(side).entity == entity and m.entity(side).logical_name), None)


def candidate_mappings(pack: Pack, side: Side, entity: str) -> list[TableMapping]:
    """Mappings a change of `entity` on `side` may feed. The record's values decide among them (filters,
    routes), and the processor reads them when it runs, so every candidate gets a message."""
    return [m for m in pack.mappings if _carries(m, side) and m.entity(side).entity == entity]


def taking_mappings(pack: Pack, side: Side, entity: str, values: Mapping[str, Any]) -> list[TableMapping]:
    """The candidate mappings whose filter `values` (a whole record, as F&O's data events carry it) passes, or
    that cannot be judged from it (a filter field is missing): unknown is never "outside". The processor would
    ignore the others (outside the filter) after reading the record: not queueing them saves the read."""
    out = []
    for m in candidate_mappings(pack, side, entity):
        text = effective_filter(m, side)
        if text is None or not filter_fields(text) <= set(values) or matches(m, values, side):
            out.append(m)
    return out


def messages_for(pack: Pack, side: Side, notice: ChangeNotice) -> list[SyncMessage]:
    """One message per candidate mapping of the notice's record (none for a collection: expand it first)."""
    if notice.record_id is None or notice.change is Change.COLLECTION:
        return []
    flow = Direction.from_source(side)
    return [SyncMessage(m.name, flow, notice.record_id, notice.change.value, marker=notice.marker,
                        seen_at=notice.seen_at)
            for m in candidate_mappings(pack, side, notice.entity)]
