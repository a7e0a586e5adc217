"""Business Central webhook notifications (PROTOCOLS.md §4): the `validationToken` handshake, the
`clientState` check and the `{"value": [...]}` body with created / updated / deleted / collection notices."""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import unquote

from shared.mapping import System
from shared.notices.limits import MAX_DEPTH, load_json
from shared.notices.model import Change, ChangeNotice, NoticeError, TooLarge, Unauthenticated

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# `api/v2.0/companies(<id>)/customers(<id>)` or `/api/v2.0/companies(<id>)/customers?$filter=…`
_RESOURCE = re.compile(rf"^/?(?:api/v2\.0/)?companies\(({_GUID})\)/([A-Za-z][A-Za-z0-9]*)"
                       rf"(?:\(({_GUID})\))?(?:\?(.*))?$")
MAX_TOKEN = 1024
MAX_NOTICES = 1000  # BC sends one `collection` notice rather than more per subscription


def handshake_token(params: dict[str, str]) -> str | None:
    """The `validationToken` of a subscription handshake (to echo as plain text), or None. Raises NoticeError
    for an empty or oversized token."""
    token = params.get("validationToken")
    if token is None:
        return None
    if not token or len(token) > MAX_TOKEN or any(c in token for c in "\r\n"):
        raise NoticeError("validationToken is empty, too long or contains a line break")
    return token


def same_secret(received: Any, expected: str) -> bool:
    """Constant-time comparison of a shared secret (wrong type → False)."""
    return isinstance(received, str) and hmac.compare_digest(received.encode(), expected.encode())


def parse_notifications(body: bytes, *, entity: str, client_state: str, company_id: str | None,
                        seen_at: dt.datetime, company_ids: Collection[str] = (), max_depth: int = MAX_DEPTH,
                        max_notices: int = MAX_NOTICES) -> list[ChangeNotice]:
    """Check and parse a notification body for the function of `entity` (the entity set it subscribed to).

    Raises `Unauthenticated` when any notice lacks the right clientState (nothing of the batch is used),
    `TooLarge` for more than `max_notices` notices, `NoticeError` when the body is malformed (or nests deeper
    than `max_depth`), names another entity set or (with `company_id`, or `company_ids` when several are
    synced) another company. With several companies a record id is `<company>/<record>`, as the connector
    names records then. The clientState is inside each notice, so the body is parsed before it is checked:
    the caller bounds its size first, and the shape is checked before anything is trusted."""
    data = load_json(body, max_depth=max_depth)
    items = data.get("value") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise NoticeError("the body must be an object with a non-empty 'value' list")
    if len(items) > max_notices:
        raise TooLarge(f"more than {max_notices} notices in one request")
    if not all(isinstance(n, dict) for n in items):
        raise NoticeError("every item of 'value' must be an object")
    # Authenticate the whole batch before trusting any of it.
    if not all(same_secret(n.get("clientState"), client_state) for n in items):
        raise Unauthenticated("clientState missing or wrong")
    synced = {c.lower() for c in company_ids} or ({company_id.lower()} if company_id else set())
    return [_notice(i, n, entity, synced, seen_at) for i, n in enumerate(items)]


def _notice(i: int, item: dict[str, Any], entity: str, synced: set[str], seen_at: dt.datetime) -> ChangeNotice:
    where = f"value[{i}]"
    kind = item.get("changeType")
    try:
        change = Change(kind)
    except ValueError:
        raise NoticeError(f"{where}.changeType must be created, updated, deleted or collection") from None
    resource = item.get("resource")
    match = _RESOURCE.match(resource) if isinstance(resource, str) else None
    if match is None:
        raise NoticeError(f"{where}.resource is not a company entity set or record of API v2.0")
    company, entity_set, record_id, query = match.groups()
    if entity_set != entity:
        raise NoticeError(f"{where}.resource names entity set '{entity_set}', this endpoint receives '{entity}'")
    if synced and company.lower() not in synced:
        raise NoticeError(f"{where}.resource names a company that is not synced")
    modified = item.get("lastModifiedDateTime")
    marker = modified if isinstance(modified, str) and len(modified) <= 64 else None
    if change is Change.COLLECTION:
        if record_id is not None:
            raise NoticeError(f"{where}: a collection notice names an entity set, not a record")
        # unquote, not parse_qs: '+' in a datetime offset is a plus sign here, not a space.
        filters = [unquote(p[len("$filter="):]) for p in (query or "").split("&") if p.startswith("$filter=")]
        text = filters[0].strip() if filters and filters[0].strip() else None
        if len(synced) > 1:  # the connector reads every synced company: keep to the one BC named
            text = f"companyId eq '{company.lower()}'" + (f" and ({text})" if text else "")
        return ChangeNotice(System.BUSINESS_CENTRAL, entity, change, None, seen_at, marker=marker,
                            collection_filter=text)
    if record_id is None or query:
        raise NoticeError(f"{where}.resource must name one record for a {change.value} notice")
    # With several companies synced, ids carry the company, as the connector names records then.
    rid = f"{company.lower()}/{record_id.lower()}" if len(synced) > 1 else record_id.lower()
    return ChangeNotice(System.BUSINESS_CENTRAL, entity, change, rid, seen_at, marker=marker)
