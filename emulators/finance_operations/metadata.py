"""Service description, all generated from schema.py: the service document (`GET /data`), CSDL
(`GET /data/$metadata`) and the metadata API (`/Metadata/PublicEntities`, `/Metadata/DataEntities`,
`/Metadata/PublicEnumerations`, each with a `('<Name>')` single-item form)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.finance_operations.errors import FOError
from emulators.finance_operations.schema import AX_TYPE, BY_PUBLIC, ENTITIES, ENUMS, NAMESPACE, EntityDef

_EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
_EDM = "http://docs.oasis-open.org/odata/ns/edm"
_ONE = re.compile(r"^\('([^']*)'\)$")


def service_document(base: str) -> dict[str, Any]:
    return {"@odata.context": f"{base}/$metadata",
            "value": [{"name": e.entity_set, "kind": "EntitySet", "url": e.entity_set} for e in ENTITIES.values()]}


def csdl() -> bytes:
    ET.register_namespace("edmx", _EDMX)
    root = ET.Element(f"{{{_EDMX}}}Edmx", {"Version": "4.0"})
    services = ET.SubElement(root, f"{{{_EDMX}}}DataServices")
    schema = ET.SubElement(services, "Schema", {"xmlns": _EDM, "Namespace": NAMESPACE})
    for name, members in ENUMS.items():
        enum = ET.SubElement(schema, "EnumType", {"Name": name})
        for member, value in members:
            ET.SubElement(enum, "Member", {"Name": member, "Value": str(value)})
    for e in ENTITIES.values():
        etype = ET.SubElement(schema, "EntityType", {"Name": e.public})
        key = ET.SubElement(etype, "Key")
        for k in e.keys:
            ET.SubElement(key, "PropertyRef", {"Name": k})
        for p in e.props.values():
            attrs = {"Name": p.name, "Type": p.edm, "Nullable": "false" if p.name in e.keys else "true"}
            if p.type == "decimal":
                attrs.update({"Precision": "32", "Scale": "6"})  # (unconfirmed) facets
            ET.SubElement(etype, "Property", attrs)
        for nav in e.navigations:
            target = ENTITIES[nav.target]
            node = ET.SubElement(etype, "NavigationProperty",
                                 {"Name": nav.name, "Type": f"Collection({NAMESPACE}.{target.public})"})
            for mine, theirs in nav.on:
                ET.SubElement(node, "ReferentialConstraint", {"Property": mine, "ReferencedProperty": theirs})
    container = ET.SubElement(schema, "EntityContainer", {"Name": "Resources"})
    for e in ENTITIES.values():
        ET.SubElement(container, "EntitySet", {"Name": e.entity_set, "EntityType": f"{NAMESPACE}.{e.public}"})
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def public_entity(e: EntityDef) -> dict[str, Any]:
    mandatory = set(e.mandatory) | set(e.keys)
    return {
        "Name": e.public, "EntitySetName": e.entity_set, "LabelId": f"@DataEntities:{e.public}",  # (unconfirmed)
        "IsReadOnly": e.read_only, "ConfigurationEnabled": True,
        "Properties": [{"Name": p.name, "TypeName": p.enum or AX_TYPE[p.type], "DataType": AX_TYPE[p.type],
                        "LabelId": p.label, "IsKey": p.name in e.keys, "IsMandatory": p.name in mandatory,
                        "ConfigurationEnabled": True, "AllowEdit": not p.read_only and p.name not in e.keys,
                        "AllowEditOnCreate": not p.read_only, "IsDimension": False, "DimensionRelation": "",
                        "IsDynamicDimensionEnumeration": False, "DimensionLegalEntityProperty": "",
                        "DimensionTypeProperty": ""} for p in e.props.values()],
        "NavigationProperties": [{"Name": n.name, "RelatedEntity": ENTITIES[n.target].public,
                                  "RelatedRelationName": "", "Cardinality": "ZeroMore",
                                  "Constraints": [{"Property": a, "RelatedProperty": b} for a, b in n.on]}
                                 for n in e.navigations],
        "PropertyGroups": [],
    }


def data_entity(e: EntityDef) -> dict[str, Any]:
    return {"Name": e.table, "PublicEntityName": e.public, "PublicCollectionName": e.entity_set,
            "LabelId": f"@DataEntities:{e.public}", "DataServiceEnabled": True, "DataManagementEnabled": True,
            "EntityCategory": e.category, "IsReadOnly": e.read_only}


def enumeration(name: str) -> dict[str, Any]:
    return {"Name": name, "LabelId": "", "Members": [{"Name": m, "Value": v, "LabelId": "",
                                                      "ConfigurationEnabled": True} for m, v in ENUMS[name]]}


def _collection(request: Request, rest: str, items: dict[str, Any], render: Any, what: str) -> Response:
    base = str(request.base_url).rstrip("/")
    if not rest:
        return JSONResponse({"@odata.context": f"{base}/Metadata/$metadata#{what}",
                             "value": [render(v) for v in items.values()]})
    m = _ONE.match(rest)
    if not m:
        return JSONResponse(FOError(400, "The request URI is not valid.").body(), status_code=400)
    item = items.get(m.group(1).lower())
    if item is None:
        return JSONResponse(FOError(404, f"No {what} named '{m.group(1)}' was found.").body(), status_code=404)
    return JSONResponse({"@odata.context": f"{base}/Metadata/$metadata#{what}/$entity", **render(item)})


async def _metadata_api(request: Request) -> Response:
    path = request.path_params["path"]
    name, rest = re.match(r"^([A-Za-z]*)(.*)$", path, re.S).groups()  # type: ignore[union-attr]
    if name == "PublicEntities":
        return _collection(request, rest, BY_PUBLIC, public_entity, name)
    if name == "DataEntities":
        return _collection(request, rest, {e.table.lower(): e for e in ENTITIES.values()}, data_entity, name)
    if name == "PublicEnumerations":
        return _collection(request, rest, {n.lower(): n for n in ENUMS}, enumeration, name)
    url = str(request.url)
    return JSONResponse(FOError(404, f"No HTTP resource was found that matches the request URI '{url}'.",
                                plain=True).body(), status_code=404)


def routes() -> list[Route]:
    return [Route("/Metadata/{path:path}", _metadata_api, methods=["GET"])]
