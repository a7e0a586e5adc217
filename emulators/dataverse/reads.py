"""Reads: one record, entity sets and filtered collections (`accounts(<id>)/contact_customer_accounts`) with
`$select/$filter/$orderby/$top/$count/$expand`, parameter aliases, server-driven paging (`Prefer:
odata.maxpagesize`, opaque `$skiptoken` in an absolute `@odata.nextLink`), change tracking (`Prefer:
odata.track-changes` → `@odata.deltaLink`; delta.py), `fetchXml` (fetchxml.py), `$apply` (aggregate.py) and
the annotations `Prefer: odata.include-annotations` asks for (annotations.py). Query options are checked first
(options.py): what the service refuses is refused, nothing is silently ignored.

`@odata.count` stops at 5,000 (Microsoft Learn, "Count rows using OData"). Selecting a money column also returns
`_transactioncurrencyid_value` ("Select columns using OData")."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from emulators.common.query import QueryError, parse_query, run_query
from emulators.dataverse import aggregate, annotations, delta, expand, fetchxml, options
from emulators.dataverse.annotations import COUNT_LIMIT, MORE_RECORDS, PAGING_COOKIE, Annotations, Formatter
from emulators.dataverse.errors import BAD_PROPERTY, QUERY_SYNTAX, DataverseError, not_found
from emulators.dataverse.keys import key_not_found, split_path
from emulators.dataverse.payload import LOGICAL_ANNOTATION
from emulators.dataverse.relationships import collection_valued, single_valued
from emulators.dataverse.schema import TableDef

if TYPE_CHECKING:
    from emulators.dataverse.api import ApiRequest, ApiResponse
    from emulators.dataverse.core import Emulator

JSON_TYPE = "application/json; odata.metadata=minimal"
NOT_FOUND_SEGMENT = "0x8006088a"


def wants_annotations(prefs: dict[str, str | None]) -> Annotations | None:
    """The annotations the request asked for (None without `Prefer: odata.include-annotations`)."""
    return annotations.requested(prefs)


def select_of(req: ApiRequest, table: TableDef, query: Mapping[str, str] | None = None) -> list[str] | None:
    sel = (req.query if query is None else query).get("$select")
    if not sel:
        return None
    names = [p.strip() for p in sel.split(",") if p.strip()]
    for name in names:
        if name not in table.fields:
            raise DataverseError(400, BAD_PROPERTY, f"Could not find a property named '{name}' on type "
                                 f"'Microsoft.Dynamics.CRM.{table.logical}'.")
    return names


def context(req: ApiRequest, table: TableDef, select: list[str] | None, suffix: str = "",
            expansions: list[expand.Expansion] | None = None) -> str:
    columns = [*(select or []), *expand.context(expansions or [])]
    cols = f"({','.join(columns)})" if columns else ""
    return f"{req.base}/$metadata#{table.entity_set}{cols}{suffix}"


def _headers(applied: list[str]) -> dict[str, str]:
    headers = {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
    if applied:
        headers["Preference-Applied"] = ",".join(applied)
    return headers


def _missing(table: TableDef, parsed: str | dict[str, Any]) -> DataverseError:
    return not_found(table.logical, parsed) if isinstance(parsed, str) else key_not_found(table)


def _expansions(emu: Emulator, query: Mapping[str, str], table: TableDef) -> list[expand.Expansion]:
    text = query.get("$expand")
    return expand.parse(text, table, emu.logical) if text else []


def _response(status: int, applied: list[str], body: Any) -> ApiResponse:
    from emulators.dataverse.api import ApiResponse

    return ApiResponse(status, _headers(applied), body)


class _Rows:
    """Renders the rows of one response: columns, expansions, annotations (one formatter and index per request)."""

    def __init__(self, emu: Emulator, req: ApiRequest, table: TableDef, select: list[str] | None,
                 items: list[expand.Expansion], ann: Annotations | None, *, links: bool,
                 page_size: int | None = None) -> None:
        self.emu, self.table, self.select = emu, table, select
        self.fmt = Formatter(emu, ann) if ann else None
        self.extra = (*expand.currency_column(table, select), *expand.extra_fields(items))
        self.expander = expand.Expander(emu, req.base, items, self.fmt, links=links, page_size=page_size,
                                        skiptoken=lambda token: _encode_skiptoken({"p": token})) if items else None

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
        out = self.emu.render(self.table, row, self.select, self.fmt is not None, self.fmt, self.extra)
        return self.expander.expand(self.table, row, out) if self.expander else out


def read_one(emu: Emulator, req: ApiRequest, table: TableDef, key: str,
             prefs: dict[str, str | None]) -> ApiResponse:
    from emulators.dataverse.api import ApiResponse

    options.check_single(req.query)
    row, parsed = emu.locate(table, key)
    if row is None:
        raise _missing(table, parsed)
    select = select_of(req, table)
    items = _expansions(emu, req.query, table)
    etag = emu.etag(row)
    if req.headers.get("if-none-match", "").strip() == etag:
        return ApiResponse(304, {"ETag": etag, "OData-Version": "4.0"})
    ann = wants_annotations(prefs)
    rows = _Rows(emu, req, table, select, items, ann, links=False)
    body = {"@odata.context": context(req, table, select, "/$entity", items), **rows.render(row)}
    headers = _headers(annotations.applied(ann))
    headers["ETag"] = etag
    return ApiResponse(200, headers, body)


def page_size(emu: Emulator, prefs: dict[str, str | None]) -> tuple[int, list[str]]:
    raw = prefs.get("odata.maxpagesize")
    if raw is None:
        return emu.settings.max_page_size, []
    if not raw.isdigit() or int(raw) < 1:
        raise DataverseError(400, QUERY_SYNTAX, f"Invalid value '{raw}' for the odata.maxpagesize preference.")
    size = min(int(raw), emu.settings.max_page_size)  # Dataverse never pages above 5000 rows
    return size, [f"odata.maxpagesize={size}"]


def read_collection(emu: Emulator, req: ApiRequest, table: TableDef, prefs: dict[str, str | None]) -> ApiResponse:
    query = options.check_collection(req.query)
    track = "odata.track-changes" in prefs
    if track or "$deltatoken" in query:
        delta.reject_query_options(query)
        delta.check_tracked(emu, table)
    ann = wants_annotations(prefs)
    if "fetchXml" in query:
        return _fetch(emu, req, table, query, ann)
    if "$apply" in query:
        return _apply(emu, req, table, query, ann)
    size, applied = page_size(emu, prefs)
    applied += annotations.applied(ann)
    if "$deltatoken" in query:
        body = delta.read_changes(emu, req, table, size, ann)
        return _response(200, applied, body)
    rows = emu.store.table(table.entity_set).all()
    paged = size if "odata.maxpagesize" in prefs else None
    body = _page(emu, req, table, query, rows, size, ann, track=track, path=table.entity_set, paged=paged)
    if track:
        applied.append("odata.track-changes")
    return _response(200, applied, body)


def _page(emu: Emulator, req: ApiRequest, table: TableDef, query: Mapping[str, str], rows: Any, size: int,
          ann: Annotations | None, *, track: bool, path: str, paged: int | None) -> dict[str, Any]:
    """One page of a collection (an entity set or a filtered collection)."""
    select = select_of(req, table, query)
    try:
        q = parse_query(query, table.fields)
    except QueryError as exc:
        code = BAD_PROPERTY if "property" in str(exc) else QUERY_SYNTAX
        raise DataverseError(400, code, str(exc)) from None
    items = _expansions(emu, query, table)
    state = _decode_skiptoken(query.get("$skiptoken"))
    seq = state.get("s", emu.store.current_seq()) if track else None
    try:
        page = run_query(rows, q, key=table.key, page_size=size, token=state.get("p"))
    except QueryError as exc:
        raise DataverseError(400, QUERY_SYNTAX, str(exc)) from None
    render = _Rows(emu, req, table, select, items, ann, links=True, page_size=paged).render
    body: dict[str, Any] = {"@odata.context": context(req, table, select, "", items)}
    if q.count:
        body["@odata.count"] = min(page.count or 0, COUNT_LIMIT)
    body.update(annotations.collection_counts(ann, page.count if q.count else None, page.count or 0))
    body["value"] = [render(r) for r in page.rows]
    if page.next_token:
        token = _encode_skiptoken({"p": page.next_token, **({"s": seq} if track else {})})
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        body["@odata.nextLink"] = f"{req.base}/{path}?{_qs({**params, '$skiptoken': token})}"
    elif track:
        body["@odata.deltaLink"] = delta.delta_link(req, table, select, seq or 0)
    return body


def _fetch(emu: Emulator, req: ApiRequest, table: TableDef, query: Mapping[str, str],
           ann: Annotations | None) -> ApiResponse:
    """`?fetchXml=…` (fetchxml.py). `Prefer: odata.maxpagesize` does not apply: the fetch's count pages."""
    fetch = fetchxml.parse(query["fetchXml"], table, emu.logical, req.actor.user_id)
    count = query.get("$count")
    if count is not None and count.lower() not in ("true", "false"):
        raise DataverseError(400, QUERY_SYNTAX, f"Invalid value {count!r} for $count.")
    fmt = Formatter(emu, ann or annotations.parse(""))  # also orders lookups by name
    result = fetchxml.run(fetch, list(emu.store.table(table.entity_set).all()), fmt)
    counting = fetch.total or (count or "").lower() == "true"
    columns = fetchxml.context_columns(fetch)
    body: dict[str, Any] = {"@odata.context": f"{req.base}/$metadata#{table.entity_set}"
                                              + (f"({','.join(columns)})" if columns else "")}
    if counting:
        body["@odata.count"] = min(result.total, COUNT_LIMIT)
    body.update(annotations.collection_counts(ann, result.total if counting else None, result.total))
    if ann and result.more:
        if result.cookie and ann.wants(PAGING_COOKIE):
            body["@" + PAGING_COOKIE] = result.cookie
        if ann.wants(MORE_RECORDS):
            body["@" + MORE_RECORDS] = True
    body["value"] = [fmt.annotate(table, r, fetchxml.project(fetch, r, emu.etag(r))) for r in result.rows]
    return _response(200, annotations.applied(ann), body)


