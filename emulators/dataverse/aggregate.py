"""`$apply` (Microsoft Learn, "Aggregate data using OData"): the transformations `filter(…)`, `groupby((a,b))`,
`groupby((a),aggregate(…))` and `aggregate(…)`, chained with `/`; aggregates `x with sum|min|max|average as y`
and `$count as y`. Results carry the group columns (null ones left out, as the documented distinct-values example
shows) and the aliases; `@odata.context` is `$metadata#<entityset>`; formatted values as for rows ("$440,000.00",
"8"). Groups come in ascending order of their columns (unconfirmed), or as `$orderby` asks; `$top` cuts them.

Documented limits: at most 50,000 rows are aggregated (0x8004E023 "AggregateQueryRecordLimit exceeded. Cannot
perform this operation."); `groupby` with date/time values is not supported; `$orderby` on an aggregate value →
"The query node SingleValueOpenPropertyAccess is not supported"; a distinct count (`countdistinct`) is not
available in OData. Not emulated (refused): grouping by a related table's column (`primarycontactid/fullname`),
`filter` after grouping, other transformations. Refusal codes and the other wordings are unconfirmed (0x80060888).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from emulators.common.query import QueryError, sort_component
from emulators.dataverse.annotations import FORMATTED, Formatter, format_datetime, money
from emulators.dataverse.errors import BAD_PROPERTY, QUERY_SYNTAX, DataverseError
from emulators.dataverse.expand import split_top, syntax_error
from emulators.dataverse.schema import Attr, TableDef
from shared.odata import ODataFilterError, evaluate_filter, filter_fields, parse_filter

RECORD_LIMIT = 50_000
RECORD_LIMIT_CODE = "0x8004E023"
_STEP = re.compile(r"^(filter|groupby|aggregate)\s*\((.*)\)$", re.S)
_AGG = re.compile(r"^(?:(?P<count>\$count)|(?P<prop>[A-Za-z_][A-Za-z0-9_]*)\s+with\s+(?P<method>\w+))\s+as\s+"
                  r"(?P<alias>[A-Za-z_][A-Za-z0-9_]*)$")
METHODS = ("sum", "min", "max", "average")


def refuse(message: str) -> DataverseError:
    return DataverseError(400, BAD_PROPERTY, message)


@dataclass
class Aggregate:
    alias: str
    method: str  # count | sum | min | max | average
    attr: Attr | None = None


@dataclass
class Apply:
    filters: list[Any] = field(default_factory=list)
    group: list[Attr] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)
    grouped: bool = False


def parse(text: str, table: TableDef) -> Apply:
    out = Apply()
    for step in split_top(text, "/"):
        m = _STEP.match(step)
        if not m:
            raise refuse(f"The $apply transformation '{step}' is not supported.")
        kind, inner = m.group(1), m.group(2).strip()
        if out.grouped:
            raise refuse(f"The emulator does not support a {kind} transformation after groupby or aggregate.")
        if kind == "filter":
            out.filters.append(_filter(inner, table))
        elif kind == "aggregate":
            out.aggregates = _aggregates(inner, table)
            out.grouped = True
        else:
            parts = split_top(inner, ",")
            if not parts[0].startswith("(") or not parts[0].endswith(")") or len(parts) > 2:
                raise syntax_error()
            out.group = [_group_column(p, table) for p in split_top(parts[0][1:-1], ",")]
            if len(parts) == 2:
                agg = _STEP.match(parts[1])
                if not agg or agg.group(1) != "aggregate":
                    raise syntax_error()
                out.aggregates = _aggregates(agg.group(2), table)
            out.grouped = True
    if not out.grouped:
        raise refuse("The emulator supports $apply with a groupby or aggregate transformation only.")
    return out


def _filter(text: str, table: TableDef) -> Any:
    try:
        node = parse_filter(text)
        unknown = filter_fields(node) - table.fields
    except ODataFilterError as exc:
        raise DataverseError(400, QUERY_SYNTAX, str(exc)) from None
    if unknown:
        raise refuse(f"Could not find a property named '{sorted(unknown)[0]}' on type "
                     f"'Microsoft.Dynamics.CRM.{table.logical}'.")
    return node


def _column(name: str, table: TableDef) -> Attr:
    attr = table.by_field(name)
    if attr is None:
        raise refuse(f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{table.logical}'.")
    return attr


def _group_column(name: str, table: TableDef) -> Attr:
    if "/" in name:
        raise refuse(f"The emulator does not support grouping by a related table's column ('{name}').")
    attr = _column(name, table)
    if attr.type == "datetime":
        raise refuse("groupby with datetime values is not supported.")  # documented limit; wording unconfirmed
    return attr


def _aggregates(text: str, table: TableDef) -> list[Aggregate]:
    out = []
    for part in split_top(text, ","):
        m = _AGG.match(part)
        if not m:
            raise syntax_error()
        if m.group("count"):
            out.append(Aggregate(m.group("alias"), "count"))
            continue
        method, attr = m.group("method"), _column(m.group("prop"), table)
        if method == "countdistinct":
            raise refuse("A distinct count (countdistinct) is not supported with OData; use FetchXml.")
        if method not in METHODS:
            raise refuse(f"The aggregation method '{method}' is not supported.")
        numeric = attr.type in ("int", "bigint", "decimal", "money")
        if not numeric and not (method in ("min", "max") and attr.type == "datetime"):
            raise refuse(f"The aggregation method '{method}' can't be applied to '{attr.field}'.")
        out.append(Aggregate(m.group("alias"), method, attr))
    return out


def run(spec: Apply, table: TableDef, rows: list[dict[str, Any]], orderby: str | None,
        top: str | None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(result row, a representative source row) per group, in order."""
    try:
        matched = [r for r in rows if all(evaluate_filter(f, r, case_insensitive=True) for f in spec.filters)]
    except (ODataFilterError, QueryError) as exc:
        raise DataverseError(400, QUERY_SYNTAX, str(exc)) from None
    if len(matched) > RECORD_LIMIT:
        raise DataverseError(400, RECORD_LIMIT_CODE, "AggregateQueryRecordLimit exceeded. Cannot perform this "
                             "operation.")
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in matched:
        groups.setdefault(tuple(r.get(a.field) for a in spec.group), []).append(r)
    if not spec.group:
        groups = {(): matched}
    results = []
    for values, members in groups.items():
        out = {a.field: v for a, v in zip(spec.group, values, strict=True) if v is not None}
        for agg in spec.aggregates:
            out[agg.alias] = _compute(agg, members)
        results.append((out, members[0] if members else {}))
    results.sort(key=lambda pair: _order_key(pair[0], [(a.field, False) for a in spec.group]))
    if orderby:
        order = _orderby(orderby, spec)
        results.sort(key=lambda pair: _order_key(pair[0], order))
    if top is not None:
        if not top.isdigit():
            raise DataverseError(400, QUERY_SYNTAX, f"Invalid value {top!r} for $top.")
        results = results[:int(top)]
    return results


