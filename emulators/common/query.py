"""OData read options both emulators apply: `$filter`, `$select`, `$orderby`, `$top`, `$count` and
server-driven paging with an opaque continuation token.

Paging is key-set based (the token carries the sort values of the last row returned, as Dataverse's paging
cookie does), so rows inserted or changed while a client pages do not shift later pages.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from odata_query import ast

from shared.odata import ODataFilterError, evaluate_filter, filter_fields, parse_filter


class QueryError(ValueError):
    """A read option is malformed or names an unknown field (→ 400)."""


@dataclass
class Query:
    filter: Any = None
    orderby: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    top: int | None = None
    select: list[str] | None = None
    count: bool = False


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_token: str | None
    count: int | None


def parse_query(params: Mapping[str, str], known_fields: set[str]) -> Query:
    q = Query()
    if f := params.get("$filter"):
        try:
            q.filter = parse_filter(f)
            unknown = filter_fields(q.filter) - known_fields
        except ODataFilterError as exc:
            raise QueryError(str(exc)) from exc
        if unknown:
            raise QueryError(f"Could not find a property named '{sorted(unknown)[0]}' in $filter.")
    if s := params.get("$select"):
        q.select = [p.strip() for p in s.split(",") if p.strip()]
        if unknown := [p for p in q.select if p not in known_fields]:
            raise QueryError(f"Could not find a property named '{unknown[0]}' in $select.")
    if o := params.get("$orderby"):
        for part in o.split(","):
            bits = part.split()
            if not bits or len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
                raise QueryError(f"Invalid $orderby clause {part.strip()!r}.")
            if bits[0] not in known_fields:
                raise QueryError(f"Could not find a property named '{bits[0]}' in $orderby.")
            q.orderby.append((bits[0], len(bits) == 2 and bits[1].lower() == "desc"))
    if (t := params.get("$top")) is not None:
        if not t.isdigit():
            raise QueryError(f"Invalid value {t!r} for $top.")
        q.top = int(t)
    if (c := params.get("$count")) is not None:
        if c.lower() not in ("true", "false"):
            raise QueryError(f"Invalid value {c!r} for $count.")
        q.count = c.lower() == "true"
    return q


def sort_component(value: Any, descending: bool) -> Any:
    """One part of a sort key: nulls first (as SQL Server orders them), any type; inverted when descending.
    Every ordering the emulators do ($orderby, fetchXml `order`, `$apply` groups) builds its keys with it."""
    comp = (value is not None, value if value is not None else 0)
    return _Desc(comp) if descending else comp


class _Desc:
    """Inverts ordering for descending sort components."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Desc) -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.v == other.v


def _sort_values(row: Mapping[str, Any], orderby: list[tuple[str, bool]], key: str) -> list[Any]:
    return [row.get(f) for f, _ in orderby] + [row[key]]


def _sort_key(values: list[Any], orderby: list[tuple[str, bool]]) -> tuple[Any, ...]:
    desc = [d for _, d in orderby] + [False]
    return tuple(sort_component(v, d) for v, d in zip(values, desc, strict=True))


def run_query(rows: Iterable[dict[str, Any]], q: Query, *, key: str, page_size: int,
              token: str | None = None, case_insensitive: bool = True) -> Page:
    """Filter, order and cut one page. `token` is what a previous page returned as `next_token`."""
    if q.filter is not None and (conditions := _necessary(q.filter, case_insensitive)):
        rows = _narrow(rows, conditions, case_insensitive)
    try:
        matched = [r for r in rows if q.filter is None or evaluate_filter(q.filter, r,
                                                                            case_insensitive=case_insensitive)]
    except ODataFilterError as exc:
        raise QueryError(str(exc)) from exc
    total = len(matched) if q.count else None
    try:
        matched.sort(key=lambda r: _sort_key(_sort_values(r, q.orderby, key), q.orderby))
    except TypeError as exc:
        raise QueryError(f"cannot order by mixed types: {exc}") from exc
    remaining = q.top
    if token:
        last, remaining = _decode(token)
        last_key = _sort_key(last, q.orderby)
        matched = [r for r in matched if last_key < _sort_key(_sort_values(r, q.orderby, key), q.orderby)]
    limit = page_size if remaining is None else min(page_size, remaining)
    page = matched[:limit]
    left = None if remaining is None else remaining - len(page)
    more = len(matched) > len(page) and (left is None or left > 0)
    next_token = _encode(_sort_values(page[-1], q.orderby, key), left) if more and page else None
    return Page(page, next_token, total)


def _necessary(node: Any, ci: bool) -> dict[str, set[str]]:
    """For filters like `k eq 'a' or k eq 'b'` (also inside `and`, or as `k in (…)`): field → the text values
    of which a row must hold one to have any chance of matching; every entry is necessary on its own. Stands
    in for the services' key indexes, so a client that looks records up by key in chunks is not slowed by full
    scans here; rows are still checked against the whole filter afterwards. Every conjunct counts: a lookup by
    (company, number) narrows by the number too, as the alternate-key index of a tenant would."""
    def norm(lit: Any) -> str | None:
        if isinstance(lit, ast.GUID):
            return lit.val.lower()
        if isinstance(lit, ast.String):
            return lit.val.casefold() if ci else lit.val
        return None

    if isinstance(node, ast.Compare) and isinstance(node.left, ast.Identifier):
        if isinstance(node.comparator, ast.Eq) and (v := norm(node.right)) is not None:
            return {node.left.name: {v}}
        if isinstance(node.comparator, ast.In) and isinstance(node.right, ast.List):
            values = [norm(x) for x in node.right.val]
            if values and None not in values:
                return {node.left.name: set(values)}  # type: ignore[arg-type]
        return {}
    if isinstance(node, ast.BoolOp):
        left, right = _necessary(node.left, ci), _necessary(node.right, ci)
        if isinstance(node.op, ast.And):  # both hold: each side's conditions, intersected where they meet
            # (An empty set is a real answer: `k eq 'x' and k eq 'y'` matches nothing.)
            return {k: left[k] & right[k] if k in left and k in right else left[k] if k in left else right[k]
                    for k in left.keys() | right.keys()}
        return {k: left[k] | right[k] for k in left.keys() & right.keys()}  # one holds: only shared fields
    return {}


def _narrow(rows: Iterable[dict[str, Any]], conditions: dict[str, set[str]], ci: bool) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        for name, values in conditions.items():
            v = r.get(name)
            # Non-text values are left to the full evaluation (which also reports type errors as before).
            if isinstance(v, str) and (v.casefold() if ci else v) not in values and v.lower() not in values:
                break
        else:
            out.append(r)
    return out


def project(row: Mapping[str, Any], select: list[str] | None, always: Iterable[str] = ()) -> dict[str, Any]:
    """Apply `$select`; `always` names fields every response carries (keys, etags)."""
    if select is None:
        return dict(row)
    keep = set(select) | set(always)
    return {k: v for k, v in row.items() if k in keep}


def _encode(values: list[Any], remaining: int | None) -> str:
    raw = json.dumps({"k": values, "r": remaining}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> tuple[list[Any], int | None]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return list(data["k"]), data["r"]
    except (ValueError, KeyError, TypeError) as exc:
        raise QueryError("The skip token is not valid.") from exc
