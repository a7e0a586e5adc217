"""`GET /{entityset}?fetchXml=<url-encoded fetch>` (Microsoft Learn, "Use FetchXml to query data", "FetchXml
reference", "Filter rows / Order rows / Page results / Count rows using FetchXml").

Emulated subset: `<fetch top|count|page|paging-cookie|returntotalrecordcount|distinct|useraworderby>` (the hints
`no-lock`, `latematerialize`, `options`, `version`, `output-format`, `mapping` change no result and are accepted),
one `<entity name>` (the entity set's table), `<attribute name>`, `<all-attributes/>` (none listed = all),
`<order attribute descending>`, nested `<filter type="and|or">`, and `<condition attribute operator value>` with
`<value>` children for eq ne neq lt le gt ge like not-like begins-with not-begin-with ends-with not-end-with in
not-in between not-between null not-null on on-or-after on-or-before eq-userid ne-userid, and `valueof` (a column
of the same row). Lookups take GUIDs (with or without braces), booleans 1/0/true/false.

Semantics as documented: rows hold no null properties ("FetchXML queries sent using Web API don't return properties
with null values"); choice columns order by label unless `useraworderby`, lookups by the related record's primary
name ("Order rows using FetchXml"); default and maximum page 5,000; `top` ≤ 5,000 and not combined with paging or
`returntotalrecordcount`; `@odata.count` up to 5,000 with `returntotalrecordcount` or `$count=true`; with
`Prefer: odata.include-annotations` naming them, `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` (a `<cookie
pagenumber pagingcookie istracking>` element whose `pagingcookie` is the URL-encoded-twice `<cookie page>` with the
first and last values of each order column and the key) and `@Microsoft.Dynamics.CRM.morerecords`, neither on the
last page ("Page results using FetchXml"). A request's `paging-cookie` resumes after the last row it names; without
one, `page` is simple paging. Comparisons follow SQL: text compares case-insensitively and a null column satisfies
no comparison, `ne` and `not-like` included (the service's SQL semantics; unconfirmed for `ne`); dates compare in
UTC (the service uses the user's time zone for `on…` operators; unconfirmed). `distinct` rows carry no key and get
no paging cookie (unconfirmed).

Refusals: malformed XML (or a DTD) → 0x80040201 "Invalid XML." (the service's text); an unknown table →
0x80041102, an unknown column → 0x80041103 (the service's texts); anything outside the subset — `link-entity`,
aggregates, aliases, other operators, unknown elements or attributes — → 400 0x80040203 naming what is not
emulated; a table other than the entity set's, `top` with paging, bad values → 400 0x80040203 (wording unconfirmed).
"""

from __future__ import annotations

import bisect
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from emulators.common.query import sort_component
from emulators.dataverse.errors import DataverseError
from emulators.dataverse.payload import parse_datetime
from emulators.dataverse.schema import EDM, Attr, TableDef

if TYPE_CHECKING:
    from emulators.dataverse.annotations import Formatter

INVALID_XML = "0x80040201"
NO_ENTITY = "0x80041102"  # QueryBuilderNoEntity
NO_ATTRIBUTE = "0x80041103"  # QueryBuilderNoAttribute
INVALID_ARGUMENT = "0x80040203"
MAX_ROWS = 5000
Predicate = Callable[[dict[str, Any]], bool]

_ATTRIBUTES = {
    "fetch": {"version", "output-format", "mapping", "distinct", "no-lock", "top", "count", "page", "paging-cookie",
              "returntotalrecordcount", "latematerialize", "options", "useraworderby", "aggregate"},
    "entity": {"name"},
    "attribute": {"name"},
    "all-attributes": set(),
    "order": {"attribute", "descending"},
    "filter": {"type", "hint"},
    # uiname / uitype / uihidden only describe the condition for the view designer.
    "condition": {"attribute", "operator", "value", "valueof", "uiname", "uitype", "uihidden"},
    "value": {"uiname", "uitype"},
}
_CHILDREN = {"fetch": {"entity"}, "entity": {"attribute", "all-attributes", "order", "filter"},
             "filter": {"condition", "filter"}, "condition": {"value"}}
_NO_VALUE = {"null", "not-null", "eq-userid", "ne-userid"}
_MANY_VALUES = {"in", "not-in"}
_TWO_VALUES = {"between", "not-between"}
_TEXT_ONLY = {"like", "not-like", "begins-with", "not-begin-with", "ends-with", "not-end-with"}
_DATE_ONLY = {"on", "on-or-after", "on-or-before"}
_COMPARE = {"eq", "ne", "neq", "lt", "le", "gt", "ge"}
OPERATORS = _NO_VALUE | _MANY_VALUES | _TWO_VALUES | _TEXT_ONLY | _DATE_ONLY | _COMPARE


