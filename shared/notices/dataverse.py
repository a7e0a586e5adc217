"""Dataverse webhooks (PROTOCOLS.md §2): the service endpoint's secret (HttpHeader, WebhookKey `?code=` or
HttpQueryString, whichever is configured) and the JSON `RemoteExecutionContext` body, with or without
`x-ms-dynamics-msg-size-exceeded`."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from shared.mapping import System
from shared.notices.business_central import same_secret
from shared.notices.limits import MAX_DEPTH, load_json
from shared.notices.model import Change, ChangeNotice, NoticeError
from shared.settings import WebhookSettings

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SIZE_EXCEEDED = "x-ms-dynamics-msg-size-exceeded"
_CHANGES = {"create": Change.CREATED, "delete": Change.DELETED}  # any other message (Update, Assign…) updates


def authenticated(headers: Mapping[str, str], params: Mapping[str, str], settings: WebhookSettings,
                  key: str) -> bool:
    """True when the request carries `key` where the service endpoint's authentication type puts it
    (`settings.dataverse_auth`): the HttpHeader header, WebhookKey's `code` or HttpQueryString's parameter.
    Only that place counts: a key anywhere else was not sent by the endpoint registered. `headers` has
    lower-case names; the comparison is constant-time."""
    where = settings.dataverse_auth
    received = (headers.get(settings.dataverse_header.lower()) if where == "header"
                else params.get("code") if where == "code" else params.get(settings.dataverse_param))
    return same_secret(received, key)


def size_exceeded(headers: Mapping[str, str]) -> bool:
    return headers.get(SIZE_EXCEEDED, "").strip().lower() == "true"


def _guid(data: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _GUID.match(value):
        raise NoticeError(f"{key} must be a GUID")
    return value.lower()


def parse_context(body: bytes, *, entity: str, logical_name: str | None, exceeded: bool,
                  seen_at: dt.datetime, max_depth: int = MAX_DEPTH) -> ChangeNotice:
    """Parse a RemoteExecutionContext sent to the function of entity set `entity` (logical name
    `logical_name`, checked against PrimaryEntityName when known). With `exceeded` (the size header),
    Dataverse stripped InputParameters and images: the record id still is PrimaryEntityId, and the processor
    reads the record anyway. Raises `NoticeError` naming what is malformed."""
    data = load_json(body, max_depth=max_depth)
    if not isinstance(data, dict):
        raise NoticeError("the body must be a RemoteExecutionContext object")
    message = data.get("MessageName")
    if not isinstance(message, str) or not message.strip() or len(message) > 100:
        raise NoticeError("MessageName must be a non-empty string")
    primary = data.get("PrimaryEntityName")
    if not isinstance(primary, str) or not primary:
        raise NoticeError("PrimaryEntityName must be a non-empty string")
    if logical_name is not None and primary.lower() != logical_name.lower():
        raise NoticeError(f"PrimaryEntityName '{primary[:64]}' is not '{logical_name}', the table this endpoint "
                          "receives")
    record_id = _guid(data, "PrimaryEntityId", required=True)
    user = _guid(data, "UserId", required=False)
    initiating = _guid(data, "InitiatingUserId", required=False)
    modified = None if exceeded else _target_modified_on(data, record_id)
    operation = data.get("OperationId")
    marker = next((m for m in (operation, modified, data.get("CorrelationId"))
                   if isinstance(m, str) and 0 < len(m) <= 64), None)
    return ChangeNotice(System.DATAVERSE, entity, _CHANGES.get(message.strip().lower(), Change.UPDATED), record_id,
                        seen_at, actor=user, initiating_actor=initiating, marker=marker, size_exceeded=exceeded)


def _target_modified_on(data: Mapping[str, Any], record_id: str | None) -> str | None:
    """The Target's `modifiedon` (WCF date) when present; checks the Target names the primary record."""
    inputs = data.get("InputParameters")
    if inputs is None:
        return None
    if not isinstance(inputs, list) or not all(isinstance(p, dict) for p in inputs):
        raise NoticeError("InputParameters must be a list of {key, value} objects")
    target = next((p.get("value") for p in inputs if p.get("key") == "Target"), None)
    if target is None:
        return None
    if not isinstance(target, dict):
        raise NoticeError("InputParameters Target must be an Entity or EntityReference object")
    target_id = target.get("Id")
    if target_id is not None and (not isinstance(target_id, str) or target_id.lower() != record_id):
        raise NoticeError("the Target's Id is not PrimaryEntityId")
    attributes = target.get("Attributes", [])
    if not isinstance(attributes, list):
        raise NoticeError("the Target's Attributes must be a list")
    for attribute in attributes:
        if isinstance(attribute, dict) and attribute.get("key") == "modifiedon":
            value = attribute.get("value")
            return value if isinstance(value, str) else None
    return None
