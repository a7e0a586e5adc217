"""Table definitions as the Web API serves them: EntityMetadata, AttributeMetadata (typed), option sets,
EntityKeyMetadata and OneToManyRelationshipMetadata objects (types in metatypes.py), built from schema.py
(tables, columns, option sets and labels, TABLE_FACTS), relationships.py and the settings' alternate keys and
untracked tables. Built once per settings (the schema does not change at run time)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from emulators.dataverse.metatypes import NS, is_a
from emulators.dataverse.relationships import Relationship, many_to_one, one_to_many
from emulators.dataverse.schema import TABLE_FACTS, Attr, TableDef, build_tables

LANGUAGE = 1033  # the organization's base language; every label exists in it only
_ID_NS = uuid.UUID("5b7c3c0e-9f0e-4a51-8a43-3d1f9b1e2c77")


# ---------------------------------------------------------------- the objects
@dataclass
class Node:
    """One metadata object: its type, structural properties and navigation targets (a Node, a list, or None)."""

    type: str
    props: dict[str, Any]
    navs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Catalog:
    entities: list[Node]
    by_logical: dict[str, Node]
    by_id: dict[str, Node]
    tables: dict[str, TableDef]  # by logical name


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_ID_NS, ":".join(parts)))


def label(text: str | None, *parts: str) -> dict[str, Any]:
    """A Label (LocalizedLabels + UserLocalizedLabel), or the empty label for None."""
    if text is None:
        return {"LocalizedLabels": [], "UserLocalizedLabel": None}
    one = {"Label": text, "LanguageCode": LANGUAGE, "IsManaged": True,
           "MetadataId": stable_id("label", *parts), "HasChanged": None}
    return {"LocalizedLabels": [one], "UserLocalizedLabel": dict(one)}


def _managed(value: bool, name: str) -> dict[str, Any]:
    return {"Value": value, "CanBeChanged": False, "ManagedPropertyLogicalName": name}


def catalog(settings: Any) -> Catalog:
    """The definitions for an emulator's settings (alternate keys, untracked tables)."""
    keys = tuple(sorted((s, tuple(tuple(k) for k in ks)) for s, ks in settings.alternate_keys.items()))
    return _catalog(keys, tuple(sorted(settings.untracked_tables)))


@lru_cache(maxsize=8)
def _catalog(keys: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...], untracked: tuple[str, ...]) -> Catalog:
    tables = {t.logical: t for t in build_tables().values()}
    key_map = dict(keys)
    entities = [_entity(t, tables, key_map.get(t.entity_set, ()), t.entity_set not in untracked)
                for t in tables.values()]
    return Catalog(entities, {e.props["LogicalName"]: e for e in entities},
                   {e.props["MetadataId"]: e for e in entities}, tables)


