"""Request-body checks as BC's OData layer and AL validation apply them, and reference resolution.

OData level (code `BadRequest`): unknown property, wrong JSON type, null for a non-nullable field. Read-only
fields (`id`, `lastModifiedDateTime`, totals…) and `@odata.*` annotations in a body are ignored, so a client
may send back a record it read (BC behaviour for read-only page fields is unconfirmed; ignoring is the
documented-looking choice). AL level: enum options (member names as BC sends them, or captions: see
enums.py), text lengths, references to other records.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from emulators.business_central.enums import enum_of
from emulators.business_central.errors import BCError, bad_request
from emulators.business_central.schema import EMPTY_GUID, EntitySet, Field


def check_body(entity: EntitySet, body: Any) -> dict[str, Any]:
    """The writable, type-checked fields of a POST/PATCH body (read-only ones dropped)."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name.startswith("@odata.") or "@odata." in name:
            continue
        spec = entity.fields.get(name)
        if spec is None:
            raise bad_request(f"The property '{name}' does not exist on type 'Microsoft.NAV.{entity.type_name}'. "
                              "Make sure to only use property names that are defined by the type.")
        if spec.read_only:
            continue
        out[name] = coerce(name, spec, value)
    return out


def coerce(name: str, spec: Field, value: Any) -> Any:
    edm = spec.edm  # an enum field's type is its enum type (Microsoft.NAV.customerBlocked), as odata.net names it
    if value is None:
        raise bad_request(f"A null value was found for the property named '{name}', which has the expected type "
                          f"'{edm}[Nullable=False]'. The expected type '{edm}[Nullable=False]' does not allow "
                          "null values.")
    bad = BCError(400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type '{edm}'.")
    t = spec.type
    if t in ("string", "guid", "date", "datetime") and not isinstance(value, str):
        raise BCError(400, "BadRequest", f"Cannot convert a primitive value to the expected type '{edm}'. "
                                         "See the inner exception for more details.")
    if spec.options is not None:
        stored = enum_of(spec).accept(value)  # the member name BC sends (or the caption): stored as the caption
        if stored is None:
            # AL option validation; code and wording as in BC's documented $batch example, which lists the
            # captions ("Inventory,Service,Non-Inventory"), not the member names.
            raise BCError(400, "Unknown", f"'{value}' is not an option. The existing options are: "
                                          f"{','.join(spec.options)}")
        return stored
    if t == "string":
        if spec.max_len is not None and len(value) > spec.max_len:
            raise BCError(400, "Application_DialogException",
                          f"The length of the string is {len(value)}, but it must be less than or equal to "
                          f"{spec.max_len} characters. Value: {value}")
        return value
    if t == "guid":
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise bad from None
    if t == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return value
    if t in ("int", "int64"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    try:
        if t == "date":
            dt.date.fromisoformat(value)
        else:
            dt.datetime.fromisoformat(value)
    except ValueError:
        raise bad from None
    return value


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def empty_guid(value: Any) -> bool:
    return value in (None, "", EMPTY_GUID)
