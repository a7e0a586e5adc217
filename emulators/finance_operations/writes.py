"""Creating, updating and deleting records as F&O's data entities do, shared by the OData routes, `$batch`
and the admin routes: body validation (unknown and read-only properties, types, enum members), defaults,
number sequences for blank numbers, mandatory fields and foreign keys checked per legal entity, with the
infolog wording of the OData write path (`Write failed for table row of type '…'. Infolog: …`).

F&O never returns null for text, numbers or enums (empty string, 0, the first member); every field is set
on insert. Empty dates stay null here (unconfirmed: the real service renders 1900-01-01T00:00:00Z)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from emulators.common.store import Actor, RecordExists
from emulators.finance_operations import keys
from emulators.finance_operations.core import Emulator
from emulators.finance_operations.errors import ODATA, FOError, bad_property, write_failed
from emulators.finance_operations.schema import ENUMS, NAMESPACE, EntityDef, Prop, enum_member

VALIDATION_FAILED = "Error: Validation failed."  # the last infolog line ends the message


def load_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise FOError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FOError(400, "The request body must be a JSON object (an entity).")
    return data


def convert(entity: EntityDef, prop: Prop, value: Any) -> Any:
    """One property value, type-checked and normalised to its stored (wire) form."""
    if value is None:
        return _empty(prop)
    t, ok = prop.type, True
    if t == "string":
        ok = isinstance(value, str)
    elif t in ("int", "int64"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "decimal":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif t == "enum":
        member = enum_member(prop.enum or "", value) if isinstance(value, str) else None
        if member is None:
            raise FOError(400, f"Cannot convert the literal '{value}' to the expected type "
                          f"'{NAMESPACE}.{prop.enum}'.", ODATA)
        value = member
    elif t == "date":
        try:
            value = dt.date.fromisoformat(str(value)[:10]).isoformat() if isinstance(value, str) else None
        except ValueError:
            value = None
        ok = value is not None
    elif t == "datetime":
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            value = parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            ok = False
    if not ok:
        raise FOError(400, f"Cannot convert the literal '{value}' to the expected type '{prop.edm}'.", ODATA)
    return value


def _empty(prop: Prop) -> Any:
    if prop.type == "string":
        return ""
    if prop.type in ("int", "int64"):
        return 0
    if prop.type == "decimal":
        return 0.0
    if prop.type == "enum":
        return ENUMS[prop.enum or ""][0][0]
    return None


def parse_body(entity: EntityDef, data: dict[str, Any], *, allow_read_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in data.items():
        if "@" in name:
            continue  # instance annotations (@odata.etag, @odata.type) carry no data
        prop = entity.props.get(name)
        if prop is None:
            raise bad_property(name, entity.public)
        if prop.read_only and not allow_read_only:
            # (unconfirmed) wording.
            raise FOError(400, f"The property '{name}' on type '{NAMESPACE}.{entity.public}' is read-only and "
                          "cannot be set.")
        out[name] = convert(entity, prop, value)
    return out


def insert(emu: Emulator, entity: EntityDef, data: dict[str, Any], actor: Actor, *,
           trusted: bool = False) -> dict[str, Any]:
    """Create a record from a JSON body. `trusted` (seed) may set read-only fields."""
    changes = parse_body(entity, data, allow_read_only=trusted)
    row = {name: _empty(p) for name, p in entity.props.items()}
    row.update({k: v for k, v in entity.defaults.items()})
    row.update(changes)
    if entity.company_specific:
        company = (changes.get("dataAreaId") or emu.settings.default_company).lower()
        if company not in emu.companies():
            # (unconfirmed) infolog wording for an unknown legal entity.
            raise write_failed(entity.table, f"Error: Company '{company}' does not exist.", VALIDATION_FAILED)
        row["dataAreaId"] = company
        if entity.numbering and not str(row.get(entity.numbering) or "").strip():
            row[entity.numbering] = emu.next_number(company, entity.numbering)
    _derive(emu, entity, row, changes, created=True)
    validate(emu, entity, row)
    rid = keys.canonical(entity, row)
    try:
        return emu.store.table(entity.entity_set).insert({**row, "_rid": rid, "_set": entity.entity_set}, actor)
    except RecordExists:
        key = entity.keys[-1]
        label = entity.props[key].label or key
        raise write_failed(entity.table, f"Error: Cannot create a record in {entity.table_label}. {label}: "
                           f"{row.get(key)}. The record already exists.") from None


def update(emu: Emulator, entity: EntityDef, row: dict[str, Any], data: dict[str, Any], actor: Actor, *,
           trusted: bool = False) -> dict[str, Any]:
    changes = parse_body(entity, data, allow_read_only=trusted)
    for k in entity.keys:
        if k in changes and keys.format_literal(changes[k]).lower() != keys.format_literal(row.get(k)).lower():
            # (unconfirmed) wording; F&O refuses to rename a record through its key.
            raise FOError(400, f"The key property '{k}' cannot be changed.")
        changes.pop(k, None)
    merged = {**row, **changes}
    _derive(emu, entity, merged, changes, created=False)
    validate(emu, entity, merged)
    changes = {k: merged[k] for k in merged if k in entity.props and (k in changes or merged[k] != row.get(k))}
    return emu.store.table(entity.entity_set).update(row["_rid"], changes, actor)


def delete(emu: Emulator, entity: EntityDef, row: dict[str, Any], actor: Actor) -> None:
    emu.store.table(entity.entity_set).delete(row["_rid"], actor)


def _derive(emu: Emulator, entity: EntityDef, row: dict[str, Any], changes: dict[str, Any], *, created: bool) -> None:
    """Fields F&O fills itself: party numbers, a person's name, line amounts."""
    if entity.entity_set == "CustomersV3":
        if created and not row.get("PartyNumber"):
            row["PartyNumber"] = emu.next_party()
        if row.get("PartyType") == "Person" and ({"PersonFirstName", "PersonLastName", "PartyType"} & set(changes)):
            # (unconfirmed) a person's party name is "First Last".
            row["OrganizationName"] = " ".join(p for p in (row.get("PersonFirstName"), row.get("PersonLastName")) if p)
    if entity.entity_set == "ContactPersonsV2" and row.get("ContactForParty") and not row.get("CustomerAccount"):
        row["CustomerAccount"] = row["ContactForParty"]
    qty = next((q for q in ("OrderedSalesQuantity", "RequestedSalesQuantity", "InvoicedQuantity") if q in entity.props),
               None)
    if qty and "LineAmount" not in changes and ({qty, "SalesPrice"} & set(changes) or created):
        row["LineAmount"] = round(float(row.get(qty) or 0) * float(row.get("SalesPrice") or 0), 2)


def validate(emu: Emulator, entity: EntityDef, row: dict[str, Any]) -> None:
    """Mandatory fields and foreign keys (in the record's legal entity), reported as one infolog."""
    infolog: list[str] = []
    mandatory = list(entity.mandatory)
    if entity.entity_set == "CustomersV3":
        mandatory.append("PersonLastName" if row.get("PartyType") == "Person" else "OrganizationName")
    for name in mandatory:
        if not str(row.get(name) or "").strip():
            infolog.append(f"Warning: Field '{entity.props[name].label or name}' must be filled in.")
    for fk in entity.foreign_keys:
        value = row.get(fk.field)
        if not value:
            continue
        target = emu.entities[fk.target]
        fields: tuple[str, ...] = (fk.target_field,)
        values: tuple[Any, ...] = (value,)
        if target.company_specific:
            fields, values = ("dataAreaId", *fields), (row.get("dataAreaId"), *values)
        if not emu.store.table(fk.target).lookup(fields, values):
            label = entity.props[fk.field].label or fk.field
            infolog.append(f"Error: The value '{value}' in field '{label}' is not found in the related table "
                           f"'{fk.table_label}'.")
    if infolog:
        raise write_failed(entity.table, *infolog, VALIDATION_FAILED)
