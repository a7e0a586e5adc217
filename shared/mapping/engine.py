"""Map one source record to a target payload. Pure: no I/O, no exceptions for bad records.

A field that fails (a transform rejects the value, a value is not in a value map, a not-null field ends
up empty, a lookup is not coupled) becomes a `FieldError` in the result and is left out of the payload;
the caller decides not to write the record and records the error, and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.mapping.errors import FieldError
from shared.mapping.model import FieldMapping, TableMapping
from shared.mapping.transforms import TransformContext
from shared.mapping.types import Direction, Side

# Business Central's fields are not nullable: an id field that refers to nothing holds the nil GUID.
NIL_GUID = "00000000-0000-0000-0000-000000000000"


def is_empty(value: Any) -> bool:
    """Empty as integrations mean it: null, the empty string, or the nil GUID of a lookup that refers to
    nothing (BC's blank option " " is a value)."""
    return value is None or value == "" or (isinstance(value, str) and value == NIL_GUID)


@dataclass(frozen=True)
class LookupRequest:
    """A lookup the caller must resolve before the payload is complete: find the record of `mapping`
    whose `by` field (its primary key when None) on `source_side` equals `value`, follow its coupling,
    and pass the counterpart's id (or its `target_by` field) as `resolved[field]`. `company`: the source
    record's company (as it holds it) when both mappings are company-specific, so a search by `by` stays
    within that company (customer group '10' exists once per legal entity)."""

    field: str  # the target-side field name in the pack, the key of `resolved`
    mapping: str
    source_side: Side
    value: Any
    by: str | None
    target_by: str | None
    company: Any = None


@dataclass
class MapResult:
    payload: dict[str, Any] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)
    lookups: list[LookupRequest] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No field failed (lookups may still be pending)."""
        return not self.errors

    @property
    def complete(self) -> bool:
        """No field failed and every lookup was resolved: the payload can be written."""
        return not self.errors and not self.lookups


def field_key(field: FieldMapping) -> str:
    """Stable name of a field mapping inside its table mapping (snapshots and merges are keyed by it)."""
    return field.label


def read_name(mapping: TableMapping, field: FieldMapping, side: Side) -> str | None:
    """The attribute holding the field's value in a record read from `side`. Dataverse returns lookups
    as `_<attribute>_value`; option-set lookups and every ERP field read as themselves."""
    name = field.name(side)
    if name and field.lookup and side is Side.CRM:
        target = mapping.lookup_target(field)
        if target is None or target.kind != "option":
            return f"_{name}_value"
    return name


def lookup_write(mapping: TableMapping, field: FieldMapping, side: Side, target_id: Any) -> tuple[str, Any]:
    """The payload entry that sets lookup `field` on `side` to the referenced record `target_id`:
    Dataverse `{"transactioncurrencyid@odata.bind": "/transactioncurrencies(<id>)"}`, an option value for
    option mappings, the plain id/code on the ERP side (BC `currencyId`, F&O `CustomerGroupId`)."""
    name = field.name(side)
    assert name is not None and field.lookup is not None
    target = mapping.lookup_target(field)
    if side is Side.ERP or (target is not None and target.kind == "option"):
        return name, target_id
    nav = field.lookup.crm_bind or name
    if target_id is None:
        return f"{nav}@odata.bind", None
    entity_set = target.crm.entity if target is not None else name
    return f"{nav}@odata.bind", f"/{entity_set}({target_id})"


def _flow(direction: Direction | str) -> Direction:
    flow = Direction.parse(direction) if isinstance(direction, str) else direction
    if flow is Direction.BIDIRECTIONAL:
        raise ValueError("map_record maps one way: pass to_crm or to_erp")
    return flow


def convert(mapping: TableMapping, field: FieldMapping, value: Any, flow: Direction,
            record: Mapping[str, Any] | None = None) -> Any:
    """Run one non-lookup source value through the field's chain for `flow` (default, transforms, value
    map, or their inverses). Raises TransformError; `map_record` is the forgiving wrapper."""
    if field.constant is not None:
        return field.constant
    if is_empty(value):
        return field.default if field.default is not None else value
    ctx = TransformContext(record or {})
    # The chain is written in the field's forward direction: CRM → ERP only for to_erp fields.
    forward_flow = Direction.TO_ERP if mapping.field_direction(field) is Direction.TO_ERP else Direction.TO_CRM
    if flow is forward_flow:
        for t in field.transforms:
            value = t.apply(value, ctx)
        if field.value_map is not None and not is_empty(value):
            value = field.value_map.forward(value)
        return value
    if field.value_map is not None:
        value = field.value_map.backward(value)
    if field.reverse_transforms is not None:
        for t in field.reverse_transforms:
            value = t.apply(value, ctx)
    else:
        for t in reversed(field.transforms):
            value = t.inverse(value, ctx)
    return value


def map_record(
    mapping: TableMapping,
    record: Mapping[str, Any],
    direction: Direction | str,
    *,
    resolved: Mapping[str, Any] | None = None,
    creating: bool = False,
    only: Collection[str] | None = None,
) -> MapResult:
    """Map `record` (read from the source side of `direction`) to the target's payload.

    A field whose source attribute is absent from `record` is left out (a partial read must not blank
    the target); present-but-null values are mapped (defaults apply). `resolved` gives lookup results
    keyed by target field name; lookups missing from it come back in
    `result.lookups` and stay out of the payload. `creating` adds the mapping's `on_create` values (mapped
    values win). `only` restricts the fields by `field_key` (e.g. the fields a merge decided to push).
    """
    flow = _flow(direction)
    source, target = flow.source, flow.target
    result = MapResult()
    for f in mapping.fields_for(flow):
        if only is not None and field_key(f) not in only:
            continue
        name = f.name(target)
        assert name is not None  # the loader rejects fields whose target side is unnamed for a flow
        if not f.sourceless and read_name(mapping, f, source) not in record:
            continue  # not read (partial record): unknown is not empty, so nothing is overwritten
        try:
            if f.lookup is not None:
                _map_lookup(mapping, f, record, source, target, resolved, result)
                continue
            raw = None if f.sourceless else record.get(read_name(mapping, f, source) or "")
            value = convert(mapping, f, raw, flow, record)
        except Exception as exc:  # any failure of one field must stay a per-record error
            if not f.clear_on_fail:
                result.errors.append(_error(mapping, f, str(exc) or type(exc).__name__))
                continue
            value = None
        if f.not_null and is_empty(value):
            result.errors.append(_error(mapping, f, f"'{name}' must not be empty (not_null)"))
            continue
        result.payload[name] = value
    if creating:
        result.payload = {**mapping.on_create.get(target), **result.payload}
    return result


def _map_lookup(mapping: TableMapping, f: FieldMapping, record: Mapping[str, Any], source: Side,
                target: Side, resolved: Mapping[str, Any] | None, result: MapResult) -> None:
    assert f.lookup is not None
    target_name = f.name(target) or ""
    raw = record.get(read_name(mapping, f, source) or "")
    if is_empty(raw):
        if f.not_null:
            result.errors.append(_error(mapping, f, f"'{target_name}' must not be empty (not_null)"))
        else:
            key, value = lookup_write(mapping, f, target, None)
            result.payload[key] = value
        return
    if resolved is None or target_name not in resolved:
        result.lookups.append(LookupRequest(target_name, f.lookup.mapping, source, raw, f.lookup.by(source),
                                            f.lookup.by(target), _company_of(mapping, f, record, source)))
        return
    if is_empty(resolved[target_name]):
        result.errors.append(_error(
            mapping, f, f"the {f.lookup.mapping} record {raw!r} is not coupled yet (sync '{f.lookup.mapping}' first)"
        ))
        return
    key, value = lookup_write(mapping, f, target, resolved[target_name])
    result.payload[key] = value


def _company_of(mapping: TableMapping, f: FieldMapping, record: Mapping[str, Any], source: Side) -> Any:
    """The record's company for a lookup from one company-specific mapping to another (else None)."""
    scope = mapping.company
    target = mapping.lookup_target(f)
    if scope is None or f is scope.field or target is None or target.company is None:
        return None
    value = record.get(read_name(mapping, scope.field, source) or "")
    return None if is_empty(value) else value


def _error(mapping: TableMapping, f: FieldMapping, message: str) -> FieldError:
    return FieldError(mapping.source, mapping.name, f.label, message)