def _entity(t: TableDef, tables: dict[str, TableDef], keys: tuple[tuple[str, ...], ...], tracked: bool) -> Node:
    facts = TABLE_FACTS[t.logical]
    custom = "_" in t.logical  # the solution tables carry their publisher's prefix
    owned = "ownerid" in t.attrs
    ownership = facts.ownership or ("UserOwned" if owned else "OrganizationOwned")
    props: dict[str, Any] = {
        "MetadataId": stable_id("entity", t.logical), "HasChanged": None, "LogicalName": t.logical,
        "SchemaName": facts.schema_name, "EntitySetName": t.entity_set, "LogicalCollectionName": t.entity_set,
        "CollectionSchemaName": _plural(facts.schema_name),
        "PrimaryIdAttribute": t.key, "PrimaryNameAttribute": t.primary_name, "PrimaryImageAttribute": None,
        "ObjectTypeCode": facts.type_code, "DisplayName": label(facts.display, t.logical),
        "DisplayCollectionName": label(facts.plural, t.logical, "plural"), "Description": label(None),
        "IsCustomEntity": custom, "IsManaged": True, "IsActivity": False, "IsActivityParty": False,
        "IsIntersect": False, "IsLogicalEntity": False, "IsPrivate": False, "IsChildEntity": False,
        "IsBPFEntity": False, "IsAvailableOffline": True, "IsStateModelAware": bool(t.states),
        "IsKnowledgeManagementEnabled": False, "IsEnabledForCharts": True, "IsSolutionAware": False,
        "IsImportable": True, "IsQuickCreateEnabled": False, "IsDocumentManagementEnabled": False,
        "IsOptimisticConcurrencyEnabled": True, "EnforceStateTransitions": False, "ChangeTrackingEnabled": tracked,
        # (unconfirmed) activities and notes follow ownership here; the real flags are per table.
        "HasActivities": owned, "HasNotes": owned, "HasFeedback": False, "AutoRouteToOwnerQueue": False,
        "ActivityTypeMask": 0, "OwnershipType": ownership, "TableType": "Standard",
        "IntroducedVersion": "1.0" if custom else "5.0.0.0", "EntityColor": None, "DataProviderId": None,
        "DataSourceId": None, "ExternalName": None, "ExternalCollectionName": None,
        "IsCustomizable": _managed(True, "iscustomizable"), "IsAuditEnabled": _managed(False, "canmodifyauditsettings"),
        "IsRenameable": _managed(True, "isrenameable"), "IsValidForAdvancedFind": True,
        "IsValidForQueue": _managed(False, "canmodifyqueuesettings"),
        "IsDuplicateDetectionEnabled": _managed(False, "canmodifyduplicatedetectionsettings"),
        "IsMailMergeEnabled": _managed(False, "canmodifymailmergesettings"),
        "IsConnectionsEnabled": _managed(False, "canmodifyconnectionsettings"),
        "CanCreateAttributes": _managed(True, "cancreateattributes"),
        "CanBePrimaryEntityInRelationship": _managed(True, "canbeprimaryentityinrelationship"),
        "CanBeRelatedEntityInRelationship": _managed(True, "canberelatedentityinrelationship"),
        "CanBeInManyToMany": _managed(True, "canbeinmanytomany"),
        "Privileges": _privileges(facts.schema_name, t.logical, owned),
    }
    attributes = [_attribute(t, a, i) for i, a in enumerate(t.attrs.values())]
    navs = {"Attributes": attributes, "Keys": [_key(t, k) for k in keys],
            "ManyToOneRelationships": [_relationship(r, tables) for r in many_to_one(t.logical)],
            "OneToManyRelationships": [_relationship(r, tables) for r in one_to_many(t.logical)],
            "ManyToManyRelationships": []}
    return Node("EntityMetadata", props, navs)


def _plural(name: str) -> str:
    """English plural of a schema name (Opportunity → Opportunities), as a new table's collection name is made."""
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + ("es" if name.endswith("s") else "s")


def _privileges(schema: str, logical: str, owned: bool) -> list[dict[str, Any]]:
    """prvCreate<Table> … (unconfirmed depths: user-owned tables allow every depth, the others Global only)."""
    verbs = ["Create", "Read", "Write", "Delete", "Append", "AppendTo", *(["Assign", "Share"] if owned else [])]
    return [{"CanBeBasic": owned, "CanBeDeep": owned, "CanBeGlobal": True, "CanBeLocal": owned,
             "CanBeEntityReference": False, "CanBeParentEntityReference": False, "CanBeRecordFilter": False,
             "Name": f"prv{v}{schema}", "PrivilegeId": stable_id("privilege", logical, v), "PrivilegeType": v}
            for v in verbs]


def _key(t: TableDef, attrs: tuple[str, ...]) -> Node:
    # Names of keys defined through the settings (unconfirmed pattern: table + columns).
    name = "_".join((t.logical, *attrs))
    return Node("EntityKeyMetadata", {
        "MetadataId": stable_id("key", name), "HasChanged": None, "LogicalName": name, "SchemaName": name,
        "DisplayName": label(" ".join(display_words(a) for a in attrs), "key", name),
        "EntityLogicalName": t.logical, "KeyAttributes": list(attrs), "EntityKeyIndexStatus": "Active",
        "IsManaged": False, "IsCustomizable": _managed(True, "iscustomizable"), "IntroducedVersion": "1.0",
        "IsSynchronous": True, "IsExportKey": False, "IsSecondaryKey": False, "SecondaryEntityKeyName": None})


