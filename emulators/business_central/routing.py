"""Requests as the API handlers see them (one shape for single HTTP requests and `$batch` operations) and
the resource paths under `…/api/v2.0/`: the service document (the root itself), `$metadata`, `companies`,
`subscriptions`, company entity sets (`companies({id})/customers…`, or at the root with `company=<name>`, as
BC's `$batch` example addresses `items({id})` with a `Company` header) and a final `/$count` segment on any
collection."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emulators.business_central.errors import BCError, not_found
from emulators.business_central.schema import ENTITY_SETS, EntitySet
from emulators.common.identity import Client


@dataclass
class ApiRequest:
    method: str
    path: str  # relative to the API root, e.g. "companies(<id>)/customers"
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: Any
    client: Client
    base: str  # absolute API root, ending in "/api/v2.0/"
    in_transaction: bool = False  # inside an `Isolation: snapshot` batch (already holds the write lock)


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # JSON-serialisable, or text when `media_type` is set
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str | None = None  # e.g. "text/plain" for `/$count`, "application/xml" for `$metadata`


@dataclass
class Target:
    kind: str  # "service" | "metadata" | "companies" | "entity" | "subscriptions"
    company: str | None = None  # None for an entity set at the API root: the company comes from `company=`
    entity: EntitySet | None = None
    record_id: str | None = None
    parent: tuple[EntitySet, str] | None = None  # document lines reached through their header
    context: str = ""  # the path used in @odata.context, e.g. "companies(<id>)/customers"
    count: bool = False  # the path ends in `/$count`


_SEGMENT = re.compile(r"^([A-Za-z$]+)(?:\(([^()]*)\))?$")


def _key(raw: str, what: str) -> str:
    key = raw.strip()
    if key.startswith("id="):
        key = key[3:]
    key = key.strip("'")
    # Subscription ids are 32 hex digits without dashes (BC docs' example "c670ea73cacb459bb51dc1740da2f1db").
    if what == "subscriptions" and re.fullmatch(r"[0-9A-Fa-f]{32}", key):
        return key.lower()
    try:
        return str(uuid.UUID(key))
    except ValueError:
        raise BCError(400, "BadRequest", f"Bad Request - Error in query syntax: '{raw}' is not a valid key "
                                         f"for '{what}'.") from None


def _no_resource(path: str) -> BCError:
    return not_found(f"No HTTP resource was found that matches the request URI '{path}'.")


def parse_path(path: str) -> Target:
    """Resolve a path relative to the API root; unknown entity sets → 404 `BadRequest_NotFound`."""
    segments = [s for s in path.split("/") if s]
    if not segments:
        return Target("service")
    if segments == ["$metadata"]:
        return Target("metadata")
    count = segments[-1] == "$count"
    if count:
        segments = segments[:-1]
    parts = []
    for seg in segments:
        m = _SEGMENT.match(seg)
        if not m or m.group(1).startswith("$"):
            raise _no_resource(path)
        parts.append((m.group(1), m.group(2)))
    if not parts:
        raise _no_resource(path)
    target = _resolve(path, parts)
    if count:
        if target.record_id is not None or target.kind not in ("companies", "entity", "subscriptions"):
            # Unconfirmed wording (odata.net's rule: $count only follows a collection).
            raise BCError(400, "BadRequest", f"The request URI '{path}' is not valid: $count can only follow an "
                                             "entity set or a collection navigation property.")
        target.count = True
    return target


def _resolve(path: str, parts: list[tuple[str, str | None]]) -> Target:
    (name, key), rest = parts[0], parts[1:]
    if name == "subscriptions" and not rest:
        rid = _key(key, "subscriptions") if key is not None else None
        return Target("subscriptions", record_id=rid, context="subscriptions")
    if name in ENTITY_SETS:  # at the API root: the company comes from `company=` or the Company header
        return _entity(path, None, parts, "")
    if name != "companies":
        raise _no_resource(path)
    company = _key(key, "companies") if key is not None else None
    if not rest:
        return Target("companies", company=company, record_id=company, context="companies")
    if company is None:
        raise _no_resource(path)
    return _entity(path, company, rest, f"companies({company})/")


def _entity(path: str, company: str | None, parts: list[tuple[str, str | None]], prefix: str) -> Target:
    """`customers`, `customers(<id>)`, `salesOrders(<id>)/salesOrderLines[(<id>)]` under `prefix`."""
    if len(parts) > 2:
        raise _no_resource(path)
    (set_name, set_key) = parts[0]
    entity = ENTITY_SETS.get(set_name)
    if entity is None:
        raise _no_resource(path)
    rid = _key(set_key, set_name) if set_key is not None else None
    if len(parts) == 1:
        return Target("entity", company, entity, rid, context=f"{prefix}{set_name}")
    line_name, line_key = parts[1]
    if rid is None or entity.lines != line_name:
        raise _no_resource(path)
    lines = ENTITY_SETS[line_name]
    line_id = _key(line_key, line_name) if line_key is not None else None
    return Target("entity", company, lines, line_id, parent=(entity, rid),
                  context=f"{prefix}{set_name}({rid})/{line_name}")
