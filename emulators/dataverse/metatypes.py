"""The metadata types the Web API serves (Microsoft Learn, "EntityMetadata EntityType", "AttributeMetadata
EntityType" and its derived types, "EntityKeyMetadata EntityType", "OneToManyRelationshipMetadata EntityType",
the ComplexType and EnumType reference pages): each type's properties, base type and navigation properties.
metadata.py checks `$select`/`$filter`/`$expand` and casts against them and csdl.py declares them, so what a
query may name is what `$metadata` says; definitions.py builds objects holding exactly these properties."""

from __future__ import annotations

from dataclasses import dataclass, field

NS = "Microsoft.Dynamics.CRM"

_SHORT = {"s": "Edm.String", "b": "Edm.Boolean", "i": "Edm.Int32", "g": "Edm.Guid", "l": "Label",
          "m": "BooleanManagedProperty"}


def _p(spec: str) -> dict[str, str]:
    """"Name:type …" with s/b/i/g/l/m shorthands for common types."""
    return {n: _SHORT.get(t, t) for n, _, t in (item.partition(":") for item in spec.split())}


@dataclass(frozen=True)
class MetaType:
    name: str
    props: dict[str, str]
    base: str | None = None
    navs: dict[str, str] = field(default_factory=dict)
    abstract: bool = False
    complex: bool = False