def _relationship(r: Relationship, tables: dict[str, TableDef]) -> Node:
    custom = "_" in r.attribute or "_" in r.referencing or "_" in r.referenced
    return Node("OneToManyRelationshipMetadata", {
        "MetadataId": r.metadata_id, "HasChanged": None, "SchemaName": r.schema_name,
        "RelationshipType": "OneToManyRelationship", "IsCustomRelationship": custom, "IsManaged": True,
        "IsValidForAdvancedFind": True, "IsCustomizable": _managed(True, "iscustomizable"),
        "IntroducedVersion": "1.0" if custom else "5.0.0.0", "ReferencedEntity": r.referenced,
        "ReferencedAttribute": tables[r.referenced].key, "ReferencingEntity": r.referencing,
        "ReferencingAttribute": r.attribute, "ReferencedEntityNavigationPropertyName": r.referenced_nav,
        "ReferencingEntityNavigationPropertyName": r.referencing_nav, "IsHierarchical": False})


# ---------------------------------------------------------------- attributes
_SIMPLE = {"string": ("String", "StringAttributeMetadata"), "int": ("Integer", "IntegerAttributeMetadata"),
           "bigint": ("BigInt", "BigIntAttributeMetadata"), "decimal": ("Decimal", "DecimalAttributeMetadata"),
           "money": ("Money", "MoneyAttributeMetadata"), "bool": ("Boolean", "BooleanAttributeMetadata"),
           "datetime": ("DateTime", "DateTimeAttributeMetadata"),
           "guid": ("Uniqueidentifier", "UniqueIdentifierAttributeMetadata")}


def attribute_type(t: TableDef, a: Attr) -> tuple[str, str]:
    """(AttributeTypeCode member, metadata type) for a column."""
    if a.type == "option":
        kind = {"statecode": "State", "statuscode": "Status"}.get(a.name, "Picklist") if t.states else "Picklist"
        return kind, f"{kind}AttributeMetadata"
    if a.type == "lookup":
        if a.name == "ownerid":
            return "Owner", "LookupAttributeMetadata"
        customer = a.polymorphic and set(a.targets) == {"account", "contact"}
        return ("Customer" if customer else "Lookup"), "LookupAttributeMetadata"
    return _SIMPLE[a.type]


def _valid_for(t: TableDef, a: Attr) -> tuple[bool, bool]:
    """(IsValidForCreate, IsValidForUpdate) as the table reference gives them: the key is set on create only,
    statecode changes on update only, system columns never."""
    if a.read_only:
        return False, False
    if a.name == t.key:
        return True, False
    if a.name == "statecode":
        return False, True
    return True, True


def _required(t: TableDef, a: Attr) -> str:
    # (unconfirmed per column) the platform requires the key, owner and state columns; the primary name is
    # business-required when it is writable.
    if a.name in (t.key, "ownerid", "statecode", "statuscode"):
        return "SystemRequired"
    return "ApplicationRequired" if a.name == t.primary_name and not a.read_only else "None"


