"""Company striping in the sync engine: is a record inside the companies this deployment syncs?

ERP records carry their company as a value (`dataAreaId = 'usmf'`): `CompanyScope.erp_outside` decides, and
the ERP `$filter` already keeps other companies out of every listing. CRM records carry a lookup
(`_msdyn_company_value`): it is resolved through the companies mapping's couplings — never by syncing a
company first — to the ERP company it stands for. A CRM record whose company is empty, not coupled, or not in
`companies.only` is outside: the callers report it as IGNORED with the message returned here (one record,
one readable line; not an error record that would repeat on every run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.connectors import ConnectorError
from shared.mapping import Direction, Side, TableMapping, field_key, is_empty, map_record, read_name
from shared.sync import lookups
from shared.sync.context import RunContext
from shared.sync.errors import DependencyNotCoupled

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


async def outside(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, side: Side,
                  values: Mapping[str, Any]) -> str | None:
    """Why a record read from `side` is outside the companies this deployment syncs; None when inside (or
    when the mapping is not company-specific)."""
    scope = mapping.company
    if scope is None:
        return None
    if side is Side.ERP:
        return scope.erp_outside(values)
    attribute = read_name(mapping, scope.field, Side.CRM) or scope.crm_field
    if attribute not in values:
        return None  # not read (a partial record): the mapping decides as for any unread field
    if is_empty(values.get(attribute)):
        return f"it has no company ({scope.crm_field} is empty), so it belongs to no {scope.mapping} record"
    requests = map_record(mapping, values, Direction.TO_ERP, only={field_key(scope.field)}).lookups
    if not requests:
        return None
    # Through existing couplings only (at the depth limit nothing is synced first): a company is never
    # created on the ERP side because a CRM record refers to it.
    resolving = dataclasses.replace(ctx, depth=engine.options.max_dependency_depth)
    try:
        code = await lookups.resolve(engine, resolving, requests[0])
    except DependencyNotCoupled:
        name = await _company_name(engine, ctx, scope.mapping, values.get(attribute))
        return (f"its company {name} ({scope.crm_field}) is not coupled to an ERP company; couple it or sync "
                f"'{scope.mapping}' first")
    if scope.allows(code):
        return None
    return scope.outside_message(code, f"its {scope.crm_field}")


async def _company_name(engine: SyncEngine, ctx: RunContext, companies: str, crm_id: Any) -> str:
    """How a message names a CRM company: its code (the field the ERP's company id maps to), else its id."""
    cache_key = ("company-name", companies, str(crm_id))
    if cache_key in ctx.lookup_cache:
        return ctx.lookup_cache[cache_key]
    dep = engine.pack.mapping(companies)
    decl = engine.pack.companies
    wanted = (decl.erp_by if decl is not None else None) or dep.erp.key
    attribute = next((f.crm for f in dep.fields if f.erp == wanted and f.crm), None) or next(
        iter(dep.crm.natural_key), None)
    name = repr(str(crm_id))
    if attribute is not None:
        try:
            record = await engine.connector(Side.CRM).get(dep.crm.entity, str(crm_id))
            if not is_empty(record.values.get(attribute)):
                name = f"{record.values[attribute]!r}"
        except ConnectorError:
            pass  # the id names it well enough
    ctx.lookup_cache[cache_key] = name
    return name
