"""Adapting a mapped payload to what the target API accepts for "empty".

Business Central's API declares its fields non-nullable: a null for `addressLine1` is a 400. A CRM field that
is empty (null) therefore becomes the empty value of the field's own type in BC — "" for text, 0 for numbers,
false for booleans, the empty GUID for ids — judged from the value the BC record holds now. A create leaves
empty fields out (BC fills in its defaults). Dataverse takes null as null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.mapping import System, same
from shared.mapping.engine import NIL_GUID


def _empty_like(current: Any) -> Any:
    if isinstance(current, bool):
        return False
    if isinstance(current, int | float):
        return 0
    if isinstance(current, str) and len(current) == 36 and current.count("-") == 4:
        return NIL_GUID
    return ""


def for_wire(system: System, payload: Mapping[str, Any], current: Mapping[str, Any] | None) -> dict[str, Any]:
    """`payload` as `system` accepts it; `current` is the record's present values (None when creating)."""
    if system is not System.BUSINESS_CENTRAL:
        return dict(payload)
    if current is None:
        return {k: v for k, v in payload.items() if v is not None}
    return {k: (_empty_like(current.get(k)) if v is None else v) for k, v in payload.items()}


def _bc_empty(value: Any) -> bool:
    return value is None or (not isinstance(value, bool) and value in ("", 0, NIL_GUID)) or value is False


# ERPs whose fields are never null: an empty field reads back as its type's empty value ("", 0, the first enum
# member). Business Central declares them non-nullable; Finance and Operations stores a written null that way.
NON_NULL_ERPS = (System.BUSINESS_CENTRAL, System.FINANCE_OPERATIONS)


def same_on_wire(a: Any, b: Any, erp: System) -> bool:
    """`same`, and also: where the ERP never holds nulls (BC, F&O), a null on one side equals the ERP's empty
    value of the field's type on the other (0, "", false, the nil GUID) — what a null is stored as there."""
    if same(a, b):
        return True
    if erp in NON_NULL_ERPS and (a is None or b is None):
        return _bc_empty(a) and _bc_empty(b)
    return False