def _compute(agg: Aggregate, rows: list[dict[str, Any]]) -> Any:
    if agg.method == "count":
        return len(rows)
    assert agg.attr is not None
    values = [r.get(agg.attr.field) for r in rows if r.get(agg.attr.field) is not None]
    if not values:
        return None
    if agg.method == "min":
        return min(values)
    if agg.method == "max":
        return max(values)
    total = sum(Decimal(str(v)) for v in values)
    if agg.method == "average":
        return float(total / len(values))
    return int(total) if agg.attr.type in ("int", "bigint") else float(total)


def _orderby(text: str, spec: Apply) -> list[tuple[str, bool]]:
    columns = {a.field for a in spec.group}
    aliases = {a.alias for a in spec.aggregates}
    out = []
    for part in text.split(","):
        bits = part.split()
        if not bits or len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
            raise DataverseError(400, QUERY_SYNTAX, f"Invalid $orderby clause {part.strip()!r}.")
        if bits[0] in aliases:
            raise refuse("The query node SingleValueOpenPropertyAccess is not supported")  # documented
        if bits[0] not in columns:
            raise refuse(f"The $orderby property '{bits[0]}' is not a grouped column.")
        out.append((bits[0], len(bits) == 2 and bits[1].lower() == "desc"))
    return out


def _order_key(row: dict[str, Any], order: list[tuple[str, bool]]) -> tuple[Any, ...]:
    return tuple(sort_component(row.get(name), desc) for name, desc in order)


def annotate(spec: Apply, table: TableDef, out: dict[str, Any], source: dict[str, Any],
             fmt: Formatter) -> dict[str, Any]:
    """Formatted values of a result row: the group columns as in any row, the aggregates by their column."""
    row = fmt.annotate(table, source, {k: v for k, v in out.items() if k not in {a.alias for a in spec.aggregates}})
    for agg in spec.aggregates:
        value = out[agg.alias]
        text = _formatted(agg, value, fmt)
        if fmt.formatted and text is not None:
            row[f"{agg.alias}@{FORMATTED}"] = text
        row[agg.alias] = value
    return row


def _formatted(agg: Aggregate, value: Any, fmt: Formatter) -> str | None:
    if value is None:
        return None
    if agg.method == "count" or (agg.attr is not None and agg.attr.type in ("int", "bigint")):
        return f"{round(value):,}" if agg.method != "average" else f"{value:,.2f}"
    assert agg.attr is not None
    if agg.attr.type == "money":
        symbol, precision = fmt.currency(None)  # aggregates of money are shown in the base currency
        return money(value, symbol, precision)
    if agg.attr.type == "datetime":
        return format_datetime(value)
    return f"{value:,.2f}"