def _attribute(t: TableDef, a: Attr, index: int) -> Node:
    code, meta_type = attribute_type(t, a)
    custom = a.name.split("_", 1)[0] in PREFIXES
    create, update = _valid_for(t, a)
    props: dict[str, Any] = {
        "MetadataId": stable_id("attribute", t.logical, a.name), "HasChanged": None, "LogicalName": a.name,
        "SchemaName": schema_name(a.name), "EntityLogicalName": t.logical, "AttributeType": code,
        "AttributeTypeName": {"Value": f"{code}Type"}, "AttributeOf": None, "ColumnNumber": index + 1,
        "Description": label(None), "DisplayName": label(display_name(t, a), t.logical, a.name),
        "IsCustomAttribute": custom, "IsManaged": True, "IsPrimaryId": a.name == t.key,
        "IsPrimaryName": a.name == t.primary_name, "IsValidForCreate": create, "IsValidForUpdate": update,
        "IsValidForRead": True, "IsValidForForm": True, "IsValidForGrid": True, "IsLogical": False,
        "IsSecured": False, "IsFilterable": True, "IsSearchable": True, "IsRetrievable": True,
        "IsRequiredForForm": False, "IsValidODataAttribute": True,
        "IsCustomizable": _managed(True, "iscustomizable"), "IsAuditEnabled": _managed(True, "canmodifyauditsettings"),
        "IsRenameable": _managed(True, "isrenameable"),
        "IsValidForAdvancedFind": _managed(True, "canmodifysearchsettings"),
        "RequiredLevel": {"Value": _required(t, a), "CanBeChanged": True,
                          "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
        "IntroducedVersion": "1.0" if custom else "5.0.0.0", "DeprecatedVersion": None, "ExternalName": None,
        "AutoNumberFormat": None, "LinkedAttributeId": None, "InheritsFrom": None, "IsDataSourceSecret": False,
    }
    props.update(_typed(t, a, meta_type))
    navs = {}
    if is_a(meta_type, "EnumAttributeMetadata"):
        navs = {"OptionSet": _option_set(t, a, code), "GlobalOptionSet": None}
    elif meta_type == "BooleanAttributeMetadata":
        navs = {"OptionSet": _boolean_set(t, a), "GlobalOptionSet": None}
    return Node(meta_type, props, navs)


def _typed(t: TableDef, a: Attr, meta_type: str) -> dict[str, Any]:
    """Values of the derived type's own properties. The emulator does not limit lengths or ranges beyond the
    Web API's own, so these say so (the real columns carry narrower, per-column values)."""
    name = a.name
    if meta_type == "StringAttributeMetadata":
        fmt = ("Email" if "email" in name else "Url" if "url" in name else
               "Phone" if any(w in name for w in ("telephone", "phone", "fax")) else "Text")
        return {"MaxLength": 4000, "DatabaseLength": 8000, "FormatName": {"Value": fmt}, "IsLocalizable": False,
                "YomiOf": None}
    if meta_type == "IntegerAttributeMetadata":
        return {"MinValue": -2147483648, "MaxValue": 2147483647, "Format": "None"}
    if meta_type == "BigIntAttributeMetadata":
        return {"MinValue": -(2 ** 63), "MaxValue": 2 ** 63 - 1}
    if meta_type == "DecimalAttributeMetadata":
        return {"MinValue": -100000000000, "MaxValue": 100000000000, "Precision": 2}
    if meta_type == "MoneyAttributeMetadata":
        return {"MinValue": -922337203685477, "MaxValue": 922337203685477, "Precision": 2, "PrecisionSource": 2,
                "IsBaseCurrency": False, "CalculationOf": None}
    if meta_type == "BooleanAttributeMetadata":
        return {"DefaultValue": False}
    if meta_type == "DateTimeAttributeMetadata":
        return {"Format": "DateAndTime", "DateTimeBehavior": {"Value": "UserLocal"},
                "MinSupportedValue": "1753-01-01T00:00:00Z", "MaxSupportedValue": "9999-12-30T23:59:59Z"}
    if meta_type == "LookupAttributeMetadata":
        return {"Targets": list(a.targets), "Format": "None"}
    if meta_type == "PicklistAttributeMetadata":
        return {"DefaultFormValue": -1, "ParentPicklistLogicalName": None, "ChildPicklistLogicalNames": []}
    if meta_type in ("StateAttributeMetadata", "StatusAttributeMetadata"):
        return {"DefaultFormValue": -1}
    return {}


def _option(t: TableDef, a: Attr, value: int, text: str | None) -> dict[str, Any]:
    return {"Value": value, "Label": label(text, t.logical, a.name, str(value)), "Description": label(None),
            "Color": None, "IsManaged": True, "ExternalValue": None, "ParentValues": [], "Tag": None,
            "IsHidden": False, "MetadataId": None, "HasChanged": None}


def _option_set(t: TableDef, a: Attr, kind: str) -> Node:
    state_of = {s: st for st, statuses in t.states.items() for s in statuses}
    options = []
    for value in a.options:
        option = _option(t, a, value, a.label(value))
        if kind == "State":  # derived option types carry their type (the collection is of OptionMetadata)
            option = {"@odata.type": f"#{NS}.StateOptionMetadata", **option,
                      "DefaultStatus": t.states[value][0], "InvariantName": (a.label(value) or "").replace(" ", "")}
        elif kind == "Status":
            option = {"@odata.type": f"#{NS}.StatusOptionMetadata", **option, "State": state_of.get(value),
                      "TransitionData": None}
        options.append(option)
    return Node("OptionSetMetadata", {**_set_props(t, a, kind), "Options": options, "ParentOptionSetName": None})


def _boolean_set(t: TableDef, a: Attr) -> Node:
    # (unconfirmed) Yes/No are the labels a new Yes/No column gets; the standard columns have their own.
    return Node("BooleanOptionSetMetadata", {**_set_props(t, a, "Boolean"),
                                             "TrueOption": _option(t, a, 1, "Yes"),
                                             "FalseOption": _option(t, a, 0, "No")})


def _set_props(t: TableDef, a: Attr, kind: str) -> dict[str, Any]:
    custom = a.name.split("_", 1)[0] in PREFIXES
    return {"MetadataId": stable_id("optionset", t.logical, a.name), "HasChanged": None,
            "Name": f"{t.logical}_{a.name}", "DisplayName": label(display_name(t, a), t.logical, a.name, "set"),
            "Description": label(None), "IsCustomOptionSet": custom, "IsGlobal": False, "IsManaged": True,
            "IsCustomizable": _managed(True, "iscustomizable"), "OptionSetType": kind,
            "IntroducedVersion": "1.0" if custom else "5.0.0.0", "ExternalTypeName": None}


# ---------------------------------------------------------------- names
# Schema names of Microsoft's columns are the logical name in Pascal case (AccountNumber, Address1_City,
# EMailAddress1, UoMId). The logical name has lost the word breaks, so they are found again with this vocabulary
# (the words of the emulator's columns); a solution's columns (publisher prefix) keep their logical name.
PREFIXES = ("msdyn", "cdm")
_VOCAB_TEXT = (
    "access account active address alias amount an application async attributes auth auto azure base begin birth by "
    "city close code company contact contract cost country created credit currency current customer date decimal "
    "default delete delivery description detail directory disabled discount domain due email employees end endpoint "
    "entity estimated event exchange extended fax filtering first format freight full group handler hold id image "
    "internal invoice is iso item job last level licensed limit line manual mandatory message method mobile mode "
    "modified name number object of on opportunity or order overridden owner parent payment per person phone postal "
    "precision price pricing primary probability processing product property province quantity quote rank rate "
    "request revenue sales schedule sdk service shipping site stage standard state status step street symbol system "
    "tax telephone term terms title total transaction type unit uom url user value vendor version web zip")
_VOCAB = frozenset(_VOCAB_TEXT.split())
_CASING = {"email": "EMail", "uom": "UoM", "iso": "ISO", "id": "Id"}
_SCHEMA_EXCEPTIONS = {"websiteurl": "WebSiteURL"}


def words(text: str) -> list[str]:
    """Fewest-words split of a run of letters and digits; digits stay with the word before them."""
    best: list[tuple[int, list[str]] | None] = [(0, [])] + [None] * len(text)
    for i in range(len(text)):
        here = best[i]
        if here is None:
            continue
        for j in range(i + 1, len(text) + 1):
            piece = text[i:j]
            known = piece in _VOCAB or piece.isdigit()
            if not known and j > i + 1:
                continue
            cost = here[0] + (1 if known else 10)
            if best[j] is None or cost < best[j][0]:  # type: ignore[index]
                best[j] = (cost, [*here[1], piece])
    out: list[str] = []
    for piece in best[-1][1] if best[-1] else [text]:
        glue = out and (piece.isdigit() or (len(piece) == 1 and piece not in _VOCAB and len(out[-1]) == 1))
        if glue:
            out[-1] += piece
        else:
            out.append(piece)
    return out


def _cap(word: str) -> str:
    head = word.rstrip("0123456789")
    return _CASING.get(head, head[:1].upper() + head[1:]) + word[len(head):]


def schema_name(logical: str) -> str:
    if logical in _SCHEMA_EXCEPTIONS:
        return _SCHEMA_EXCEPTIONS[logical]
    if logical.split("_", 1)[0] in PREFIXES:
        return logical
    return "_".join("".join(_cap(w) for w in words(part)) for part in logical.split("_"))


def display_words(logical: str) -> str:
    rest = logical.split("_", 1)[1] if logical.split("_", 1)[0] in PREFIXES else logical
    return " ".join(_cap(w) for part in rest.split("_") for w in words(part))


def display_name(t: TableDef, a: Attr) -> str:
    """(unconfirmed) The column's words; a key or lookup drops its trailing "Id" (accountid → "Account")."""
    text = display_words(a.name)
    if (a.name == t.key or a.type == "lookup") and text.endswith(" Id"):
        text = text[:-3]
    return text
