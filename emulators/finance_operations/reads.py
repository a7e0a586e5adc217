"""Reads: one record by key, collections with `$filter/$select/$orderby/$top/$skip/$count`, the `/$count`
segment, one-level `$expand` on declared navigation properties (with a nested `$select`), the caller's
company unless `cross-company=true`, and server-driven paging (`Prefer: odata.maxpagesize`, an absolute
`@odata.nextLink` with an opaque `$skiptoken` that keeps every other option)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from odata_query import ast

from emulators.common.query import Query, QueryError, parse_query, run_query
from emulators.finance_operations.errors import FOError, not_found_read
from emulators.finance_operations.keys import rewrite_enum_literals
from emulators.finance_operations.schema import EntityDef, Navigation
from shared.odata import ODataFilterError, parse_filter

if TYPE_CHECKING:
    from emulators.finance_operations.api import ApiRequest, ApiResponse
    from emulators.finance_operations.core import Emulator

JSON_TYPE = "application/json; odata.metadata=minimal"
KNOWN_OPTIONS = {"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand", "$skiptoken",
                 "cross-company", "$format"}
_EXPAND = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.S)


def check_options(req: ApiRequest) -> None:
    """Options the service does not implement are refused, never ignored ($apply, $search, $compute, …)."""
    for name in req.query:
        if name.startswith("$") and name not in KNOWN_OPTIONS:
            raise FOError(400, f"The query parameter '{name}' is not supported.")
    fmt = req.query.get("$format")
    if fmt is not None and fmt.lower() not in ("json", "application/json"):
        raise FOError(400, f"The $format value '{fmt}' is not supported.")


def cross_company(req: ApiRequest) -> bool:
    return any(k.lower() == "cross-company" and v.lower() == "true" for k, v in req.query.items())


def headers(applied: list[str] | None = None) -> dict[str, str]:
    out = {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
    if applied:
        out["Preference-Applied"] = ",".join(applied)
    return out


def context(req: ApiRequest, entity: EntityDef, select: list[str] | None, suffix: str = "") -> str:
    cols = f"({','.join(select)})" if select else ""
    return f"{req.base}/$metadata#{entity.entity_set}{cols}{suffix}"


def _select(entity: EntityDef, text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [p.strip() for p in text.split(",") if p.strip()]
    for n in names:
        if n not in entity.props:
            raise FOError(400, f"Could not find a property named '{n}' on type "
                          f"'Microsoft.Dynamics.DataEntities.{entity.public}'.")
    return names


def parse_expand(entity: EntityDef, text: str | None) -> list[tuple[Navigation, list[str] | None]]:
    if not text:
        return []
    out = []
    for part in _split_top(text):
        m = _EXPAND.match(part)
        if not m or "/" in part.split("(")[0]:
            raise FOError(400, f"Only one level of $expand is supported: '{part.strip()}'.")
        nav = next((n for n in entity.navigations if n.name == m.group(1)), None)
        if nav is None:
            raise FOError(400, f"Could not find a property named '{m.group(1)}' on type "
                          f"'Microsoft.Dynamics.DataEntities.{entity.public}'.")
        select = None
        for opt in _split_top(m.group(2) or "", ";"):
            name, _, value = opt.strip().partition("=")
            if name != "$select":
                raise FOError(400, f"The option '{name}' is not supported inside $expand.")
            select = value
        out.append((nav, select))
    from emulators.finance_operations.schema import ENTITIES

    return [(nav, _select(ENTITIES[nav.target], sel)) for nav, sel in out]


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def _expand(emu: Emulator, row: dict[str, Any], out: dict[str, Any],
            expand: list[tuple[Navigation, list[str] | None]]) -> None:
    for nav, select in expand:
        target = emu.entities[nav.target]
        fields = tuple(t for _, t in nav.on)
        rows = emu.store.table(nav.target).lookup(fields, tuple(row.get(s) for s, _ in nav.on))
        out[nav.name] = [emu.render(target, r, select) for r in rows]


def read_one(emu: Emulator, req: ApiRequest, entity: EntityDef, key: str) -> ApiResponse:
    from emulators.finance_operations.api import ApiResponse

    check_options(req)
    # (unconfirmed) a key read finds the record in any legal entity, with or without cross-company.
    row = emu.locate(entity, key)
    if row is None:
        raise not_found_read(entity.entity_set)
    select = _select(entity, req.query.get("$select"))
    body = {"@odata.context": context(req, entity, select, "/$entity"), **emu.render(entity, row, select)}
    _expand(emu, row, body, parse_expand(entity, req.query.get("$expand")))
    return ApiResponse(200, {**headers(), "ETag": emu.etag(row)}, body)


def _rows(emu: Emulator, req: ApiRequest, entity: EntityDef) -> list[dict[str, Any]]:
    table = emu.store.table(entity.entity_set)
    if entity.company_specific and not cross_company(req):
        return table.lookup(("dataAreaId",), (emu.settings.default_company.lower(),))
    return list(table.rows.values())


def _query(entity: EntityDef, req: ApiRequest) -> Query:
    params = dict(req.query)
    if "$filter" in params:
        check_enum_operands(entity, params["$filter"])
        params["$filter"] = rewrite_enum_literals(params["$filter"])
    try:
        return parse_query(params, entity.fields)
    except QueryError as exc:
        raise FOError(400, str(exc)) from None


_OPERATORS = {ast.Eq: "Equal", ast.NotEq: "NotEqual", ast.Gt: "GreaterThan", ast.GtE: "GreaterThanOrEqual",
              ast.Lt: "LessThan", ast.LtE: "LessThanOrEqual"}


def check_enum_operands(entity: EntityDef, text: str) -> None:
    """F&O compares an enum property only with an enum literal (`NoYes'Yes'` with its namespace); a plain
    string is refused with the OData library's message, as the service answers."""
    try:
        tree = parse_filter(text)
    except ODataFilterError:
        return  # the query parser reports the syntax error itself

    def walk(node: Any) -> None:
        if isinstance(node, ast.Compare):
            for field, other in ((node.left, node.right), (node.right, node.left)):
                prop = entity.props.get(field.name) if isinstance(field, ast.Identifier) else None
                if prop is not None and prop.type == "enum" and type(other) is ast.String:
                    raise FOError(400, "A binary operator with incompatible types was detected. Found operand "
                                  f"types '{prop.edm}' and 'Edm.String' for operator kind "
                                  f"'{_OPERATORS.get(type(node.comparator), 'Equal')}'.")
        for child in vars(node).values() if isinstance(node, ast._Node) else ():
            if isinstance(child, ast._Node):
                walk(child)
            elif isinstance(child, list):
                for item in child:
                    walk(item)

    walk(tree)