def invalid_xml(detail: str = "") -> DataverseError:
    return DataverseError(400, INVALID_XML, "Invalid XML." + (f" {detail}" if detail else ""))


def not_emulated(what: str) -> DataverseError:
    return DataverseError(400, INVALID_ARGUMENT, f"The emulator does not support {what} in FetchXml.")


def bad_argument(message: str) -> DataverseError:
    return DataverseError(400, INVALID_ARGUMENT, message)


@dataclass
class Fetch:
    table: TableDef
    fields: list[str] | None = None  # wire names; None = all columns
    orders: list[tuple[Attr, bool]] = field(default_factory=list)
    where: Predicate | None = None
    top: int | None = None
    count: int | None = None
    page: int | None = None
    cookie: str | None = None
    total: bool = False
    distinct: bool = False
    raw_order: bool = False


def parse(text: str, table: TableDef, by_logical: dict[str, TableDef], user_id: str) -> Fetch:
    """The fetch element of a request on `table`, validated."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise invalid_xml()
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise invalid_xml() from None
    if root.tag != "fetch":
        raise invalid_xml(f"The root element must be 'fetch', not '{root.tag}'.")
    _check_tree(root)
    entities = root.findall("entity")
    if len(entities) != 1:
        raise invalid_xml("A fetch element holds exactly one entity element.")
    entity = entities[0]
    name = entity.get("name")
    if not name:
        raise invalid_xml("The entity element needs a name.")
    if name not in by_logical:
        raise DataverseError(400, NO_ENTITY, f"The entity with a name = '{name}' with namemapping = 'Logical' "
                             "was not found in the MetadataCache.")
    if name != table.logical:
        raise bad_argument(f"The entity '{name}' named in the fetchXml is not the table of the entity set "
                           f"'{table.entity_set}' ('{table.logical}').")
    fetch = Fetch(table)
    _fetch_options(root, fetch)
    fetch.fields = _columns(entity, table)
    fetch.orders = [(_attr(table, o.get("attribute")), _flag(o, "descending")) for o in entity.findall("order")]
    filters = entity.findall("filter")
    if filters:
        preds = [_filter(f, table, user_id) for f in filters]
        fetch.where = preds[0] if len(preds) == 1 else (lambda row: all(p(row) for p in preds))
    return fetch


def _check_tree(elem: ET.Element) -> None:
    """Only the subset's elements and attributes; documented ones outside it are "not emulated"."""
    allowed = _ATTRIBUTES.get(elem.tag)
    if allowed is None:
        raise not_emulated(f"the '{elem.tag}' element")
    for attr in elem.attrib:
        if attr not in allowed:
            raise not_emulated(f"the '{attr}' attribute of '{elem.tag}'")
    for child in elem:
        if child.tag not in _ATTRIBUTES:
            raise not_emulated(f"the '{child.tag}' element")
        if child.tag not in _CHILDREN.get(elem.tag, set()):
            raise invalid_xml(f"'{child.tag}' is not a valid child of '{elem.tag}'.")
        _check_tree(child)


def _flag(elem: ET.Element, name: str) -> bool:
    value = (elem.get(name) or "false").strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise invalid_xml(f"'{value}' is not a valid value for the '{name}' attribute.")
    return value in ("true", "1")


def _positive(elem: ET.Element, name: str) -> int | None:
    value = elem.get(name)
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise invalid_xml(f"'{value}' is not a valid value for the '{name}' attribute.")
    return int(value)


def _fetch_options(root: ET.Element, fetch: Fetch) -> None:
    if _flag(root, "aggregate"):
        raise not_emulated("aggregate queries (aggregate='true')")
    if (mapping := root.get("mapping")) not in (None, "logical"):
        raise invalid_xml(f"'{mapping}' is not a valid mapping.")
    fetch.top, fetch.count, fetch.page = _positive(root, "top"), _positive(root, "count"), _positive(root, "page")
    fetch.cookie = root.get("paging-cookie")
    fetch.total = _flag(root, "returntotalrecordcount")
    fetch.distinct = _flag(root, "distinct")
    fetch.raw_order = _flag(root, "useraworderby")
    # (unconfirmed wording) Microsoft Learn: top "cannot exceed 5,000", is "not compatible" with paging and
    # "can't be applied together with returntotalrecordcount"; a page holds at most 5,000 rows.
    if fetch.top is not None and fetch.top > MAX_ROWS:
        raise bad_argument(f"The top attribute value {fetch.top} exceeds the maximum of {MAX_ROWS}.")
    if fetch.top is not None and (fetch.count is not None or fetch.page is not None or fetch.cookie):
        raise bad_argument("The top attribute can't be used together with the paging attributes count, page and "
                           "paging-cookie.")
    if fetch.top is not None and fetch.total:
        raise bad_argument("The top attribute can't be used together with returntotalrecordcount.")
    if fetch.count is not None and fetch.count > MAX_ROWS:
        raise bad_argument(f"The count attribute value {fetch.count} exceeds the maximum page size of {MAX_ROWS}.")


