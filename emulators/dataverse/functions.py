"""The unbound functions the emulator serves (Microsoft Learn, "WhoAmI Function", "RetrieveEntity Function",
"Use Web API functions") and the service document ("Web API service documents")."""

from __future__ import annotations

import re
import uuid
from typing import Any

from emulators.dataverse.api import ApiRequest, ApiResponse
from emulators.dataverse.core import Emulator
from emulators.dataverse.definitions import catalog
from emulators.dataverse.errors import BAD_PROPERTY, NOT_FOUND, QUERY_SYNTAX, DataverseError
from emulators.dataverse.metadata import HEADERS, Options, refuse_options, shape
from emulators.dataverse.metatypes import ENUMS, NS

# name → ((parameter, type, nullable), …), result type: what `call` accepts and `$metadata` declares (csdl.py).
SIGNATURES: dict[str, tuple[tuple[tuple[str, str, bool], ...], str]] = {
    "WhoAmI": ((), "WhoAmIResponse"),
    "RetrieveEntity": ((("EntityFilters", "EntityFilters", False), ("LogicalName", "Edm.String", True),
                        ("MetadataId", "Edm.Guid", False), ("RetrieveAsIfPublished", "Edm.Boolean", False)),
                       "RetrieveEntityResponse"),
}
_ENUM = re.compile(r"^(?:(?P<type>[A-Za-z_][\w.]*))?'(?P<members>[^']*)'$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_EMPTY_ID = "00000000-0000-0000-0000-000000000000"


def business_unit_id(organization_id: str) -> str:
    """The root business unit every seeded user belongs to (also what webhook contexts carry)."""
    return str(uuid.uuid5(uuid.UUID(organization_id), "root-business-unit"))


def service_document(emu: Emulator, req: ApiRequest) -> ApiResponse:
    refuse_options(req, set())
    sets = [*(t.entity_set for t in emu.tables.values()), "EntityDefinitions"]
    return ApiResponse(200, dict(HEADERS), {"@odata.context": f"{req.base}/$metadata",
                                            "value": [{"name": s, "kind": "EntitySet", "url": s} for s in sets]})


def call(emu: Emulator, req: ApiRequest, name: str, args: str | None) -> ApiResponse:
    if "/" in req.path:  # nothing is composable onto these results here
        raise DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{req.path.split('/')[1]}'.")
    refuse_options(req, set())
    params = _params(args or "", req.query)
    if set(params) != {p for p, _, _ in SIGNATURES[name][0]}:
        # A function is found by its parameter names (no overloads here): another set names no resource.
        raise DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{name}'.")
    if name == "WhoAmI":
        return ApiResponse(200, dict(HEADERS), {
            "@odata.context": f"{req.base}/$metadata#{NS}.WhoAmIResponse",
            "BusinessUnitId": business_unit_id(emu.settings.organization_id), "UserId": req.actor.user_id,
            "OrganizationId": emu.settings.organization_id})
    return _retrieve_entity(emu, req, params)


def _params(text: str, query: dict[str, str]) -> dict[str, Any]:
    """`Name=value,…` of a function call; `@p1` takes the value of the `@p1` query parameter (Microsoft Learn,
    "Passing parameters to a function"), an alias not given is null."""
    out: dict[str, Any] = {}
    for part in re.findall(r"(?:[^,']|'(?:[^']|'')*')+", text):
        name, eq, raw = part.partition("=")
        if not eq or not name.strip():
            raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
        raw = raw.strip()
        if raw.startswith("@"):
            raw = query.get(raw, "null").strip()
        out[name.strip()] = _literal(raw)
    return out


def _literal(raw: str) -> Any:
    if raw == "null":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    if _GUID.match(raw):
        return raw.lower()
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    if m := _ENUM.match(raw):
        return (m.group("type"), m.group("members"))
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")


def _filters(value: Any) -> int:
    """EntityFilters as flags: `Microsoft.Dynamics.CRM.EntityFilters'Attributes,Relationships'`."""
    members, _ = ENUMS["EntityFilters"]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):  # `'Attributes'` without the type: the string converts to the enum
        value = (f"{NS}.EntityFilters", value)
    if not isinstance(value, tuple) or value[0] not in (f"{NS}.EntityFilters", "mscrm.EntityFilters"):
        raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
    flags = 0
    for member in (m.strip() for m in value[1].split(",")):
        if member not in members:
            raise DataverseError(400, QUERY_SYNTAX, f"The string '{value[1]}' is not a valid enumeration type "
                                 "constant.")  # (unconfirmed wording)
        flags |= members[member]
    return flags


def _retrieve_entity(emu: Emulator, req: ApiRequest, params: dict[str, Any]) -> ApiResponse:
    flags = _filters(params["EntityFilters"])
    cat = catalog(emu.settings)
    logical, mid = params["LogicalName"], params["MetadataId"] or _EMPTY_ID
    entity = cat.by_logical.get(str(logical).lower()) if logical else cat.by_id.get(mid)
    if entity is None:
        # The platform's ObjectDoesNotExist fault for RetrieveEntityRequest.
        raise DataverseError(404, NOT_FOUND, f"Could not find an entity with name {logical or ''} and id {mid}.")
    body = shape(entity, "EntityMetadata", Options("EntityMetadata"))
    if not flags & 4:
        body.pop("Privileges")  # (unconfirmed) left out unless asked for, as the SDK leaves it null
    body["Keys"] = [shape(k, "EntityKeyMetadata", Options("EntityKeyMetadata")) for k in entity.navs["Keys"]]
    if flags & 2:
        # (unconfirmed) the attributes come with their option sets, as the SDK's EntityMetadata does.
        body["Attributes"] = [_attribute(a) for a in entity.navs["Attributes"]]
    if flags & 8:
        for nav in ("ManyToOneRelationships", "OneToManyRelationships", "ManyToManyRelationships"):
            body[nav] = [shape(r, r.type, Options(r.type)) for r in entity.navs[nav]]
    return ApiResponse(200, dict(HEADERS), {"@odata.context": f"{req.base}/$metadata#{NS}.RetrieveEntityResponse",
                                            "EntityMetadata": body})


def _attribute(node: Any) -> dict[str, Any]:
    out = shape(node, "AttributeMetadata", Options("AttributeMetadata"))
    for nav, target in node.navs.items():
        out[nav] = shape(target, target.type, Options(target.type)) if target is not None else None
    return out