def count(emu: Emulator, req: ApiRequest, entity: EntityDef) -> ApiResponse:
    from emulators.finance_operations.api import ApiResponse

    check_options(req)
    q = _query(entity, req)
    q.count, q.top, q.orderby = True, None, []
    page = run_query(_rows(emu, req, entity), q, key="_rid", page_size=1)
    return ApiResponse(200, {"Content-Type": "text/plain", "OData-Version": "4.0"}, str(page.count).encode())


def read_collection(emu: Emulator, req: ApiRequest, entity: EntityDef, prefs: dict[str, str | None]) -> ApiResponse:
    from emulators.finance_operations.api import ApiResponse

    check_options(req)
    size, applied = emu.settings.max_page_size, []
    if (raw := prefs.get("odata.maxpagesize")) is not None:
        if not raw.isdigit() or int(raw) < 1:
            raise FOError(400, f"Invalid value '{raw}' for the odata.maxpagesize preference.")
        size = min(int(raw), emu.settings.max_page_size)
        applied.append(f"odata.maxpagesize={size}")
    q = _query(entity, req)
    select = _select(entity, req.query.get("$select"))
    expand = parse_expand(entity, req.query.get("$expand"))
    token = req.query.get("$skiptoken")
    skip = 0
    if (s := req.query.get("$skip")) is not None and not token:
        if not s.isdigit():
            raise FOError(400, f"Invalid value '{s}' for $skip.")
        skip = int(s)
    if q.top is not None:
        q.top += skip
    try:
        # $skip drops rows from the first page only; later pages continue from the token (key-set paging).
        page = run_query(_rows(emu, req, entity), q, key="_rid", page_size=size + skip, token=token)
    except QueryError as exc:
        raise FOError(400, str(exc)) from None
    values = []
    for row in page.rows[skip:]:
        item = emu.render(entity, row, select)
        _expand(emu, row, item, expand)
        values.append(item)
    body: dict[str, Any] = {"@odata.context": context(req, entity, select), "value": values}
    if q.count:
        body["@odata.count"] = page.count
    if page.next_token:
        params = {k: v for k, v in req.query.items() if k not in ("$skiptoken", "$skip")}
        qs = urlencode({**params, "$skiptoken": page.next_token}, quote_via=lambda s, *_: quote(s, safe="$,'()"))
        body["@odata.nextLink"] = f"{req.base}/{entity.entity_set}?{qs}"
    return ApiResponse(200, headers(applied), body)