def _attr(table: TableDef, name: str | None) -> Attr:
    if not name:
        raise invalid_xml("The 'attribute' attribute is required.")
    attr = table.attrs.get(name)
    if attr is None:
        raise DataverseError(400, NO_ATTRIBUTE, f"'{table.logical}' entity doesn't contain attribute with "
                             f"Name = '{name}' and NameMapping = 'Logical'.")
    return attr


def _columns(entity: ET.Element, table: TableDef) -> list[str] | None:
    if entity.find("all-attributes") is not None:
        return None
    names = [a.get("name") for a in entity.findall("attribute")]
    if not names:
        return None  # "If you do not specify columns … data for all columns is returned."
    return list(dict.fromkeys(_attr(table, n).field for n in names))


# ----- filters

def _filter(elem: ET.Element, table: TableDef, user_id: str) -> Predicate:
    kind = (elem.get("type") or "and").strip().lower()
    if kind not in ("and", "or"):
        raise invalid_xml(f"'{kind}' is not a valid filter type.")
    parts = [_filter(c, table, user_id) if c.tag == "filter" else _condition(c, table, user_id) for c in elem]
    if not parts:
        return lambda row: True
    if kind == "and":
        return lambda row: all(p(row) for p in parts)
    return lambda row: any(p(row) for p in parts)


def _condition(elem: ET.Element, table: TableDef, user_id: str) -> Predicate:
    attr = _attr(table, elem.get("attribute"))
    op = (elem.get("operator") or "").strip()
    if op not in OPERATORS:
        raise not_emulated(f"the condition operator '{op}'")
    key = attr.field
    values = [v.text or "" for v in elem.findall("value")]
    if (single := elem.get("value")) is not None:
        values.insert(0, single)
    if elem.get("valueof") is not None:
        return _column_comparison(elem, table, attr, op, values)
    _check_arity(attr, op, values)
    if op in _TEXT_ONLY and attr.type != "string":
        raise bad_argument(f"The operator '{op}' can't be used with the attribute '{attr.name}' of type "
                           f"'{EDM.get(attr.type, attr.type)}'.")
    if op in _DATE_ONLY and attr.type != "datetime":
        raise bad_argument(f"The operator '{op}' can't be used with the attribute '{attr.name}' of type "
                           f"'{EDM.get(attr.type, attr.type)}'.")
    if op in ("null", "not-null"):
        want_null = op == "null"
        return lambda row: (row.get(key) is None) == want_null
    if op in ("eq-userid", "ne-userid"):
        if attr.type != "lookup":
            raise bad_argument(f"The operator '{op}' needs a lookup attribute, not '{attr.name}'.")
        same = op == "eq-userid"
        return lambda row: row.get(key) is not None and (row[key] == user_id) == same
    if op in _TEXT_ONLY:
        pattern = values[0]
        if op in ("begins-with", "not-begin-with"):
            pattern += "%"
        elif op in ("ends-with", "not-end-with"):
            pattern = "%" + pattern
        rx = like_regex(pattern)
        negate = op.startswith("not-")
        return lambda row: isinstance(row.get(key), str) and bool(rx.fullmatch(row[key])) != negate
    typed = [_typed(attr, v, table) for v in values]
    if op in _DATE_ONLY:
        day = typed[0].date()
        test = {"on": lambda d: d == day, "on-or-after": lambda d: d >= day, "on-or-before": lambda d: d <= day}[op]
        return lambda row: (v := _row_value(attr, row.get(key))) is not None and test(v.date())
    if op in _MANY_VALUES:
        inside = op == "in"
        return lambda row: (v := _row_value(attr, row.get(key))) is not None and (v in typed) == inside
    if op in _TWO_VALUES:
        low, high = typed
        between = op == "between"
        return lambda row: (v := _row_value(attr, row.get(key))) is not None and (low <= v <= high) == between
    return _comparison(op, lambda row: _row_value(attr, row.get(key)), lambda row: typed[0])


