"""Lookups: turn a reference held by the source record into the value the target side holds, through the
couplings of the referenced mapping — syncing an uncoupled referenced record first (bounded depth), or
failing with a clear "dependency not coupled" error. A dangling lookup is never written."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from shared.connectors import NotFound
from shared.mapping import Direction, LookupRequest, Side, TableMapping, effective_filter, map_record, read_name
from shared.sync.context import RunContext
from shared.sync.errors import DependencyNotCoupled, RetryLater

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine

BLANK = object()  # an option lookup whose value maps to no option: written as null
# What a lookup to a not-yet-coupled dependency resolves to in a dry run (never written: a dry run writes nothing).
DRY_RUN_PENDING = "00000000-0000-0000-0000-0000000000d7"


def odata_literal(value: Any) -> str:
    """`value` as an OData literal for `$filter` (strings quoted, quotes doubled)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _guid(value: Any) -> str:
    """A lookup id as a bare GUID literal; anything else quoted (the service then says what is wrong)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return odata_literal(value)


async def resolve(engine: SyncEngine, ctx: RunContext, request: LookupRequest) -> Any:
    """The target-side value for `request` (an id, a code, or an option value; `BLANK` for no option).
    Raises DependencyNotCoupled naming the mapping, the side and the value."""
    cache_key = (request.mapping, request.source_side, request.by, request.target_by, str(request.value),
                 str(request.company))
    if cache_key in ctx.lookup_cache:
        return ctx.lookup_cache[cache_key]
    dep = engine.pack.mapping(request.mapping)
    if dep.kind == "option":
        value = await _option_value(engine, dep, request)
    else:
        value = await _coupled_value(engine, ctx, dep, request)
    ctx.lookup_cache[cache_key] = value
    return value


async def _find_referenced(engine: SyncEngine, dep: TableMapping, request: LookupRequest) -> str:
    """The id of the referenced record on the source side (the lookup holds its id, or its `by` field)."""
    side = request.source_side
    if request.by is None:
        return str(request.value)
    entity = dep.entity(side).entity
    text = f"{request.by} eq {odata_literal(request.value)}"
    if request.company is not None and dep.company is not None:
        # Within the referring record's company: the same code exists once per company.
        attribute = read_name(dep, dep.company.field, side) or dep.company.name(side)
        company = odata_literal(request.company) if side is Side.ERP else _guid(request.company)
        text += f" and {attribute} eq {company}"
    if (scope := effective_filter(dep, side)) is not None:
        # Only records the referenced mapping syncs can be referenced (P2C's products of one legal entity).
        text = f"({text}) and ({scope})"
    async for page in engine.connector(side).list(entity, filter=text, page_size=2):
        if len(page) > 1:
            raise DependencyNotCoupled(f"lookup to '{dep.name}': more than one {side.value} {entity} record has "
                                       f"{request.by} = {request.value!r}")
        if page:
            return page[0].id
    raise DependencyNotCoupled(f"lookup to '{dep.name}': no {side.value} {entity} record has "
                               f"{request.by} = {request.value!r}")


async def _coupled_value(engine: SyncEngine, ctx: RunContext, dep: TableMapping, request: LookupRequest) -> Any:
    side, target = request.source_side, request.source_side.other
    ref_id = await _find_referenced(engine, dep, request)
    coupling = await engine.state.couplings.find_coupling(dep.name, side, ref_id)
    if (coupling is None or coupling.pending) and ctx.dry_run:
        why = _cannot_sync(engine, ctx, dep, side, ref_id)
        if why is None:
            return DRY_RUN_PENDING  # a real run syncs the dependency first
        raise DependencyNotCoupled(f"dependency not coupled: the {side.value} {dep.name} record {ref_id!r} has no "
                                   f"coupled {target.value} record; {why}")
    if coupling is None or coupling.pending:
        why = await _sync_dependency(engine, ctx, dep, side, ref_id)
        coupling = await engine.state.couplings.find_coupling(dep.name, side, ref_id)
        if coupling is None or coupling.pending:
            raise DependencyNotCoupled(f"dependency not coupled: the {side.value} {dep.name} record {ref_id!r} "
                                       f"(referenced as {request.value!r}) has no coupled {target.value} record; "
                                       f"{why}")
    other_id = coupling.id_of(target)
    assert other_id is not None
    if request.target_by is None:
        return other_id
    try:
        other = await engine.connector(target).get(dep.entity(target).entity, other_id)
    except NotFound:
        raise DependencyNotCoupled(f"dependency not coupled: the {target.value} {dep.name} record {other_id!r} "
                                   f"coupled to {ref_id!r} no longer exists") from None
    return other.values.get(request.target_by)


async def _sync_dependency(engine: SyncEngine, ctx: RunContext, dep: TableMapping, side: Side, ref_id: str) -> str:
    """Try to sync the referenced record first; returns why that did not couple it (for the error message)."""
    why = _cannot_sync(engine, ctx, dep, side, ref_id)
    if why is not None:
        return why
    flow, key = Direction.from_source(side), (dep.name, side, ref_id)
    result = await engine.sync_in_context(ctx.for_dependency(key), dep, flow, ref_id)
    ctx.dependencies.append(result)
    if result.retryable:
        raise RetryLater(f"dependency {dep.name} {ref_id!r} could not be synced yet: {result.message}")
    return f"syncing it first gave: {result.outcome.value}{': ' + result.message if result.message else ''}"


def _cannot_sync(engine: SyncEngine, ctx: RunContext, dep: TableMapping, side: Side, ref_id: str) -> str | None:
    """Why the referenced record cannot be synced first, or None when it can."""
    flow = Direction.from_source(side)
    if not dep.enabled:
        return f"mapping '{dep.name}' is disabled"
    if not dep.direction.allows(flow):
        return (f"mapping '{dep.name}' does not sync {flow.value} (it is {dep.direction.value}); couple the "
                f"record or sync '{dep.name}' first")
    if ctx.depth >= engine.options.max_dependency_depth:
        return f"dependency depth limit {engine.options.max_dependency_depth} reached; sync '{dep.name}' first"
    if (dep.name, side, ref_id) in ctx.active:
        return "the records refer to each other in a cycle; sync one of them first"
    return None


async def _option_value(engine: SyncEngine, dep: TableMapping, request: LookupRequest) -> Any:
    """Option mappings need no coupling: read the ERP record (payment terms) and map it to its option value."""
    if request.source_side is not Side.ERP:
        raise DependencyNotCoupled(f"lookup to option mapping '{dep.name}' maps ERP → CRM only")
    ref_id = await _find_referenced(engine, dep, request)
    try:
        record = await engine.connector(Side.ERP).get(dep.erp.entity, ref_id)
    except NotFound:
        raise DependencyNotCoupled(f"lookup to '{dep.name}': the ERP {dep.erp.entity} record {ref_id!r} "
                                   f"does not exist") from None
    result = map_record(dep, record.values, Direction.TO_CRM)
    if result.errors:
        raise DependencyNotCoupled(f"lookup to option mapping '{dep.name}': {result.errors[0]}")
    attribute = dep.crm.option_set or dep.crm.key
    value = result.payload.get(attribute)
    return BLANK if value is None or value == "" else value
