"""Map one side's record onto the other side, field by field, with lookups resolved: the `Expected` values
the plan compares with what the other side holds, and the payload entries that write them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from shared.mapping import Direction, FieldMapping, TableMapping, field_key, lookup_write, map_record
from shared.sync import lookups
from shared.sync.context import RunContext
from shared.sync.errors import DependencyNotCoupled
from shared.sync.plan import Expected

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


def _lookup_field(mapping: TableMapping, flow: Direction, target_name: str) -> FieldMapping:
    return next(f for f in mapping.fields_for(flow) if f.lookup is not None and f.name(flow.target) == target_name)


async def expected_for(engine: SyncEngine, ctx: RunContext, mapping: TableMapping, flow: Direction,
                       record: Mapping[str, Any], keys: Collection[str] | None, *,
                       creating: bool = False) -> Expected:
    """What `flow.target` should hold for the fields in `keys` (all fields when None) according to `record`
    (read from `flow.source`). Lookups are resolved only for those fields, so an unchanged reference costs
    nothing. With `creating`, the payload also carries constants, defaults and the mapping's `on_create`
    values (under the key ""), which a create needs and an update must not repeat."""
    target = flow.target
    only = None if keys is None else set(keys)
    first = map_record(mapping, record, flow, only=only, creating=creating)
    resolved: dict[str, Any] = {}
    blanks: dict[str, FieldMapping] = {}
    unresolved: dict[str, str] = {}
    for request in first.lookups:
        try:
            value = await lookups.resolve(engine, ctx, request)
        except DependencyNotCoupled as exc:
            # Kept as a field error: it fails the sync only if this field has to be written.
            unresolved[field_key(_lookup_field(mapping, flow, request.field))] = exc.message
            continue
        if value is lookups.BLANK:
            blanks[request.field] = _lookup_field(mapping, flow, request.field)
        else:
            resolved[request.field] = value
    result = map_record(mapping, record, flow, only=only, creating=creating, resolved=resolved) if first.lookups \
        else first
    exp = Expected(errors=dict(unresolved), unresolved=set(unresolved))
    for error in result.errors:
        exp.errors.setdefault(error.field, error.message)
    claimed: set[str] = set()
    for f in mapping.fields_for(flow):
        key = field_key(f)
        if (only is not None and key not in only) or key in exp.errors:
            continue
        name = f.name(target)
        assert name is not None
        if f.lookup is not None:
            if name in blanks:
                entry_key, _ = lookup_write(mapping, f, target, None)
                exp.payload[key], exp.values[key] = {entry_key: None}, None
                claimed.add(entry_key)
                continue
            entry_key, _ = lookup_write(mapping, f, target, "x")
            if entry_key in result.payload:
                exp.payload[key] = {entry_key: result.payload[entry_key]}
                exp.values[key] = resolved.get(name)
                claimed.add(entry_key)
            continue
        if name in result.payload:
            exp.payload[key] = {name: result.payload[name]}
            if not f.sourceless:
                exp.values[key] = result.payload[name]
            claimed.add(name)
    if creating:
        # on_create values and one-sided constants/defaults: written on create only.
        exp.payload[""] = {k: v for k, v in result.payload.items() if k not in claimed}
        for f in mapping.fields_for(flow):
            if f.sourceless and field_key(f) in exp.payload:
                exp.payload[""].update(exp.payload.pop(field_key(f)))
    return exp


def full_payload(exp: Expected) -> dict[str, Any]:
    """Every entry of an `Expected` (what a create writes)."""
    out: dict[str, Any] = {}
    for entries in exp.payload.values():
        out.update(entries)
    return out

