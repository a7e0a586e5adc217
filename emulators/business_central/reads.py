"""GET on an entity set: `$filter`, `$select`, `$orderby`, `$top`, `$skip`, `$count`, `$expand` of document
lines, and server-driven paging (`Prefer: odata.maxpagesize=N` → `@odata.nextLink` with `$skiptoken`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from emulators.business_central.errors import BCError, bad_request
from emulators.business_central.routing import ApiRequest, ApiResponse
from emulators.business_central.schema import ENTITY_SETS, EntitySet
from emulators.business_central.state import COMPANY, Environment
from emulators.common.query import Query, QueryError, parse_query, project, run_query

_SUPPORTED = {"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand", "$skiptoken"}
_SAFE = "$(),'"
_MAXPAGESIZE = re.compile(r"odata\.maxpagesize\s*=\s*([^\s,;]+)", re.IGNORECASE)


def page_size(env: Environment, headers: Mapping[str, str]) -> int | None:
    """The page size asked for with `Prefer: odata.maxpagesize=N`, or None. Above the server cap → 413."""
    m = _MAXPAGESIZE.search(headers.get("prefer", ""))
    if not m:
        return None
    if not m.group(1).isdigit() or int(m.group(1)) < 1:
        raise bad_request(f"The value '{m.group(1)}' of the odata.maxpagesize preference is not valid.")
    size = int(m.group(1))
    if size > env.settings.max_page_size:
        # Code unconfirmed; status 413 as the issue and PROTOCOLS.md §3 (max 20 000) describe.
        raise BCError(413, "Request_EntityTooLarge",
                      f"The requested page size {size} exceeds the maximum page size "
                      f"{env.settings.max_page_size}.")
    return size


def read_options(entity: EntitySet, params: Mapping[str, str]) -> tuple[Query, list[str]]:
    unknown = [k for k in params if k.startswith("$") and k not in _SUPPORTED]
    if unknown:
        raise bad_request(f"The query parameter '{unknown[0]}' is not supported.")
    try:
        q = parse_query(params, set(entity.fields))
    except QueryError as exc:
        raise bad_request(str(exc)) from exc
    expand = [e.strip() for e in params.get("$expand", "").split(",") if e.strip()]
    for name in expand:
        if name != entity.lines:
            raise bad_request(f"Could not find a property named '{name}' on type "
                              f"'Microsoft.NAV.{entity.type_name}'.")
    return q, expand


def shape(env: Environment, entity: EntitySet, row: dict[str, Any], q: Query, expand: list[str],
          company: str) -> dict[str, Any]:
    out = project(env.render(row), q.select, always=("@odata.etag",))
    for name in expand:
        out[name] = [env.render(r) for r in env.rows(name, company) if r.get("documentId") == row["id"]]
    return out


def read_collection(env: Environment, req: ApiRequest, entity: EntitySet, company: str,
                    rows: Iterable[dict[str, Any]], context: str, key: str = "id") -> ApiResponse:
    q, expand = read_options(entity, req.query)
    asked = page_size(env, req.headers)
    token = req.query.get("$skiptoken")
    size = asked or env.settings.max_page_size
    inner = None
    if token:
        inner, _, carried = token.rpartition(".")
        if not inner or not carried.isdigit():
            raise bad_request("The skip token is not valid.")
        size = asked or int(carried)
    skip = req.query.get("$skip")
    if skip is not None and not skip.isdigit():
        raise bad_request(f"Invalid value '{skip}' for $skip.")
    rows = list(rows)
    if skip and not token:
        # $skip applies before paging; emulate by filtering and ordering first, then cutting.
        try:
            ordered = run_query(rows, Query(filter=q.filter, orderby=q.orderby), key=key, page_size=len(rows) or 1)
        except QueryError as exc:
            raise bad_request(str(exc)) from exc
        q = Query(filter=None, orderby=q.orderby, top=q.top, select=q.select, count=q.count)
        rows = ordered.rows[int(skip):]
    try:
        page = run_query(rows, q, key=key, page_size=size, token=inner)
    except QueryError as exc:
        raise bad_request(str(exc)) from exc
    body: dict[str, Any] = {"@odata.context": f"{req.base}$metadata#{context}"}
    if q.count:
        body["@odata.count"] = page.count
    body["value"] = [shape(env, entity, r, q, expand, company) for r in page.rows]
    if page.next_token:
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        params["$skiptoken"] = f"{page.next_token}.{size}"
        body["@odata.nextLink"] = f"{req.base}{context}?{urlencode(params, quote_via=quote, safe=_SAFE)}"
    headers = {"Preference-Applied": f"odata.maxpagesize={asked}"} if asked else {}
    return ApiResponse(200, body, headers)


def company_rows(env: Environment, entity: str, company: str) -> list[dict[str, Any]]:
    cid = company.lower()
    return [r for r in env.store.table(entity).all() if r.get(COMPANY) == cid]


__all__ = ["ENTITY_SETS", "company_rows", "page_size", "read_collection", "read_options", "shape"]