_OPTION_NAVS = {"OptionSet": "OptionSetMetadata", "GlobalOptionSet": "OptionSetMetadata"}
_TYPES = [
    MetaType("MetadataBase", _p("MetadataId:g HasChanged:b"), abstract=True),
    MetaType("EntityMetadata", _p(
        "LogicalName:s SchemaName:s EntitySetName:s LogicalCollectionName:s CollectionSchemaName:s "
        "PrimaryIdAttribute:s PrimaryNameAttribute:s PrimaryImageAttribute:s ObjectTypeCode:i DisplayName:l "
        "DisplayCollectionName:l Description:l IsCustomEntity:b IsManaged:b IsActivity:b IsActivityParty:b "
        "IsIntersect:b IsLogicalEntity:b IsPrivate:b IsChildEntity:b IsBPFEntity:b IsAvailableOffline:b "
        "IsStateModelAware:b IsKnowledgeManagementEnabled:b IsEnabledForCharts:b IsSolutionAware:b IsImportable:b "
        "IsQuickCreateEnabled:b IsDocumentManagementEnabled:b IsOptimisticConcurrencyEnabled:b "
        "EnforceStateTransitions:b ChangeTrackingEnabled:b HasActivities:b HasNotes:b HasFeedback:b "
        "AutoRouteToOwnerQueue:b ActivityTypeMask:i OwnershipType:OwnershipTypes TableType:s IntroducedVersion:s "
        "EntityColor:s DataProviderId:g DataSourceId:g ExternalName:s ExternalCollectionName:s IsCustomizable:m "
        "IsAuditEnabled:m IsRenameable:m IsValidForAdvancedFind:b IsValidForQueue:m IsDuplicateDetectionEnabled:m "
        "IsMailMergeEnabled:m IsConnectionsEnabled:m CanCreateAttributes:m CanBePrimaryEntityInRelationship:m "
        "CanBeRelatedEntityInRelationship:m CanBeInManyToMany:m Privileges:Collection(SecurityPrivilegeMetadata)"),
        "MetadataBase", {"Attributes": "Collection(AttributeMetadata)", "Keys": "Collection(EntityKeyMetadata)",
                         "ManyToOneRelationships": "Collection(OneToManyRelationshipMetadata)",
                         "OneToManyRelationships": "Collection(OneToManyRelationshipMetadata)",
                         "ManyToManyRelationships": "Collection(ManyToManyRelationshipMetadata)"}),
    MetaType("AttributeMetadata", _p(
        "LogicalName:s SchemaName:s EntityLogicalName:s AttributeType:AttributeTypeCode "
        "AttributeTypeName:AttributeTypeDisplayName AttributeOf:s ColumnNumber:i Description:l DisplayName:l "
        "IsCustomAttribute:b IsManaged:b IsPrimaryId:b IsPrimaryName:b IsValidForCreate:b IsValidForUpdate:b "
        "IsValidForRead:b IsValidForForm:b IsValidForGrid:b IsLogical:b IsSecured:b IsFilterable:b IsSearchable:b "
        "IsRetrievable:b IsRequiredForForm:b IsValidODataAttribute:b IsCustomizable:m IsAuditEnabled:m "
        "IsRenameable:m IsValidForAdvancedFind:m RequiredLevel:AttributeRequiredLevelManagedProperty "
        "IntroducedVersion:s DeprecatedVersion:s ExternalName:s AutoNumberFormat:s LinkedAttributeId:g "
        "InheritsFrom:s IsDataSourceSecret:b"), "MetadataBase"),
    MetaType("StringAttributeMetadata", _p("MaxLength:i DatabaseLength:i FormatName:StringFormatName "
                                           "IsLocalizable:b YomiOf:s"), "AttributeMetadata"),
    MetaType("MemoAttributeMetadata", _p("MaxLength:i"), "AttributeMetadata"),
    MetaType("IntegerAttributeMetadata", _p("MinValue:i MaxValue:i Format:IntegerFormat"), "AttributeMetadata"),
    MetaType("BigIntAttributeMetadata", _p("MinValue:Edm.Int64 MaxValue:Edm.Int64"), "AttributeMetadata"),
    MetaType("DecimalAttributeMetadata", _p("MinValue:Edm.Decimal MaxValue:Edm.Decimal Precision:i"),
             "AttributeMetadata"),
    MetaType("DoubleAttributeMetadata", _p("MinValue:Edm.Double MaxValue:Edm.Double Precision:i"),
             "AttributeMetadata"),
    MetaType("MoneyAttributeMetadata", _p("MinValue:Edm.Double MaxValue:Edm.Double Precision:i "
                                          "PrecisionSource:i IsBaseCurrency:b CalculationOf:s"), "AttributeMetadata"),
    MetaType("BooleanAttributeMetadata", _p("DefaultValue:b"), "AttributeMetadata",
             {"OptionSet": "BooleanOptionSetMetadata", "GlobalOptionSet": "BooleanOptionSetMetadata"}),
    MetaType("DateTimeAttributeMetadata", _p("Format:DateTimeFormat DateTimeBehavior:DateTimeBehavior "
                                             "MinSupportedValue:Edm.DateTimeOffset "
                                             "MaxSupportedValue:Edm.DateTimeOffset"), "AttributeMetadata"),
    MetaType("UniqueIdentifierAttributeMetadata", {}, "AttributeMetadata"),
    MetaType("LookupAttributeMetadata", _p("Targets:Collection(Edm.String) Format:LookupFormat"),
             "AttributeMetadata"),
    # Microsoft Learn: the option set navigations are EnumAttributeMetadata's, yet a query cannot cast to it.
    MetaType("EnumAttributeMetadata", _p("DefaultFormValue:i"), "AttributeMetadata", _OPTION_NAVS, abstract=True),
    MetaType("PicklistAttributeMetadata", _p("ParentPicklistLogicalName:s ChildPicklistLogicalNames:"
                                             "Collection(Edm.String)"), "EnumAttributeMetadata"),
    MetaType("StateAttributeMetadata", {}, "EnumAttributeMetadata"),
    MetaType("StatusAttributeMetadata", {}, "EnumAttributeMetadata"),
    MetaType("MultiSelectPicklistAttributeMetadata", {}, "EnumAttributeMetadata"),
    MetaType("EntityNameAttributeMetadata", {}, "EnumAttributeMetadata"),
    MetaType("ImageAttributeMetadata", {}, "AttributeMetadata"),
    MetaType("FileAttributeMetadata", {}, "AttributeMetadata"),
    MetaType("EntityKeyMetadata", _p(
        "LogicalName:s SchemaName:s DisplayName:l EntityLogicalName:s KeyAttributes:Collection(Edm.String) "
        "EntityKeyIndexStatus:EntityKeyIndexStatus IsManaged:b IsCustomizable:m IntroducedVersion:s "
        "IsSynchronous:b IsExportKey:b IsSecondaryKey:b SecondaryEntityKeyName:s"), "MetadataBase"),
    MetaType("RelationshipMetadataBase", _p("SchemaName:s RelationshipType:RelationshipType "
                                            "IsCustomRelationship:b IsManaged:b IsValidForAdvancedFind:b "
                                            "IsCustomizable:m IntroducedVersion:s"), "MetadataBase", abstract=True),
    MetaType("OneToManyRelationshipMetadata", _p(
        "ReferencedEntity:s ReferencedAttribute:s ReferencingEntity:s ReferencingAttribute:s "
        "ReferencedEntityNavigationPropertyName:s ReferencingEntityNavigationPropertyName:s IsHierarchical:b"),
        "RelationshipMetadataBase"),
    MetaType("ManyToManyRelationshipMetadata", _p(
        "Entity1LogicalName:s Entity2LogicalName:s IntersectEntityName:s Entity1IntersectAttribute:s "
        "Entity2IntersectAttribute:s Entity1NavigationPropertyName:s Entity2NavigationPropertyName:s"),
        "RelationshipMetadataBase"),
    MetaType("OptionSetMetadataBase", _p("Name:s DisplayName:l Description:l IsCustomOptionSet:b IsGlobal:b "
                                         "IsManaged:b IsCustomizable:m OptionSetType:OptionSetType "
                                         "IntroducedVersion:s ExternalTypeName:s"), "MetadataBase", abstract=True),
    MetaType("OptionSetMetadata", _p("Options:Collection(OptionMetadata) ParentOptionSetName:s"),
             "OptionSetMetadataBase"),
    MetaType("BooleanOptionSetMetadata", _p("TrueOption:OptionMetadata FalseOption:OptionMetadata"),
             "OptionSetMetadataBase"),
    # Complex types.
    MetaType("LocalizedLabel", _p("Label:s LanguageCode:i IsManaged:b MetadataId:g HasChanged:b"), complex=True),
    MetaType("Label", _p("LocalizedLabels:Collection(LocalizedLabel) UserLocalizedLabel:LocalizedLabel"),
             complex=True),
    MetaType("BooleanManagedProperty", _p("Value:b CanBeChanged:b ManagedPropertyLogicalName:s"), complex=True),
    MetaType("AttributeRequiredLevelManagedProperty", _p("Value:AttributeRequiredLevel CanBeChanged:b "
                                                         "ManagedPropertyLogicalName:s"), complex=True),
    MetaType("AttributeTypeDisplayName", _p("Value:s"), complex=True),
    MetaType("StringFormatName", _p("Value:s"), complex=True),
    MetaType("DateTimeBehavior", _p("Value:s"), complex=True),
    MetaType("OptionMetadata", _p("Value:i Label:l Description:l Color:s IsManaged:b ExternalValue:s "
                                  "ParentValues:Collection(Edm.Int32) Tag:s IsHidden:b MetadataId:g HasChanged:b"),
             complex=True),
    MetaType("StatusOptionMetadata", _p("State:i TransitionData:s"), "OptionMetadata", complex=True),
    MetaType("StateOptionMetadata", _p("DefaultStatus:i InvariantName:s"), "OptionMetadata", complex=True),
    MetaType("SecurityPrivilegeMetadata", _p(
        "CanBeBasic:b CanBeDeep:b CanBeGlobal:b CanBeLocal:b CanBeEntityReference:b CanBeParentEntityReference:b "
        "CanBeRecordFilter:b Name:s PrivilegeId:g PrivilegeType:PrivilegeType"), complex=True),
]
TYPES: dict[str, MetaType] = {t.name: t for t in _TYPES}

