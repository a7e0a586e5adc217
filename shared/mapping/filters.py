"""Mapping filters: in-process evaluation on a record, and the `$filter` to send to the source API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.mapping.model import Pack, TableMapping
from shared.mapping.types import Direction, Side
from shared.odata import evaluate_filter, format_filter, parse_filter


def matches(mapping: TableMapping, record: Mapping[str, Any], side: Side | str) -> bool:
    """True when a record read from `side` passes that side's filter (no filter: always). On the ERP side of
    a company-specific mapping the record's company must also be one the pack's `companies.only` lists
    (compared case-insensitively, as the ERPs do)."""
    side = Side(side)
    if side is Side.ERP and mapping.company is not None and mapping.company.erp_outside(record) is not None:
        return False
    text = mapping.filters.get(side)
    return text is None or evaluate_filter(text, record)


def effective_filter(mapping: TableMapping, side: Side | str) -> str | None:
    """The mapping's `$filter` for `side` with the company restriction (`companies.only`) ANDed to the ERP
    side's: what `source_filter` sends and what `matches` evaluates."""
    side = Side(side)
    parts = [mapping.filters.get(side)]
    if side is Side.ERP and mapping.company is not None:
        parts.append(mapping.company.erp_filter())
    texts = [format_filter(parse_filter(p)) for p in parts if p]
    if len(texts) <= 1:
        return texts[0] if texts else None
    return " and ".join(f"({t})" for t in texts)


def source_filter(
    mapping: TableMapping,
    side: Side | str,
    *,
    modified_field: str | None = None,
    modified_since: dt.datetime | None = None,
) -> str | None:
    """The `$filter` to query `side` with: the mapping's filter, and `modified_field ge modified_since`
    for incremental reads (ge, not gt: the caller overlaps windows and de-duplicates by key)."""
    parts = []
    text = effective_filter(mapping, side)
    if text is not None:
        parts.append(text)
    if modified_since is not None:
        if modified_field is None:
            raise ValueError(f"mapping '{mapping.name}': an incremental read needs the modified-on field")
        if modified_since.tzinfo is None:
            raise ValueError("modified_since must be timezone-aware")
        stamp = modified_since.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        parts.append(f"{modified_field} ge {stamp}")
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " and ".join(f"({p})" for p in parts)


def select_mappings(pack: Pack, side: Side | str, entity: str, record: Mapping[str, Any]) -> list[TableMapping]:
    """The enabled mappings a record of `entity` read from `side` flows into.

    Inside a route only the first mapping whose filter the record passes takes it (one Sales contact
    becomes either an F&O customer or a contact person, never both); outside routes every enabled mapping
    of that entity that can carry data away from `side` and whose filter passes. The result is empty
    for a routed record no rule takes (check `pack.route_for(...).otherwise` to report it)."""
    side = Side(side)
    flow = Direction.from_source(side)
    route = pack.route_for(side, entity)
    if route is not None:
        for name in route.mappings:
            m = pack.mapping(name)
            if m.enabled and matches(m, record, side):
                return [m]
        return []
    return [
        m for m in pack.mappings
        if m.enabled and m.entity(side).entity == entity and m.direction.allows(flow) and matches(m, record, side)
    ]
