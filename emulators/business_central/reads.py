"""GET on an entity set: `$filter`, `$select`, `$orderby`, `$top`, `$skip`, `$count`, `$expand` of every
declared navigation property, server-driven paging (`Prefer: odata.maxpagesize=N` → `@odata.nextLink` with
`$skiptoken`) and the `/$count` segment (OData: the number of items after `$filter`, as `text/plain`)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from emulators.business_central.enums import bind_filter
from emulators.business_central.errors import BCError, bad_request
from emulators.business_central.options import COLLECTION, COUNT, check_options, parse_expand
from emulators.business_central.routing import ApiRequest, ApiResponse
from emulators.business_central.schema import EMPTY_GUID, ENTITY_SETS, SERVED, EntitySet, Nav
from emulators.business_central.state import COMPANY, Environment
from emulators.common.query import Page, Query, QueryError, parse_query, project, run_query

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


def read_options(entity: EntitySet, params: Mapping[str, str], allowed: frozenset[str],
                 context: str = "single") -> tuple[Query, list[Nav]]:
    """The parsed options of a request; options `allowed` does not hold are refused (see options.py)."""
    check_options(params, allowed, context=context)
    if "*" in (p.strip() for p in params.get("$select", "").split(",")):
        params = {k: v for k, v in params.items() if k != "$select"}  # `$select=*`: every structural property
    try:
        q = parse_query(params, set(entity.fields))
    except QueryError as exc:
        raise bad_request(str(exc)) from exc
    if q.filter is not None:
        q.filter = bind_filter(entity, q.filter)  # enum literals: BC's member names, compared as stored
    return q, parse_expand(entity, params.get("$expand"))


class Expander:
    """Fills the expanded navigation properties of the rows of one response. Rows are raw store rows, so
    single-valued targets are found by key (in the row's company) and collection targets through an index
    built once per response."""

    def __init__(self, env: Environment, navs: list[Nav]) -> None:
        self.env = env
        self.navs = navs
        self._indexes: dict[str, dict[Any, list[dict[str, Any]]]] = {}

    def fill(self, row: dict[str, Any], out: dict[str, Any]) -> None:
        for nav in self.navs:
            out[nav.name] = self._many(nav, row) if nav.many else self._one(nav, row)

    def _one(self, nav: Nav, row: dict[str, Any]) -> dict[str, Any] | None:
        ref = row.get(nav.via)
        if not ref or ref == EMPTY_GUID:
            return None  # BC answers null for an empty reference
        found = self.env.store.table(nav.target).find(ref)
        if found is None or found.get(COMPANY) != row.get(COMPANY):
            return None
        return self.env.render(found, SERVED[nav.target])

    def _many(self, nav: Nav, row: dict[str, Any]) -> list[dict[str, Any]]:
        index = self._indexes.get(nav.name)
        if index is None:
            index = self._indexes[nav.name] = defaultdict(list)
            for r in self.env.store.table(nav.target).all():
                index[_owner(nav, r)].append(r)
        key = row["id"].lower() if nav.via == COMPANY else (row.get(COMPANY), row["id"])
        target = SERVED[nav.target]
        return [self.env.render(r, target) for r in index.get(key, ())]


def _owner(nav: Nav, row: dict[str, Any]) -> Any:
    return row.get(COMPANY) if nav.via == COMPANY else (row.get(COMPANY), row.get(nav.via))


def shape(env: Environment, entity: EntitySet, row: dict[str, Any], q: Query,
          expander: Expander | None = None) -> dict[str, Any]:
    out = project(env.render(row, entity), q.select, always=("@odata.etag",))
    if expander is not None:
        expander.fill(row, out)
    return out


def _skip(params: Mapping[str, str]) -> int:
    skip = params.get("$skip")
    if skip is not None and not skip.isdigit():
        raise bad_request(f"Invalid value '{skip}' for $skip.")
    return int(skip or 0)


def _run(rows: Iterable[dict[str, Any]], q: Query, **kwargs: Any) -> Page:
    try:
        return run_query(rows, q, **kwargs)
    except QueryError as exc:
        raise bad_request(str(exc)) from exc


def read_collection(env: Environment, req: ApiRequest, entity: EntitySet, rows: Iterable[dict[str, Any]],
                    context: str) -> ApiResponse:
    q, navs = read_options(entity, req.query, COLLECTION, "a collection")
    asked = page_size(env, req.headers)
    token = req.query.get("$skiptoken")
    size = asked or env.settings.max_page_size
    inner = None
    if token:
        inner, _, carried = token.rpartition(".")
        if not inner or not carried.isdigit():
            raise bad_request("The skip token is not valid.")
        size = asked or int(carried)
    skip = _skip(req.query)
    total = None
    if skip and not token:
        # $skip applies before paging: filter and order everything, then cut. @odata.count stays the number
        # of matching items ($count is not affected by $top and $skip).
        rows = list(rows)
        ordered = _run(rows, Query(filter=q.filter, orderby=q.orderby, count=q.count), key=entity.key,
                       page_size=len(rows) or 1)
        total = ordered.count
        q = Query(filter=None, orderby=q.orderby, top=q.top, select=q.select, count=q.count)
        rows = ordered.rows[skip:]
    page = _run(rows, q, key=entity.key, page_size=size, token=inner)
    body: dict[str, Any] = {"@odata.context": f"{req.base}$metadata#{context}"}
    if q.count:
        body["@odata.count"] = page.count if total is None else total
    expander = Expander(env, navs) if navs else None
    body["value"] = [shape(env, entity, r, q, expander) for r in page.rows]
    if page.next_token:
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        params["$skiptoken"] = f"{page.next_token}.{size}"
        body["@odata.nextLink"] = f"{req.base}{context}?{urlencode(params, quote_via=quote, safe=_SAFE)}"
    headers = {"Preference-Applied": f"odata.maxpagesize={asked}"} if asked else {}
    return ApiResponse(200, body, headers)


def count_collection(req: ApiRequest, entity: EntitySet, rows: Iterable[dict[str, Any]]) -> ApiResponse:
    """`…/$count`: the number of items matching `$filter`, as a plain-text integer (OData v4 URL conventions,
    "Addressing the Count of a Collection")."""
    q, _ = read_options(entity, req.query, COUNT, "a $count request")
    _skip(req.query)  # validated; like $top and $orderby it does not change the count
    n = _run(rows, Query(filter=q.filter, count=True), key=entity.key, page_size=1).count
    return ApiResponse(200, str(n), media_type="text/plain")


def company_rows(env: Environment, entity: str, company: str) -> list[dict[str, Any]]:
    cid = company.lower()
    return [r for r in env.store.table(entity).all() if r.get(COMPANY) == cid]


__all__ = ["ENTITY_SETS", "Expander", "company_rows", "count_collection", "page_size",
           "read_collection", "read_options", "shape"]