def _numbered(names: str) -> dict[str, int]:
    return {n: i for i, n in enumerate(names.split())}


# (members, IsFlags). Values from Microsoft Learn's EnumType reference pages.
ENUMS: dict[str, tuple[dict[str, int], bool]] = {
    "OwnershipTypes": ({"None": 0, "UserOwned": 1, "TeamOwned": 2, "BusinessOwned": 4, "OrganizationOwned": 8,
                        "BusinessParented": 16, "Filtered": 32}, True),
    "AttributeTypeCode": (_numbered("Boolean Customer DateTime Decimal Double Integer Lookup Memo Money Owner "
                                    "PartyList Picklist State Status String Uniqueidentifier CalendarRules Virtual "
                                    "BigInt ManagedProperty EntityName"), False),
    "AttributeRequiredLevel": ({"None": 0, "SystemRequired": 1, "ApplicationRequired": 2, "Recommended": 3}, False),
    "EntityKeyIndexStatus": ({"Pending": 0, "InProgress": 1, "Active": 2, "Failed": 3}, False),
    "OptionSetType": ({"Picklist": 0, "State": 1, "Status": 2, "Boolean": 3, "MultiSelectPicklist": 4}, False),
    "RelationshipType": ({"OneToManyRelationship": 0, "ManyToManyRelationship": 1}, False),
    "PrivilegeType": (_numbered("None Create Read Write Delete Assign Share Append AppendTo"), False),
    "IntegerFormat": ({"None": 0, "Duration": 1, "TimeZone": 2, "Language": 3, "Locale": 4}, False),
    "DateTimeFormat": ({"DateOnly": 0, "DateAndTime": 1}, False),
    "LookupFormat": ({"None": 0, "Connection": 1, "Regarding": 2, "Text": 3}, False),
    "EntityFilters": ({"Entity": 1, "Attributes": 2, "Privileges": 4, "Relationships": 8, "All": 15}, True),
}


def lineage(type_name: str) -> list[MetaType]:
    """The type and its base types, most derived first."""
    out, name = [], type_name
    while name:
        out.append(TYPES[name])
        name = out[-1].base or ""
    return out


def props_of(type_name: str) -> dict[str, str]:
    return {k: v for t in reversed(lineage(type_name)) for k, v in t.props.items()}


def navs_of(type_name: str) -> dict[str, str]:
    return {k: v for t in reversed(lineage(type_name)) for k, v in t.navs.items()}


def is_a(type_name: str, ancestor: str) -> bool:
    return any(t.name == ancestor for t in lineage(type_name))
