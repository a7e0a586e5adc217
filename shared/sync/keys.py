"""Natural keys as the services take them: a key part that is a Dataverse lookup (the company of a company-
specific mapping, `msdyn_company`) is read and filtered as `_msdyn_company_value` with a bare GUID, and comes
out of a mapped payload as the id inside `msdyn_company@odata.bind: /cdm_companies(<id>)`. Plain attributes
are themselves. Used by the natural-key search (`create.find_by_natural_key`), alternate-key upserts
(`full_create.write_op`) and reconcile's duplicate check.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from shared.mapping import FieldMapping, Side, TableMapping, is_empty, lookup_write, read_name
from shared.sync.lookups import odata_literal

_BOUND = re.compile(r"\(([^()]*)\)\s*$")


def _field(mapping: TableMapping, side: Side, name: str) -> FieldMapping | None:
    return next((f for f in mapping.fields if f.enabled and f.name(side) == name), None)


def _is_crm_lookup(mapping: TableMapping, field: FieldMapping | None, side: Side) -> bool:
    return field is not None and field.lookup is not None and read_name(mapping, field, side) != field.name(side)


def read_names(mapping: TableMapping, side: Side) -> list[str]:
    """The natural key's attributes as a record read from `side` holds them (`_msdyn_company_value`, …)."""
    out = []
    for name in mapping.entity(side).natural_key:
        field = _field(mapping, side, name)
        out.append(read_name(mapping, field, side) or name if field is not None else name)
    return out


def natural_key(mapping: TableMapping, side: Side, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The natural key of a record about to be written to `side`, from its mapped `payload`: {attribute as
    filtered / named in a key segment: value}, lookups as `uuid.UUID` (bare in OData). None when the mapping
    has no natural key on `side` or a part is empty."""
    names = mapping.entity(side).natural_key
    if not names:
        return None
    out: dict[str, Any] = {}
    for name in names:
        field = _field(mapping, side, name)
        if field is not None and _is_crm_lookup(mapping, field, side):
            entry, _ = lookup_write(mapping, field, side, "x")
            value: Any = _bound_id(payload.get(entry))
            attribute = read_name(mapping, field, side) or name
        else:
            value, attribute = payload.get(name), name
        if is_empty(value):
            return None
        out[attribute] = value
    return out


def _bound_id(bound: Any) -> uuid.UUID | None:
    """`/cdm_companies(<guid>)` → the GUID (None for anything else: an alternate-key bind names no id)."""
    if not isinstance(bound, str):
        return None
    m = _BOUND.search(bound)
    try:
        return uuid.UUID(m.group(1)) if m else None
    except ValueError:
        return None


def literal(value: Any) -> str:
    """An OData literal; GUIDs bare (a lookup compared with a quoted GUID is a type error on Dataverse)."""
    return str(value) if isinstance(value, uuid.UUID) else odata_literal(value)


def key_filter(key: Mapping[str, Any]) -> str:
    """`$filter` selecting the records with natural key `key` (from `natural_key`)."""
    return " and ".join(f"{name} eq {literal(value)}" for name, value in key.items())
