"""`GET /api/data/v9.2/$metadata`: the CSDL document (Microsoft Learn, "Web API service documents", "Web API
EntityTypes", "Web API properties", "Web API navigation properties"), generated from schema.py, relationships.py,
the settings' alternate keys, definitions.py's metadata types and the operations the emulator serves.

Namespace `Microsoft.Dynamics.CRM`, alias `mscrm`; every table is an EntityType based on the abstract
`crmbaseentity` (systemuser on `principal`, whose key is `ownerid`), with its columns (lookups as `_x_value`),
single-valued navigations (Partner + ReferentialConstraint) and collection-valued ones, and an
`OData.Community.Keys.V1.AlternateKeys` annotation for its alternate keys; the container is `System`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache

from emulators.common.csdl import document, serialize, sub
from emulators.dataverse.api import ApiRequest, ApiResponse
from emulators.dataverse.core import Emulator
from emulators.dataverse.functions import SIGNATURES
from emulators.dataverse.metadata import refuse_options
from emulators.dataverse.metatypes import ENUMS, NS, TYPES, MetaType
from emulators.dataverse.relationships import many_to_one, one_to_many
from emulators.dataverse.schema import EDM, TableDef, build_tables

_REFERENCES = (
    ("http://vocabularies.odata.org/OData.Community.Keys.V1.xml", "OData.Community.Keys.V1", "Keys"),
    ("http://vocabularies.odata.org/OData.Community.Display.V1.xml", "OData.Community.Display.V1", "Display"),
    # (unconfirmed URI) the Core vocabulary, for the Computed/Permissions annotations of `?annotations=true`.
    ("https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml", "Org.OData.Core.V1",
     "Core"),
)
# Result types of the operations, as Microsoft Learn's ComplexType pages give them.
_RESULTS = {
    "WhoAmIResponse": {"BusinessUnitId": "Edm.Guid", "UserId": "Edm.Guid", "OrganizationId": "Edm.Guid"},
    "CreateMultipleResponse": {"Ids": "Collection(Edm.Guid)"},
    # (unconfirmed shape) UpsertMultiple answers 204 without it; declared because the action names it.
    "UpsertResponse": {"RecordCreated": "Edm.Boolean"},
    "UpsertMultipleResponse": {"Results": "Collection(mscrm.UpsertResponse)"},
}
# Bulk actions bound to a table's collection (Microsoft Learn, "CreateMultiple Action" …): return types.
_BULK = {"CreateMultiple": "mscrm.CreateMultipleResponse", "UpdateMultiple": None,
         "UpsertMultiple": "mscrm.UpsertMultipleResponse"}


def response(emu: Emulator, req: ApiRequest) -> ApiResponse:
    if req.path != "$metadata":
        raise _segment(req.path.split("/", 1)[-1])
    refuse_options(req, set())
    # Microsoft Learn: `?annotations=true` (or Prefer odata.include-annotations) adds the property annotations.
    annotated = (req.query.get("annotations", "").lower() == "true"
                 or "odata.include-annotations" in req.headers.get("prefer", ""))
    body = document_bytes(emu.settings.alternate_keys, annotated)
    return _XmlResponse(200, {"Content-Type": "application/xml", "OData-Version": "4.0"}, body)


class _XmlResponse(ApiResponse):
    def content(self) -> bytes:
        return self.body  # type: ignore[no-any-return]


def _segment(name: str) -> Exception:
    from emulators.dataverse.errors import BAD_PROPERTY, DataverseError

    return DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{name}'.")


def document_bytes(alternate_keys: dict[str, list[list[str]]], annotated: bool = False) -> bytes:
    keys = tuple(sorted((s, tuple(tuple(k) for k in ks)) for s, ks in alternate_keys.items()))
    return _build(keys, annotated)


@lru_cache(maxsize=8)
def _build(keys: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...], annotated: bool) -> bytes:
    tables = {t.logical: t for t in build_tables().values()}
    key_map = dict(keys)
    root, schema = document(NS, "mscrm", _REFERENCES)
    sub(schema, "EntityType", Name="crmbaseentity", Abstract="true")
    principal = sub(schema, "EntityType", Name="principal", BaseType="mscrm.crmbaseentity", Abstract="true")
    sub(sub(principal, "Key"), "PropertyRef", Name="ownerid")
    sub(principal, "Property", Name="ownerid", Type="Edm.Guid")
    for t in tables.values():
        _entity_type(schema, t, tables, key_map.get(t.entity_set, ()), annotated)
    sub(schema, "EntityType", Name="crmmodelbaseentity", Abstract="true")
    for meta in TYPES.values():
        _metadata_type(schema, meta)
    for name, props in _RESULTS.items():
        ctype = sub(schema, "ComplexType", Name=name)
        for prop, typ in props.items():
            sub(ctype, "Property", Name=prop, Type=typ, Nullable="false" if typ == "Edm.Guid" else None)
    sub(sub(schema, "ComplexType", Name="RetrieveEntityResponse"), "NavigationProperty", Name="EntityMetadata",
        Type="mscrm.EntityMetadata")
    for name, (members, flags) in ENUMS.items():
        enum = sub(schema, "EnumType", Name=name, UnderlyingType="Edm.Int32", IsFlags="true" if flags else None)
        for member, value in members.items():
            sub(enum, "Member", Name=member, Value=str(value))
    _operations(schema)
    _bulk_delete(schema)
    _container(schema, tables)
    return serialize(root)


def _entity_type(schema: ET.Element, t: TableDef, tables: dict[str, TableDef], keys: tuple[tuple[str, ...], ...],
                 annotated: bool) -> None:
    is_user = t.logical == "systemuser"  # Microsoft Learn: systemuser and team inherit principal's key
    etype = sub(schema, "EntityType", Name=t.logical, BaseType="mscrm.principal" if is_user else "mscrm.crmbaseentity")
    if not is_user:
        sub(sub(etype, "Key"), "PropertyRef", Name=t.key)
    for a in t.attrs.values():
        typ = "Edm.Guid" if a.type == "lookup" else EDM[a.type]
        prop = sub(etype, "Property", Name=a.field, Type=typ, Unicode="false" if typ == "Edm.String" else None,
                   Scale="Variable" if typ == "Edm.Decimal" else None)
        if annotated and (a.read_only or a.type == "lookup"):  # lookup properties are computed, read-only
            sub(prop, "Annotation", Term="Org.OData.Core.V1.Computed", Bool="true")
            perm = sub(prop, "Annotation", Term="Org.OData.Core.V1.Permissions")
            sub(perm, "EnumMember").text = "Org.OData.Core.V1.PermissionType/Read"
    for r in many_to_one(t.logical):
        nav = sub(etype, "NavigationProperty", Name=r.referencing_nav, Type=f"mscrm.{r.referenced}",
                  Nullable="false", Partner=r.referenced_nav)
        sub(nav, "ReferentialConstraint", Property=f"_{r.attribute}_value", ReferencedProperty=tables[r.referenced].key)
    for r in one_to_many(t.logical):
        sub(etype, "NavigationProperty", Name=r.referenced_nav, Type=f"Collection(mscrm.{r.referencing})",
            Partner=r.referencing_nav)
    if keys:
        _alternate_keys(etype, t, keys)


def _alternate_keys(etype: ET.Element, t: TableDef, keys: tuple[tuple[str, ...], ...]) -> None:
    """Microsoft Learn, "Web API EntityTypes" (Alternate Keys): one AlternateKey record per key."""
    collection = sub(sub(etype, "Annotation", Term="OData.Community.Keys.V1.AlternateKeys"), "Collection")
    for key in keys:
        parts = sub(sub(sub(collection, "Record", Type="OData.Community.Keys.V1.AlternateKey"), "PropertyValue",
                        Property="Key"), "Collection")
        for name in key:
            field = t.attrs[name].field if name in t.attrs else name
            ref = sub(parts, "Record", Type="OData.Community.Keys.V1.PropertyRef")
            sub(ref, "PropertyValue", Property="Alias", String=field)
            sub(ref, "PropertyValue", Property="Name", PropertyPath=field)


def _qualified(typ: str) -> str:
    if typ.startswith("Collection("):
        return f"Collection({_qualified(typ[11:-1])})"
    return typ if typ.startswith(("Edm.", "mscrm.")) else f"mscrm.{typ}"


def _metadata_type(schema: ET.Element, meta: MetaType) -> None:
    base = "mscrm.crmmodelbaseentity" if meta.name == "MetadataBase" else (meta.base and f"mscrm.{meta.base}")
    node = sub(schema, "ComplexType" if meta.complex else "EntityType", Name=meta.name, BaseType=base,
               Abstract="true" if meta.abstract else None)
    if meta.name == "MetadataBase":
        sub(sub(node, "Key"), "PropertyRef", Name="MetadataId")
    for name, typ in meta.props.items():
        sub(node, "Property", Name=name, Type=_qualified(typ),
            Nullable="false" if name == "MetadataId" and not meta.complex else None)
    for name, typ in meta.navs.items():
        sub(node, "NavigationProperty", Name=name, Type=_qualified(typ))


def _operations(schema: ET.Element) -> None:
    for name, (params, result) in SIGNATURES.items():
        function = sub(schema, "Function", Name=name)
        for param, typ, nullable in params:
            sub(function, "Parameter", Name=param, Type=_qualified(typ), Nullable=None if nullable else "false",
                Unicode="false" if typ == "Edm.String" else None)
        sub(function, "ReturnType", Type=_qualified(result), Nullable="false")
    for name in bulk_actions():
        action = sub(schema, "Action", Name=name, IsBound="true")
        # (unconfirmed) the binding parameter's name; the binding type (a crmbaseentity collection) is documented.
        sub(action, "Parameter", Name="entityset", Type="Collection(mscrm.crmbaseentity)", Nullable="false")
        sub(action, "Parameter", Name="Targets", Type="Collection(mscrm.crmbaseentity)", Nullable="false")
        if _BULK[name]:
            sub(action, "ReturnType", Type=_BULK[name], Nullable="false")


def _bulk_delete(schema: ET.Element) -> None:
    """The unbound BulkDelete action (bulk_delete.py), its parameter and result types ("BulkDelete Action",
    "QueryExpression ComplexType" …; the ConditionOperator members the emulator evaluates)."""
    from emulators.dataverse import bulk_delete

    for name, (base, props) in bulk_delete.COMPLEX_TYPES.items():
        ctype = sub(schema, "ComplexType", Name=name, BaseType=base and f"mscrm.{base}",
                    Abstract="true" if not props else None)  # QueryBase
        for prop, typ in props.items():
            sub(ctype, "Property", Name=prop, Type=typ, Nullable="false" if typ == "Edm.Guid" else None)
    for name, members in bulk_delete.ENUM_TYPES.items():
        enum = sub(schema, "EnumType", Name=name, UnderlyingType="Edm.Int32")
        for member, value in members.items():
            sub(enum, "Member", Name=member, Value=str(value))
    action = sub(schema, "Action", Name=bulk_delete.ACTION)
    for param, typ, nullable in bulk_delete.PARAMETERS:
        sub(action, "Parameter", Name=param, Type=typ, Nullable=None if nullable else "false",
            Unicode="false" if typ == "Edm.String" else None)
    sub(action, "ReturnType", Type=f"mscrm.{bulk_delete.RESPONSE}", Nullable="false")


def bulk_actions() -> list[str]:
    """The bulk actions bulk.py serves (declared only when served)."""
    try:
        from emulators.dataverse.bulk import RUNS
    except ImportError:
        return []
    return [name for name in _BULK if name in RUNS]


def _container(schema: ET.Element, tables: dict[str, TableDef]) -> None:
    container = sub(schema, "EntityContainer", Name="System")
    for t in tables.values():
        eset = sub(container, "EntitySet", Name=t.entity_set, EntityType=f"mscrm.{t.logical}")
        for r in many_to_one(t.logical):
            sub(eset, "NavigationPropertyBinding", Path=r.referencing_nav, Target=tables[r.referenced].entity_set)
        for r in one_to_many(t.logical):
            sub(eset, "NavigationPropertyBinding", Path=r.referenced_nav, Target=tables[r.referencing].entity_set)
    sub(container, "EntitySet", Name="EntityDefinitions", EntityType="mscrm.EntityMetadata")
    for name in SIGNATURES:
        sub(container, "FunctionImport", Name=name, Function=f"mscrm.{name}")
    sub(container, "ActionImport", Name="BulkDelete", Action="mscrm.BulkDelete")  # bulk_delete.py
