"""Finance and Operations data events (PROTOCOLS.md §5): the endpoint's secret and the JSON body F&O posts for
each Create / Update / Delete of an activated data entity.

The body is RemoteExecutionContext-shaped with business-event envelope fields: `MessageName`, the entity
(`EntitySetName` / `PrimaryEntityName`), the record in `InputParameters` → `Target` → `Attributes`, the legal
entity (`BusinessEventLegalEntity`), the writer (`InitiatingUserAADObjectId`) and `ControlNumber`, which
increases with gaps: it is the notice's marker, so a re-delivered event gets the same queue message id and
Service Bus drops it. The record id is built from the Target's key properties exactly as the connector builds
it (`odata.key_predicate`), so the processor reads the same record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from shared.connectors.base import ConnectorError
from shared.connectors.odata import key_predicate
from shared.mapping import System
from shared.notices.business_central import same_secret
from shared.notices.limits import MAX_DEPTH, load_json
from shared.notices.model import Change, ChangeNotice, NoticeError
from shared.settings import WebhookSettings

_CHANGES = {"create": Change.CREATED, "update": Change.UPDATED, "delete": Change.DELETED}
MAX_ATTRIBUTES = 2000


def authenticated(headers: Mapping[str, str], params: Mapping[str, str], settings: WebhookSettings,
                  key: str) -> bool:
    """True when the request carries the endpoint's secret as `?code=` (the URL F&O keeps in Key Vault) or in
    the configured header. Both candidates are compared in constant time."""
    results = [same_secret(c, key) for c in (params.get("code"), headers.get(settings.fo_header.lower()))]
    return any(results)


def parse_event(body: bytes, *, entity: str, public_name: str | None, key_fields: Sequence[str],
                companies: Collection[str] | None, seen_at: dt.datetime, max_depth: int = MAX_DEPTH) -> ChangeNotice:
    """Parse one data event sent to the endpoint of entity set `entity`.

    `public_name` is the entity's public name (`CustomerV3`) when known; `key_fields` its key properties;
    `companies` the legal entities this deployment syncs (None: all). Raises `NoticeError` naming what is wrong:
    not JSON, another entity, a legal entity not synced, a Target without its key."""
    data = load_json(body, max_depth=max_depth)
    if not isinstance(data, dict):  # F&O posts one event per request to an HTTPS endpoint, never an array
        raise NoticeError("the body must be a data event object")
    message = data.get("MessageName")
    change = _CHANGES.get(message.strip().lower()) if isinstance(message, str) else None
    if change is None:
        raise NoticeError("MessageName must be Create, Update or Delete")
    _check_entity(data, entity, public_name)
    control = data.get("ControlNumber")
    if isinstance(control, bool) or not isinstance(control, int) or control < 0:
        raise NoticeError("ControlNumber must be a non-negative integer")
    values = _target(data)
    legal_entity = data.get("BusinessEventLegalEntity")
    if legal_entity is not None and not isinstance(legal_entity, str):
        raise NoticeError("BusinessEventLegalEntity must be a string")
    company = values.get("dataAreaId")
    if company is not None and legal_entity and str(company).lower() != legal_entity.lower():
        raise NoticeError("the Target's dataAreaId is not BusinessEventLegalEntity")
    if companies is not None and company is not None and str(company).lower() not in {c.lower() for c in companies}:
        raise NoticeError(f"legal entity '{str(company)[:16]}' is not synced by this deployment")
    try:
        record_id = key_predicate({f: values.get(f) for f in key_fields})
    except ConnectorError:
        raise NoticeError(f"the Target lacks a key property of {entity} ({', '.join(key_fields)})") from None
    return ChangeNotice(System.FINANCE_OPERATIONS, entity, change, record_id, seen_at,
                        actor=_object_id(data.get("InitiatingUserAADObjectId")), marker=str(control), values=values)


def _check_entity(data: Mapping[str, Any], entity: str, public_name: str | None) -> None:
    names = {n for n in (data.get("EntitySetName"), data.get("PrimaryEntityName")) if isinstance(n, str) and n}
    if not names:
        raise NoticeError("the event names no entity (EntitySetName / PrimaryEntityName)")
    if entity not in names and (public_name is None or public_name not in names):
        shown = sorted(names)[0][:64]
        raise NoticeError(f"the event is about '{shown}', not {entity}, the entity this endpoint receives")


def _target(data: Mapping[str, Any]) -> dict[str, Any]:
    inputs = data.get("InputParameters")
    if not isinstance(inputs, list) or not all(isinstance(p, dict) for p in inputs):
        raise NoticeError("InputParameters must be a list of {key, value} objects")
    target = next((p.get("value") for p in inputs if p.get("key") == "Target"), None)
    if not isinstance(target, dict):
        raise NoticeError("InputParameters must hold the Target record")
    attributes = target.get("Attributes")
    if not isinstance(attributes, list) or len(attributes) > MAX_ATTRIBUTES:
        raise NoticeError("the Target's Attributes must be a list")
    values: dict[str, Any] = {}
    for attribute in attributes:
        if not isinstance(attribute, dict) or not isinstance(attribute.get("key"), str):
            raise NoticeError("every Target attribute must be a {key, value} object")
        value = attribute.get("value")
        if isinstance(value, dict | list):
            continue  # not a key property: keys are primitive
        values[attribute["key"]] = value
    return values


def _object_id(value: Any) -> str | None:
    """`{410A2690-…}` → `410a2690-…` (F&O writes object ids upper-case in braces)."""
    if not isinstance(value, str) or not value.strip("{} "):
        return None
    return value.strip("{} ").lower()
