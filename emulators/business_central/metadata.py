"""The API root's OData service document and its CSDL `$metadata` (OData v4, XML), both derived from
`schema.SERVED` so they cannot drift from what reads and writes serve.

Documented: "Call (GET) the endpoint to list all the API; call (GET) the endpoint with `$metadata` to list all
metadata for the API" ("Tips for working with the APIs"); the types are in namespace `Microsoft.NAV` and the
API reference names enum types `NAV.contactType`, `NAV.customerBlocked`… (resource type pages). Enum member
names are the captions with characters that are not allowed in an identifier encoded as `_xHHHH_` (" " →
`_x0020_`), as BC's metadata does ("Use OData to return and obtain a service metadata document"); they are
also the values reads return and filters compare (`enums.member_name`, the one encoding).

Unconfirmed, chosen to be a valid CSDL document a standard client can use:
- the container is named `default`; the schema has the alias `NAV` (the reference writes `NAV.<type>`);
- a company's entity sets are plain navigation properties bound to the root entity sets of the same name
  (`NavigationPropertyBinding`), since the API also serves them at the root (`customers?company=<name>`);
- every property is `Nullable="false"` (the emulator never returns null and refuses null in writes, with
  odata.net's "[Nullable=False]" message); decimals are `Scale="Variable"`; enum member values are the
  captions' positions, not necessarily AL's ordinals;
- single-valued navigation properties carry a `ReferentialConstraint` from the id field to the target's key.
"""

from __future__ import annotations

import functools
from typing import Any
from xml.sax.saxutils import quoteattr

from emulators.business_central.enums import member_name
from emulators.business_central.schema import NAMESPACE, SERVED, EntitySet

EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"
CONTAINER = "default"


def _tag(name: str, attrs: dict[str, Any], children: list[str] | None = None, indent: int = 0) -> str:
    pad = "  " * indent
    text = "".join(f" {k}={quoteattr(str(v))}" for k, v in attrs.items())
    if not children:
        return f"{pad}<{name}{text}/>"
    return "\n".join([f"{pad}<{name}{text}>", *children, f"{pad}</{name}>"])


def _enum_types() -> dict[str, tuple[str, ...]]:
    enums: dict[str, tuple[str, ...]] = {}
    for entity in SERVED.values():
        for spec in entity.fields.values():
            if spec.enum is not None:
                assert spec.options is not None
                # One enum type, one member list: a second field of the same enum must agree.
                assert enums.setdefault(spec.enum, spec.options) == spec.options, spec.enum
    return enums


def _entity_type(entity: EntitySet) -> str:
    body = [_tag("Key", {}, [_tag("PropertyRef", {"Name": entity.key}, indent=5)], indent=4)]
    for name, spec in entity.fields.items():
        attrs: dict[str, Any] = {"Name": name, "Type": spec.edm, "Nullable": "false"}
        if spec.max_len is not None:
            attrs["MaxLength"] = spec.max_len
        if spec.type == "decimal":
            attrs["Scale"] = "Variable"
        body.append(_tag("Property", attrs, indent=4))
    for nav in entity.navigation:
        target = SERVED[nav.target]
        if nav.many:
            body.append(_tag("NavigationProperty", {"Name": nav.name,
                                                    "Type": f"Collection({NAMESPACE}.{target.type_name})"},
                             indent=4))
        else:
            constraint = _tag("ReferentialConstraint", {"Property": nav.via, "ReferencedProperty": target.key},
                              indent=5)
            body.append(_tag("NavigationProperty", {"Name": nav.name, "Type": f"{NAMESPACE}.{target.type_name}"},
                             [constraint], indent=4))
    return _tag("EntityType", {"Name": entity.type_name}, body, indent=3)


def _entity_set(entity: EntitySet) -> str:
    bindings = [_tag("NavigationPropertyBinding", {"Path": nav.name, "Target": nav.target}, indent=5)
                for nav in entity.navigation]
    return _tag("EntitySet", {"Name": entity.name, "EntityType": f"{NAMESPACE}.{entity.type_name}"}, bindings,
                indent=4)


@functools.cache
def csdl() -> str:
    """The `$metadata` document (built once: the schema does not change at run time)."""
    schema: list[str] = []
    for enum, options in _enum_types().items():
        members = [_tag("Member", {"Name": member_name(o), "Value": i}, indent=4) for i, o in enumerate(options)]
        schema.append(_tag("EnumType", {"Name": enum}, members, indent=3))
    schema += [_entity_type(e) for e in SERVED.values()]
    schema.append(_tag("EntityContainer", {"Name": CONTAINER}, [_entity_set(e) for e in SERVED.values()], indent=3))
    doc = _tag("edmx:Edmx", {"Version": "4.0", "xmlns:edmx": EDMX_NS}, [
        _tag("edmx:DataServices", {}, [
            _tag("Schema", {"Namespace": NAMESPACE, "Alias": "NAV", "xmlns": EDM_NS}, schema, indent=2)],
            indent=1)])
    return '<?xml version="1.0" encoding="utf-8"?>\n' + doc + "\n"


def service_document(base: str) -> dict[str, Any]:
    """The OData service document: every entity set, with its URL relative to the API root."""
    return {"@odata.context": f"{base}$metadata",
            "value": [{"name": name, "kind": "EntitySet", "url": name} for name in SERVED]}


__all__ = ["CONTAINER", "EDMX_NS", "EDM_NS", "csdl", "member_name", "service_document"]