def _apply(emu: Emulator, req: ApiRequest, table: TableDef, query: Mapping[str, str],
           ann: Annotations | None) -> ApiResponse:
    spec = aggregate.parse(query["$apply"], table)
    results = aggregate.run(spec, table, list(emu.store.table(table.entity_set).all()), query.get("$orderby"),
                            query.get("$top"))
    fmt = Formatter(emu, ann) if ann else None
    values = [aggregate.annotate(spec, table, out, src, fmt) if fmt else out for out, src in results]
    body = {"@odata.context": f"{req.base}/$metadata#{table.entity_set}", "value": values}
    return _response(200, annotations.applied(ann), body)


# ----- filtered collections and related records: `accounts(<id>)/<navigation property or column>`

def related_path(emu: Emulator, path: str) -> tuple[TableDef, str, str] | None:
    """(table, key, rest) for `accounts(<key>)/<rest>`; None for paths this module does not read."""
    head, slash, rest = path.partition("/")
    if not slash or "(" not in head:
        return None
    try:
        set_name, key = split_path(head)
    except DataverseError:
        return None
    table = emu.tables.get(set_name)
    if table is None or key is None:
        return None
    return table, key, rest


def read_related(emu: Emulator, req: ApiRequest, target: tuple[TableDef, str, str],
                 prefs: dict[str, str | None]) -> ApiResponse:
    """Microsoft Learn, "Query data" → "Filtered collections"; "Retrieve a table row" → "Retrieve navigation
    property values", "Retrieve a single property value". Unknown segments (and `/$ref`, `/$count`, deeper
    paths) → 404 "Resource not found for the segment …" as for any unknown resource."""
    from emulators.dataverse.api import ApiResponse

    table, key, rest = target
    nav = rest.strip("/")
    single, many = single_valued(table.logical), collection_valued(table.logical)
    if nav not in single and nav not in many and nav not in table.fields:
        raise DataverseError(404, NOT_FOUND_SEGMENT, f"Resource not found for the segment '{nav.split('/')[0]}'.")
    row, parsed = emu.locate(table, key)
    if row is None:
        raise _missing(table, parsed)
    ann = wants_annotations(prefs)
    if nav in many:
        rel = many[nav]
        related = emu.logical[rel.referencing]
        query = options.check_collection(req.query)
        if "odata.track-changes" in prefs or {"$deltatoken", "fetchXml", "$apply"} & set(query):
            bad = next(iter(sorted({"$deltatoken", "fetchXml", "$apply"} & set(query))), "odata.track-changes")
            raise options.unsupported(bad)  # (unconfirmed) only OData options apply to a filtered collection
        lookup = f"_{rel.attribute}_value"
        rows = [r for r in emu.store.table(related.entity_set).all()
                if r.get(lookup) == row[table.key] and r.get(lookup + LOGICAL_ANNOTATION) in (None, table.logical)]
        size, applied = page_size(emu, prefs)
        paged = size if "odata.maxpagesize" in prefs else None
        body = _page(emu, req, related, query, rows, size, ann, track=False, path=req.path, paged=paged)
        return _response(200, applied + annotations.applied(ann), body)
    options.check_single(req.query)
    if nav in single:
        rel = single[nav]
        related = emu.logical[rel.referenced]
        rid = row.get(f"_{rel.attribute}_value")
        pointed = row.get(f"_{rel.attribute}_value{LOGICAL_ANNOTATION}")
        found = emu.store.table(related.entity_set).find(rid) if rid and pointed in (None, related.logical) else None
        if found is None:
            return ApiResponse(204, {"OData-Version": "4.0"})  # OData: a null single-valued navigation (unconfirmed)
        select = select_of(req, related)
        items = _expansions(emu, req.query, related)
        rows = _Rows(emu, req, related, select, items, ann, links=False)
        body = {"@odata.context": context(req, related, select, "/$entity", items), **rows.render(found)}
        return _response(200, annotations.applied(ann), body)
    if req.query:
        raise options.unsupported(next(iter(req.query)))  # (unconfirmed) a property value takes no options
    value = row.get(nav)
    if value is None:
        return ApiResponse(204, {"OData-Version": "4.0"})
    body = {"@odata.context": f"{req.base}/$metadata#{table.entity_set}({row[table.key]})/{nav}", "value": value}
    return _response(200, [], body)


def _qs(params: dict[str, str]) -> str:
    # Keep OData syntax readable (`$expand=primarycontactid($select=fullname)`), as the service's links do.
    return urlencode(params, quote_via=lambda s, *_: quote(s, safe="$,'()=;/@"))


def _encode_skiptoken(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_skiptoken(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(state, dict):
            raise ValueError(token)
        return state
    except ValueError:
        raise DataverseError(400, QUERY_SYNTAX, "The $skiptoken value is not valid.") from None

