"""Reads: one record, collections with `$select/$filter/$orderby/$top/$count`, server-driven paging
(`Prefer: odata.maxpagesize`, opaque `$skiptoken` in an absolute `@odata.nextLink`) and change tracking
(`Prefer: odata.track-changes` → `@odata.deltaLink`; see delta.py)."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from emulators.common.query import QueryError, parse_query, run_query
from emulators.dataverse import delta
from emulators.dataverse.errors import BAD_PROPERTY, QUERY_SYNTAX, DataverseError
from emulators.dataverse.schema import TableDef

if TYPE_CHECKING:
    from emulators.dataverse.api import ApiRequest, ApiResponse
    from emulators.dataverse.core import Emulator

JSON_TYPE = "application/json; odata.metadata=minimal"
_UNSUPPORTED = {"$skip": "The query parameter $skip is not supported",
                "$expand": "The emulator does not support $expand",
                "$apply": "The emulator does not support $apply",
                "$search": "The emulator does not support $search"}


def wants_annotations(prefs: dict[str, str | None]) -> bool:
    return "odata.include-annotations" in prefs


def select_of(req: ApiRequest, table: TableDef) -> list[str] | None:
    sel = req.query.get("$select")
    if not sel:
        return None
    names = [p.strip() for p in sel.split(",") if p.strip()]
    for name in names:
        if name not in table.fields:
            raise DataverseError(400, BAD_PROPERTY, f"Could not find a property named '{name}' on type "
                                 f"'Microsoft.Dynamics.CRM.{table.logical}'.")
    return names


def context(req: ApiRequest, table: TableDef, select: list[str] | None, suffix: str = "") -> str:
    cols = f"({','.join(select)})" if select else ""
    return f"{req.base}/$metadata#{table.entity_set}{cols}{suffix}"


def _headers(applied: list[str]) -> dict[str, str]:
    headers = {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
    if applied:
        headers["Preference-Applied"] = ",".join(applied)
    return headers


def read_one(emu: Emulator, req: ApiRequest, table: TableDef, key: str,
             prefs: dict[str, str | None]) -> ApiResponse:
    from emulators.dataverse.api import ApiResponse, _missing

    row, parsed = emu.locate(table, key)
    if row is None:
        raise _missing(table, parsed)
    select = select_of(req, table)
    etag = emu.etag(row)
    if req.headers.get("if-none-match", "").strip() == etag:
        return ApiResponse(304, {"ETag": etag, "OData-Version": "4.0"})
    annotate = wants_annotations(prefs)
    body = {"@odata.context": context(req, table, select, "/$entity"), **emu.render(table, row, select, annotate)}
    headers = _headers(['odata.include-annotations="*"'] if annotate else [])
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
    from emulators.dataverse.api import ApiResponse

    for name, message in _UNSUPPORTED.items():
        if name in req.query:
            raise DataverseError(400, BAD_PROPERTY, message)
    track = "odata.track-changes" in prefs
    if track or "$deltatoken" in req.query:
        delta.reject_query_options(req)
        delta.check_tracked(emu, table)
    size, applied = page_size(emu, prefs)
    if wants_annotations(prefs):
        applied.append('odata.include-annotations="*"')
    if "$deltatoken" in req.query:
        body = delta.read_changes(emu, req, table, size, wants_annotations(prefs))
        return ApiResponse(200, _headers(applied), body)
    try:
        q = parse_query(req.query, table.fields)
    except QueryError as exc:
        code = BAD_PROPERTY if "property" in str(exc) else QUERY_SYNTAX
        raise DataverseError(400, code, str(exc)) from None
    select = select_of(req, table)
    state = _decode_skiptoken(req.query.get("$skiptoken"))
    seq = state.get("s", emu.store.current_seq()) if track else None
    try:
        page = run_query(emu.store.table(table.entity_set).all(), q, key=table.key, page_size=size,
                         token=state.get("p"))
    except QueryError as exc:
        raise DataverseError(400, QUERY_SYNTAX, str(exc)) from None
    annotate = wants_annotations(prefs)
    body: dict[str, Any] = {"@odata.context": context(req, table, select),
                            "value": [emu.render(table, r, select, annotate) for r in page.rows]}
    if q.count:
        body["@odata.count"] = page.count
    if page.next_token:
        token = _encode_skiptoken({"p": page.next_token, **({"s": seq} if track else {})})
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        body["@odata.nextLink"] = f"{req.base}/{table.entity_set}?{_qs({**params, '$skiptoken': token})}"
    elif track:
        body["@odata.deltaLink"] = delta.delta_link(req, table, select, seq or 0)
    if track:
        applied.append("odata.track-changes")
    return ApiResponse(200, _headers(applied), body)


def _qs(params: dict[str, str]) -> str:
    # Keep `$` and `,` readable, as the service's links do.
    return urlencode(params, quote_via=lambda s, *_: quote(s, safe="$,'()"))


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
