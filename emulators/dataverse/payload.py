"""Validate and convert a JSON write body into stored values, as the Web API's payload reader does:
unknown properties and wrong types are refused (400) with the messages Dataverse gives, `@odata.bind`
lookups are resolved to `_<name>_value` (+ the lookuplogicalname annotation), read-only attributes are
ignored."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

from emulators.dataverse.errors import BAD_PAYLOAD, BAD_PROPERTY, VALIDATION, DataverseError, bad_property
from emulators.dataverse.schema import EDM, Attr, TableDef

LOGICAL_ANNOTATION = "@Microsoft.Dynamics.CRM.lookuplogicalname"
# resolve(bind value, target logical name) -> record id; raises DataverseError (404 when the record is missing).
Resolver = Callable[[str, str], str]


def load_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise DataverseError(400, BAD_PAYLOAD,
                             f"Error in request body: the payload is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise DataverseError(400, BAD_PAYLOAD, "Error in request body: an entity (a JSON object) was expected.")
    return data


def parse_payload(data: dict[str, Any], table: TableDef, resolve: Resolver) -> dict[str, Any]:
    """Stored changes (field → value) for a create/update body."""
    out: dict[str, Any] = {}
    navs = table.navs()
    for key, value in data.items():
        if key.endswith("@odata.bind"):
            nav = key[: -len("@odata.bind")]
            if nav not in navs:
                raise DataverseError(400, BAD_PAYLOAD, f"An undeclared property '{nav}' which only has property "
                                     "annotations in the payload but no property value was found in the payload. "
                                     "In OData, only declared navigation properties and declared named streams can "
                                     "be represented as properties without values.")
            attr, target = navs[nav]
            if value is None:  # binding null clears the lookup
                out[attr.field], out[attr.field + LOGICAL_ANNOTATION] = None, None
                continue
            if not isinstance(value, str):
                raise DataverseError(400, BAD_PAYLOAD, f"The value of '{key}' must be a URL (e.g. /accounts(<id>)).")
            out[attr.field] = resolve(value, target)
            out[attr.field + LOGICAL_ANNOTATION] = target
        elif key.startswith("@") or "@" in key:
            continue  # instance annotations (@odata.type, …) carry no data
        elif key.startswith("_") and key.endswith("_value") and table.by_field(key):
            raise DataverseError(400, BAD_PROPERTY, "CRM do not support direct update of Entity Reference "
                                 "properties, Use Navigation properties instead.")
        else:
            attr = table.attrs.get(key)
            if attr is None:
                raise bad_property(key, table.logical)
            if attr.type == "lookup":
                raise DataverseError(400, BAD_PAYLOAD, "A 'PrimitiveValue' node with non-null value was found when "
                                     "trying to read the value of a navigation property; however, a 'StartArray' "
                                     "node, a 'StartObject' node, or a 'PrimitiveValue' node with null value was "
                                     f"expected. (property '{key}': use '{key}@odata.bind')")
            if attr.read_only:
                continue  # Dataverse ignores values for attributes that are not valid for create/update
            out[key] = convert(attr, value, table)
    return out


def convert(attr: Attr, value: Any, table: TableDef) -> Any:
    """One attribute value, type-checked and normalised to the stored (wire) form."""
    if value is None:
        return None
    t = attr.type
    ok = True
    if t == "string":
        ok = isinstance(value, str)
    elif t in ("int", "bigint", "option"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t in ("decimal", "money"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif t == "bool":
        ok = isinstance(value, bool)
    elif t == "guid":
        try:
            value = str(uuid.UUID(str(value)))
        except ValueError:
            ok = False
    elif t == "datetime":
        parsed = parse_datetime(value) if isinstance(value, str) else None
        ok = parsed is not None
        value = format_datetime(parsed) if parsed else value
    if not ok:
        raise DataverseError(400, BAD_PAYLOAD, f"Error identified in Payload provided by the user for Entity :"
                             f"'{table.entity_set}', For more information on this error please follow this help "
                             "link https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : "
                             f"Microsoft.OData.ODataException: Cannot convert the literal '{value}' to the expected "
                             f"type '{EDM[t]}'.")
    if t == "option" and attr.options and value not in attr.options:
        raise DataverseError(400, VALIDATION, f"A validation error occurred. The value {value} of '{attr.name}' on "
                             f"record of type '{table.logical}' is outside the valid range. Accepted Values: "
                             f"{','.join(map(str, attr.options))}")
    return value


def parse_datetime(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    """Dataverse returns date/time values in UTC at whole seconds: `2024-05-01T10:00:00Z`."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