def _check_arity(attr: Attr, op: str, values: list[str]) -> None:
    if op in _NO_VALUE:
        ok = not values
    elif op in _MANY_VALUES:
        ok = bool(values)
    elif op in _TWO_VALUES:
        ok = len(values) == 2
    else:
        ok = len(values) == 1
    if not ok:
        raise bad_argument(f"Condition for attribute '{attr.name}': the operator '{op}' was given {len(values)} "
                           "value(s).")


def _column_comparison(elem: ET.Element, table: TableDef, attr: Attr, op: str, values: list[str]) -> Predicate:
    """`<condition attribute='firstname' operator='eq' valueof='lastname'/>` ("Filter on column values in the
    same row": eq ne gt ge lt le, columns of one type)."""
    other = _attr(table, elem.get("valueof"))
    if op not in ("eq", "ne", "neq", "gt", "ge", "lt", "le") or values:
        raise bad_argument(f"The operator '{op}' can't compare the column '{attr.name}' with another column.")
    if other.type != attr.type:
        raise bad_argument(f"The columns '{attr.name}' and '{other.name}' are not of the same type.")
    return _comparison(op, lambda row: _row_value(attr, row.get(attr.field)),
                       lambda row: _row_value(other, row.get(other.field)))


def _comparison(op: str, left: Callable[[dict[str, Any]], Any], right: Callable[[dict[str, Any]], Any]) -> Predicate:
    test: Callable[[Any, Any], bool] = {
        "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "neq": lambda a, b: a != b,
        "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    }[op]

    def predicate(row: dict[str, Any]) -> bool:
        a, b = left(row), right(row)
        return a is not None and b is not None and test(a, b)  # SQL: a null satisfies no comparison

    return predicate


def like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE: `%` any run, `_` one character, `[abc]` / `[a-c]` / `[^a]` a set; case-insensitive."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.I | re.S)


def _typed(attr: Attr, text: str, table: TableDef) -> Any:
    """A condition value as the column's type (what the rows hold, comparable)."""
    t = attr.type
    try:
        if t in ("int", "bigint", "option"):
            return int(text.strip())
        if t in ("decimal", "money"):
            return Decimal(text.strip())
        if t == "bool":
            flag = text.strip().lower()
            if flag not in ("1", "0", "true", "false"):
                raise ValueError(text)
            return flag in ("1", "true")
        if t in ("guid", "lookup"):
            return str(uuid.UUID(text.strip().strip("{}")))
        if t == "datetime":
            when = parse_datetime(text.strip())
            if when is None:
                raise ValueError(text)
            return when
    except (ValueError, InvalidOperation):
        edm = "Edm.Guid" if t == "lookup" else EDM.get(t, t)
        raise bad_argument(f"Condition for attribute '{table.logical}.{attr.name}': expected argument(s) of type "
                           f"'{edm}' but received '{text}'.") from None
    return text.casefold()


def _row_value(attr: Attr, value: Any) -> Any:
    """A stored value in the form `_typed` gives condition values."""
    if value is None:
        return None
    t = attr.type
    if t == "string":
        return value.casefold() if isinstance(value, str) else value
    if t in ("decimal", "money"):
        return Decimal(str(value))
    if t == "datetime":
        return parse_datetime(value) if isinstance(value, str) else value
    if t in ("guid", "lookup"):
        return str(value).lower()
    return value


# ----- running

@dataclass
class Result:
    rows: list[dict[str, Any]]
    total: int
    more: bool
    cookie: str | None


def run(fetch: Fetch, rows: list[dict[str, Any]], fmt: Formatter) -> Result:
    """Filter, order and cut the page the fetch asks for."""
    table = fetch.table
    matched = [r for r in rows if fetch.where(r)] if fetch.where else list(rows)
    total = len(matched)

    def sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for attr, desc in fetch.orders:
            parts.append(sort_component(_order_value(attr, row, fmt, fetch.raw_order), desc))
        parts.append((True, str(row[table.key])))
        return tuple(parts)

    keyed = sorted(((sort_key(r), r) for r in matched), key=lambda kr: kr[0])
    if fetch.distinct:
        seen: set[tuple[Any, ...]] = set()
        unique = []
        for k, r in keyed:
            sig = tuple(repr(r.get(f)) for f in (fetch.fields or sorted(x for x in r if "@" not in x)))
            if sig not in seen:
                seen.add(sig)
                unique.append((k, r))
        keyed = unique
    if fetch.top is not None:
        return Result([r for _, r in keyed[:fetch.top]], total, False, None)
    size = fetch.count or MAX_ROWS
    page = fetch.page or 1
    start = (page - 1) * size
    if fetch.cookie and page > 1 and not fetch.distinct:
        last = _cookie_row(fetch, fetch.cookie)
        if last is not None:
            start = bisect.bisect_right([k for k, _ in keyed], sort_key(last))
    chunk = keyed[start:start + size]
    more = start + size < len(keyed)
    cookie = _cookie(fetch, page, chunk, fmt) if more and chunk and not fetch.distinct else None
    return Result([r for _, r in chunk], total, more, cookie)


def _order_value(attr: Attr, row: dict[str, Any], fmt: Formatter, raw: bool) -> Any:
    value = row.get(attr.field)
    if value is None:
        return None
    if attr.type == "option" and not raw:
        return (attr.label(value) or "").casefold()  # choice columns order by their label
    if attr.type == "lookup":
        target = row.get(attr.field + "@Microsoft.Dynamics.CRM.lookuplogicalname") or attr.targets[0]
        return (fmt.primary_name(target, value) or "").casefold()  # lookups by the related primary name
    return _row_value(attr, value)


def _cookie_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _cookie(fetch: Fetch, page: int, chunk: list[tuple[Any, dict[str, Any]]], fmt: Formatter) -> str:
    """`<cookie pagenumber="2" pagingcookie="%253ccookie…" istracking="False" />` (Web API form)."""
    table = fetch.table
    first, last = chunk[0][1], chunk[-1][1]
    parts = [f'<cookie page="{page}">']
    for name in [*(a.field for a, _ in fetch.orders), table.key]:
        attrs = []
        for label, row in (("last", last), ("first", first)):
            value = row.get(name)
            if value is not None:
                text = f"{{{str(value).upper()}}}" if name == table.key else _cookie_text(value)
                attrs.append(f'{label}="{_xml_attr(text)}"')
        parts.append(f"<{name} {' '.join(attrs)} />")
    parts.append("</cookie>")
    once = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote("".join(parts), safe=""))
    twice = quote(once, safe="")  # URL-encoded twice, in the service's lower-case hex
    return f'<cookie pagenumber="{page + 1}" pagingcookie="{twice}" istracking="False" />'


