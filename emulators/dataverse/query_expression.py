"""The Web API's QueryExpression (Microsoft Learn: "QueryExpression ComplexType", "FilterExpression ComplexType",
"ConditionExpression ComplexType", "ColumnSet ComplexType", "OrderExpression ComplexType", "Object ComplexType",
"ConditionOperator EnumType", "LogicalOperator EnumType") read from JSON and turned into the FetchXml it stands
for, so a QueryExpression selects rows through exactly the code a `fetchXml` query runs (fetchxml.py): the same
operators, value typing, SQL null semantics and refusals. The platform converts between the two itself
(QueryExpressionToFetchXml), and a bulk delete operation keeps its query set as FetchXml (`orderedquerysetxml`).

Emulated subset: `EntityName`; `ColumnSet` (`AllColumns`, `Columns`); `Criteria` with nested `Filters`,
`FilterOperator` And / Or and `Conditions` (`AttributeName`, `Operator`, `Values` as `{"Type": "System.String",
"Value": …}` objects, `CompareColumns` against another column); `Orders` (`AttributeName`, `OrderType`);
`Distinct`; the hints `NoLock`, `QueryHints`, `ForceSeek`, `FilterHint` (they change no result); `PageInfo`, which
a bulk delete job ignores (BulkDeleteRequest.QuerySet: "the value in the PageInfo property is ignored").
Refused with 400 0x80040203 (wording unconfirmed): `LinkEntities`, `SubQueryExpression`, `AnyAllFilterLinkEntity`,
a condition's `EntityName` naming another table, `TopCount` (what a bulk delete job does with it is undocumented),
`DataSource` (retained or archived data), quick find filters, `AttributeExpressions`, order aliases, and the
documented condition operators outside the table below. An unknown property → 400 0x80060888 "The property 'x'
does not exist on type 'Microsoft.Dynamics.CRM.QueryExpression'…" (the OData reader's text); a value of the wrong
JSON type or an unknown enum member → 400 0x80048d19 "Cannot convert the literal …" (unconfirmed for enums)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from emulators.dataverse.errors import BAD_PAYLOAD, INVALID_ARGUMENT, DataverseError, bad_property
from emulators.dataverse.fetchxml import NO_ENTITY
from emulators.dataverse.schema import TableDef

NAMESPACE = "Microsoft.Dynamics.CRM."

# ConditionOperator members emulated: (enum value, the FetchXml operator with the same meaning). Values from
# "ConditionOperator EnumType" (0–13) and the SDK's ConditionOperator enumeration (the others).
OPERATORS: dict[str, tuple[int, str]] = {
    "Equal": (0, "eq"), "NotEqual": (1, "ne"), "GreaterThan": (2, "gt"), "LessThan": (3, "lt"),
    "GreaterEqual": (4, "ge"), "LessEqual": (5, "le"), "Like": (6, "like"), "NotLike": (7, "not-like"),
    "In": (8, "in"), "NotIn": (9, "not-in"), "Between": (10, "between"), "NotBetween": (11, "not-between"),
    "Null": (12, "null"), "NotNull": (13, "not-null"), "On": (25, "on"), "OnOrBefore": (26, "on-or-before"),
    "OnOrAfter": (27, "on-or-after"), "EqualUserId": (41, "eq-userid"), "NotEqualUserId": (42, "ne-userid"),
    "BeginsWith": (54, "begins-with"), "DoesNotBeginWith": (55, "not-begin-with"), "EndsWith": (56, "ends-with"),
    "DoesNotEndWith": (57, "not-end-with"),
}
# Documented members the emulator does not evaluate (relative dates, fiscal periods, hierarchies, full-text
# Contains, multi-select choices, business units and teams): refused, never approximated.
NOT_EMULATED_OPERATORS = frozenset({
    "Yesterday", "Today", "Tomorrow", "Last7Days", "Next7Days", "LastWeek", "ThisWeek", "NextWeek", "LastMonth",
    "ThisMonth", "NextMonth", "LastYear", "ThisYear", "NextYear", "LastXHours", "NextXHours", "LastXDays",
    "NextXDays", "LastXWeeks", "NextXWeeks", "LastXMonths", "NextXMonths", "LastXYears", "NextXYears",
    "OlderThanXMinutes", "OlderThanXHours", "OlderThanXDays", "OlderThanXWeeks", "OlderThanXMonths",
    "OlderThanXYears", "NotOn", "EqualBusinessId", "NotEqualBusinessId", "EqualUserLanguage", "EqualUserTeams",
    "EqualUserOrUserTeams", "EqualUserOrUserHierarchy", "EqualUserOrUserHierarchyAndTeams", "EqualRoleBusinessId",
    "ChildOf", "Mask", "NotMask", "MasksSelect", "Contains", "DoesNotContain", "ContainValues",
    "DoesNotContainValues", "Under", "NotUnder", "UnderOrEqual", "Above", "AboveOrEqual", "ThisFiscalYear",
    "ThisFiscalPeriod", "NextFiscalYear", "NextFiscalPeriod", "LastFiscalYear", "LastFiscalPeriod",
    "LastXFiscalYears", "LastXFiscalPeriods", "NextXFiscalYears", "NextXFiscalPeriods", "InFiscalYear",
    "InFiscalPeriod", "InFiscalPeriodAndYear", "InOrBeforeFiscalPeriodAndYear", "InOrAfterFiscalPeriodAndYear"})
LOGICAL_OPERATORS = {"And": 0, "Or": 1}
ORDER_TYPES = {"Ascending": 0, "Descending": 1}
# `Object.Type`: the .NET type name of the value; the value itself is read as the column's type (fetchxml.py),
# as the documented examples pass an option value as {"Type": "System.String", "Value": "64"}.
NET_TYPES = frozenset({"System.String", "System.Int16", "System.Int32", "System.Int64", "System.Decimal",
                       "System.Double", "System.Single", "System.Boolean", "System.Guid", "System.DateTime",
                       "System.DateTimeOffset"})

# The complex types as `$metadata` declares them (csdl.py): their documented properties, less those whose types
# the emulator does not declare (LinkEntities, SubQueryExpression, AnyAllFilterLinkEntity, AttributeExpressions).
COMPLEX_TYPES: dict[str, tuple[str | None, dict[str, str]]] = {
    "QueryBase": (None, {}),
    "QueryExpression": ("QueryBase", {
        "ColumnSet": "mscrm.ColumnSet", "Criteria": "mscrm.FilterExpression", "DataSource": "Edm.String",
        "Distinct": "Edm.Boolean", "EntityName": "Edm.String", "ForceSeek": "Edm.String", "NoLock": "Edm.Boolean",
        "Orders": "Collection(mscrm.OrderExpression)", "PageInfo": "mscrm.PagingInfo", "QueryHints": "Edm.String",
        "TopCount": "Edm.Int32"}),
    "ColumnSet": (None, {"AllColumns": "Edm.Boolean", "Columns": "Collection(Edm.String)"}),
    "FilterExpression": (None, {
        "Conditions": "Collection(mscrm.ConditionExpression)", "FilterHint": "Edm.String",
        "FilterOperator": "mscrm.LogicalOperator", "Filters": "Collection(mscrm.FilterExpression)",
        "IsQuickFindFilter": "Edm.Boolean"}),
    "ConditionExpression": (None, {
        "AttributeName": "Edm.String", "CompareColumns": "Edm.Boolean", "EntityName": "Edm.String",
        "Operator": "mscrm.ConditionOperator", "Values": "Collection(mscrm.Object)"}),
    "Object": (None, {"Type": "Edm.String", "Value": "Edm.String"}),
    "OrderExpression": (None, {"Alias": "Edm.String", "AttributeName": "Edm.String", "EntityName": "Edm.String",
                               "OrderType": "mscrm.OrderType"}),
    "PagingInfo": (None, {"Count": "Edm.Int32", "PageNumber": "Edm.Int32", "PagingCookie": "Edm.String",
                          "ReturnTotalRecordCount": "Edm.Boolean"}),
}
# Enum types `$metadata` declares; ConditionOperator with the members the emulator evaluates.
ENUM_TYPES: dict[str, dict[str, int]] = {
    "ConditionOperator": {name: value for name, (value, _) in OPERATORS.items()},
    "LogicalOperator": LOGICAL_OPERATORS, "OrderType": ORDER_TYPES,
}
# Properties read (documented ones refused included, so they get the "not emulated" answer, not "unknown").
_PROPERTIES = {
    "QueryExpression": {*COMPLEX_TYPES["QueryExpression"][1], "LinkEntities", "SubQueryExpression"},
    "ColumnSet": {*COMPLEX_TYPES["ColumnSet"][1], "AttributeExpressions"},
    "FilterExpression": {*COMPLEX_TYPES["FilterExpression"][1], "AnyAllFilterLinkEntity"},
    **{name: set(COMPLEX_TYPES[name][1]) for name in ("ConditionExpression", "Object", "OrderExpression",
                                                      "PagingInfo")},
}


def not_emulated(what: str) -> DataverseError:
    return DataverseError(400, INVALID_ARGUMENT, f"The emulator does not support {what} in a QueryExpression.")


def cannot_convert(value: Any, edm: str) -> DataverseError:
    return DataverseError(400, BAD_PAYLOAD, f"Cannot convert the literal '{value}' to the expected type '{edm}'.")


def to_fetch_xml(query: Any, by_logical: dict[str, TableDef]) -> tuple[TableDef, str]:
    """(the table, the `<fetch>` element as text) of one QueryExpression, its shape checked; the columns, values
    and operators are checked when fetchxml.parse reads the result."""
    q = _object(query, "QueryExpression")
    name = _required(q.get("EntityName"), "EntityName", "QueryExpression")
    if not isinstance(name, str):
        raise cannot_convert(name, "Edm.String")
    table = by_logical.get(name)
    if table is None:  # the platform's QueryBuilderNoEntity text, as for FetchXml
        raise DataverseError(400, NO_ENTITY, f"The entity with a name = '{name}' with namemapping = 'Logical' was "
                             "not found in the MetadataCache.")
    _refuse_unsupported(q)
    _object(q.get("PageInfo"), "PagingInfo", nullable=True)  # ignored by bulk delete jobs, but well-formed
    for hint in ("QueryHints", "ForceSeek"):
        _string(q.get(hint))
    fetch = ET.Element("fetch", {"mapping": "logical"})
    if _boolean(q.get("Distinct")):
        fetch.set("distinct", "true")
    if _boolean(q.get("NoLock")):
        fetch.set("no-lock", "true")
    if q.get("QueryHints"):
        fetch.set("options", q["QueryHints"])  # FetchXml's `options`: the same SQL query hints
    entity = ET.SubElement(fetch, "entity", {"name": name})
    _columns(entity, q.get("ColumnSet"))
    for order in _collection(q.get("Orders"), "Orders"):
        _order(entity, order)
    if (criteria := q.get("Criteria")) is not None:
        entity.append(_filter(criteria, name))
    return table, ET.tostring(fetch, encoding="unicode")


def _object(value: Any, type_name: str, *, nullable: bool = False) -> dict[str, Any]:
    """A JSON object of the complex type: `@odata.type` (optional) names it, every property is one it has."""
    if value is None and nullable:
        return {}
    if not isinstance(value, dict):
        raise cannot_convert(value, NAMESPACE + type_name)
    declared = value.get("@odata.type")
    if declared is not None and str(declared).removeprefix("#") != NAMESPACE + type_name:
        # (unconfirmed wording) another type where this one is expected.
        raise DataverseError(400, BAD_PAYLOAD, f"The type '{declared}' is not compatible with the expected type "
                             f"'{NAMESPACE}{type_name}'.")
    for prop in value:
        if "@" not in prop and prop not in _PROPERTIES[type_name]:
            raise bad_property(prop, type_name)
    return value


def _boolean(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise cannot_convert(value, "Edm.Boolean")


def _string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise cannot_convert(value, "Edm.String")


def _required(value: Any, prop: str, type_name: str) -> Any:
    if value is None or value == "":
        # (unconfirmed wording) the property the expression cannot do without.
        raise DataverseError(400, INVALID_ARGUMENT, f"The {prop} of a {type_name} must be specified.")
    return value


def _collection(value: Any, prop: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise cannot_convert(value, f"Collection for '{prop}'")
    return value


def _enum(value: Any, members: dict[str, int], enum: str, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and value in members:
        return value
    raise cannot_convert(value, NAMESPACE + enum)


def _refuse_unsupported(q: dict[str, Any]) -> None:
    if _collection(q.get("LinkEntities"), "LinkEntities"):
        raise not_emulated("LinkEntities (joins to related tables)")
    if q.get("SubQueryExpression") is not None:
        raise not_emulated("SubQueryExpression")
    if q.get("TopCount") is not None:
        raise not_emulated("TopCount")
    if _string(q.get("DataSource")):
        raise not_emulated(f"the DataSource '{q['DataSource']}' (long-term retained or archived data)")


def _columns(entity: ET.Element, value: Any) -> None:
    columns = _object(value, "ColumnSet", nullable=True)
    if _collection(columns.get("AttributeExpressions"), "AttributeExpressions"):
        raise not_emulated("ColumnSet AttributeExpressions")
    if _boolean(columns.get("AllColumns")):
        ET.SubElement(entity, "all-attributes")
        return
    for column in _collection(columns.get("Columns"), "Columns"):
        if not isinstance(column, str):
            raise cannot_convert(column, "Edm.String")
        ET.SubElement(entity, "attribute", {"name": column})


def _order(entity: ET.Element, value: Any) -> None:
    order = _object(value, "OrderExpression")
    if order.get("Alias") is not None or order.get("EntityName") is not None:
        raise not_emulated("orders on aliases or linked tables")
    attribute = _required(_string(order.get("AttributeName")), "AttributeName", "OrderExpression")
    descending = _enum(order.get("OrderType"), ORDER_TYPES, "OrderType", "Ascending") == "Descending"
    ET.SubElement(entity, "order", {"attribute": attribute, "descending": "true" if descending else "false"})


def _filter(value: Any, entity_name: str) -> ET.Element:
    flt = _object(value, "FilterExpression")
    if flt.get("AnyAllFilterLinkEntity") is not None:
        raise not_emulated("AnyAllFilterLinkEntity")
    if _boolean(flt.get("IsQuickFindFilter")):
        raise not_emulated("quick find filters")
    kind = _enum(flt.get("FilterOperator"), LOGICAL_OPERATORS, "LogicalOperator", "And")
    elem = ET.Element("filter", {"type": kind.lower()})
    if hint := _string(flt.get("FilterHint")):
        elem.set("hint", hint)
    for condition in _collection(flt.get("Conditions"), "Conditions"):
        elem.append(_condition(condition, entity_name))
    for child in _collection(flt.get("Filters"), "Filters"):
        elem.append(_filter(child, entity_name))
    return elem


def _condition(value: Any, entity_name: str) -> ET.Element:
    cond = _object(value, "ConditionExpression")
    if cond.get("EntityName") not in (None, entity_name):
        raise not_emulated("conditions on linked tables (ConditionExpression.EntityName)")
    attribute = _required(_string(cond.get("AttributeName")), "AttributeName", "ConditionExpression")
    op = _required(cond.get("Operator"), "Operator", "ConditionExpression")
    if op in NOT_EMULATED_OPERATORS:
        raise not_emulated(f"the condition operator '{op}'")
    if not isinstance(op, str) or op not in OPERATORS:
        raise cannot_convert(op, NAMESPACE + "ConditionOperator")
    elem = ET.Element("condition", {"attribute": attribute, "operator": OPERATORS[op][1]})
    values = [_value_text(v) for v in _collection(cond.get("Values"), "Values")]
    if _boolean(cond.get("CompareColumns")):
        # The value is the logical name of the other column ("ConditionExpression.Values"); FetchXml's `valueof`.
        if len(values) != 1:
            raise DataverseError(400, INVALID_ARGUMENT, f"Condition for attribute '{attribute}': CompareColumns "
                                 "needs exactly one value, the name of the other column.")
        elem.set("valueof", values[0])
        return elem
    for text in values:
        ET.SubElement(elem, "value").text = text
    return elem


def _value_text(value: Any) -> str:
    """An `Object` ({"Type": "System.Int32", "Value": "5"}) as the text of a FetchXml value."""
    obj = _object(value, "Object")
    net_type = obj.get("Type")
    if net_type is not None and net_type not in NET_TYPES:
        # (unconfirmed wording) a .NET type name the service would not read.
        raise DataverseError(400, BAD_PAYLOAD, f"The value type '{net_type}' is not supported.")
    raw = obj.get("Value")
    if raw is None:
        # (unconfirmed wording) SQL compares nothing with null; the Null / NotNull operators test for it.
        raise DataverseError(400, INVALID_ARGUMENT, "A condition value can't be null; use the Null or NotNull "
                             "operator.")
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float):
        return str(raw)  # declared Edm.String; a JSON number is read as its text (unconfirmed)
    if isinstance(raw, str):
        return raw
    raise cannot_convert(raw, "Edm.String")
