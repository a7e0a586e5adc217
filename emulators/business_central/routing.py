"""Requests as the API handlers see them (one shape for single HTTP requests and `$batch` operations) and
the resource paths under `…/api/v2.0/`."""

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
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    kind: str  # "companies" | "entity" | "subscriptions"
    company: str | None = None
    entity: EntitySet | None = None
    record_id: str | None = None
    parent: tuple[EntitySet, str] | None = None  # document lines reached through their header
    context: str = ""  # the path used in @odata.context, e.g. "companies(<id>)/customers"


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


def parse_path(path: str) -> Target:
    """Resolve a path relative to the API root; unknown entity sets → 404 `BadRequest_NotFound`."""
    parts = []
    for seg in [s for s in path.split("/") if s]:
        m = _SEGMENT.match(seg)
        if not m:
            raise not_found(f"No HTTP resource was found that matches the request URI '{path}'.")
        parts.append((m.group(1), m.group(2)))
    if not parts:
        raise not_found("No HTTP resource was found that matches the request URI ''.")
    (name, key), rest = parts[0], parts[1:]
    if name == "subscriptions" and not rest:
        rid = _key(key, "subscriptions") if key is not None else None
        return Target("subscriptions", record_id=rid, context="subscriptions")
    if name != "companies":
        raise not_found(f"No HTTP resource was found that matches the request URI '{path}'.")
    company = _key(key, "companies") if key is not None else None
    if not rest:
        return Target("companies", company=company, record_id=company, context="companies")
    if company is None or len(rest) > 2:
        raise not_found(f"No HTTP resource was found that matches the request URI '{path}'.")
    ctx = f"companies({company})"
    (set_name, set_key) = rest[0]
    entity = ENTITY_SETS.get(set_name)
    if entity is None:
        raise not_found(f"No HTTP resource was found that matches the request URI '{path}'.")
    rid = _key(set_key, set_name) if set_key is not None else None
    if len(rest) == 1:
        return Target("entity", company, entity, rid, context=f"{ctx}/{set_name}")
    line_name, line_key = rest[1]
    if rid is None or entity.lines != line_name:
        raise not_found(f"No HTTP resource was found that matches the request URI '{path}'.")
    lines = ENTITY_SETS[line_name]
    line_id = _key(line_key, line_name) if line_key is not None else None
    return Target("entity", company, lines, line_id, parent=(entity, rid),
                  context=f"{ctx}/{set_name}({rid})/{line_name}")