def _xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _cookie_row(fetch: Fetch, cookie: str) -> dict[str, Any] | None:
    """The last row a paging cookie names, as stored values; None when it names other columns than the
    query's order (the service then falls back to simple paging; unconfirmed)."""
    try:
        root = ET.fromstring(cookie)
    except ET.ParseError:
        raise bad_argument("Malformed XML in the paging cookie.") from None
    table = fetch.table
    expected = [*(a.field for a, _ in fetch.orders), table.key]
    if [c.tag for c in root] != expected:
        return None
    row: dict[str, Any] = {}
    for child in root:
        text = child.get("last")
        if child.tag == table.key:
            if text is None:
                return None
            row[table.key] = text.strip("{}").lower()
            continue
        attr = table.by_field(child.tag)
        if attr is None:
            return None
        row[child.tag] = None if text is None else _stored(attr, text)
    return row


def _stored(attr: Attr, text: str) -> Any:
    """A cookie value back in the form rows store it."""
    t = attr.type
    try:
        if t in ("int", "bigint", "option"):
            return int(text)
        if t in ("decimal", "money"):
            return float(text)
        if t == "bool":
            return text in ("1", "True", "true")
        if t in ("guid", "lookup"):
            return str(uuid.UUID(text.strip("{}")))
    except ValueError:
        raise bad_argument("Malformed XML in the paging cookie.") from None
    return text


def project(fetch: Fetch, row: dict[str, Any], etag: str) -> dict[str, Any]:
    """A result row: etag, the columns asked for without nulls, the key (none for distinct rows)."""
    table = fetch.table
    out: dict[str, Any] = {} if fetch.distinct else {"@odata.etag": etag}
    names = fetch.fields if fetch.fields is not None else [k for k in row if "@" not in k]
    if fetch.fields is not None and "_transactioncurrencyid_value" in row and any(
            (a := table.by_field(f)) is not None and a.type == "money" for f in fetch.fields):
        names = [*names, "_transactioncurrencyid_value"]  # a money column brings its currency, as in OData
    for name in names:
        if row.get(name) is not None:
            out[name] = row[name]
    if not fetch.distinct:
        out[table.key] = row[table.key]
    return out


def context_columns(fetch: Fetch) -> list[str] | None:
    if fetch.fields is None:
        return None
    return list(dict.fromkeys([*fetch.fields, *([] if fetch.distinct else [fetch.table.key])]))
