"""Who is calling the admin API, and what they may do (docs/admin-api.md#authentication).

Two doors, chosen by `DUALSYNC_AUTH__EASY_AUTH` (`shared.settings.AuthSettings`):

- **Easy Auth on** (Azure, with App Service Authentication in front of the app): the caller is the Entra ID
  identity the platform validated and describes in `X-MS-CLIENT-PRINCIPAL` (base64 JSON with `claims`),
  `X-MS-CLIENT-PRINCIPAL-ID` and `-NAME`. Its app roles (`roles` claims) decide: `DualSync.Operator` may do
  anything, `DualSync.Viewer` may only read. The platform strips client-sent copies of these headers, which is
  the only reason they can be trusted; nothing else here can tell a forged header from a real one.
- **Easy Auth off** (the local host, the sandbox, a key-only deployment): the Functions host has already
  checked the function key (auth level `function`); a key is an *automation* caller with operator rights.
  Principal headers are ignored: anyone can send them. A key in the URL (`?code=`) lands in proxy and access
  logs, so it is accepted for reads only; anything that writes needs the `x-functions-key` header.

Nothing Azure Functions specific: the caller is read from a header mapping and the query parameters.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from shared.admin.params import AdminError

OPERATOR_ROLE = "DualSync.Operator"
VIEWER_ROLE = "DualSync.Viewer"
KEY_HEADER = "x-functions-key"
KEY_PARAM = "code"
PRINCIPAL = "x-ms-client-principal"
# Easy Auth names the role claim type in `role_typ` (for Entra ID the long WS-Federation URI) while Entra ID
# tokens carry app roles as `roles` claims: accept both spellings.
ROLE_CLAIMS = {"roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}
_OBJECT_ID = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_NAMES = ("preferred_username", "name", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "appid", "azp")
_MAX_PRINCIPAL = 64 * 1024  # Easy Auth's own header limit is far below; a bigger one is not Easy Auth's


class Access(Enum):
    READ = "read"        # viewer or operator
    OPERATE = "operate"  # operator only: anything that writes to a system or to dualsync's state


@dataclass(frozen=True)
class Caller:
    kind: str                      # "user" / "app" (Entra ID, through Easy Auth) or "automation" (a function key)
    id: str                        # Entra object id, or "function-key"
    name: str                      # sign-in name / app id, or "function key"
    roles: frozenset[str] = field(default_factory=frozenset)
    key_in_url: bool = False       # a function key that came as ?code=

    @property
    def label(self) -> str:
        """What jobs and audit rows record as `started_by`: kind and name, e.g. `user:ana@contoso.com`."""
        return f"{self.kind}:{self.name}"

    def may(self, access: Access) -> bool:
        if OPERATOR_ROLE in self.roles:
            return True
        return access is Access.READ and VIEWER_ROLE in self.roles


def unauthenticated(message: str) -> AdminError:
    return AdminError(401, "Unauthenticated", message)


def identify(headers: Mapping[str, str], params: Mapping[str, str], *, easy_auth: bool) -> Caller:
    """The caller of one request (`headers` must be case-insensitive, as `func.HttpRequest.headers` is)."""
    if easy_auth:
        return _principal(headers)
    if headers.get(KEY_HEADER):
        return Caller("automation", "function-key", "function key", frozenset({OPERATOR_ROLE}))
    if params.get(KEY_PARAM):
        return Caller("automation", "function-key", "function key", frozenset({OPERATOR_ROLE}), key_in_url=True)
    # Unreachable through the Functions host (it refuses a function-level route without a key), so whatever
    # delivered this request did not authenticate it: refuse rather than guess.
    raise unauthenticated(f"send a function key in the {KEY_HEADER} header")


def authorise(caller: Caller, access: Access) -> None:
    """403 unless `caller` may do `access`; a write with the key in the URL is refused whatever the key."""
    if access is Access.OPERATE and caller.key_in_url:
        raise AdminError(403, "KeyInUrl", f"this route writes: send the function key in the {KEY_HEADER} header, "
                                          f"not as ?{KEY_PARAM}= (URLs end up in logs)")
    if not caller.may(access):
        wanted = OPERATOR_ROLE if access is Access.OPERATE else f"{VIEWER_ROLE} or {OPERATOR_ROLE}"
        raise AdminError(403, "Forbidden", f"{caller.label} lacks the app role {wanted}")


def _principal(headers: Mapping[str, str]) -> Caller:
    raw = headers.get(PRINCIPAL)
    if not raw:
        raise unauthenticated("sign in with Entra ID: no App Service Authentication principal on the request")
    document = _decode(raw)
    claims = document.get("claims")
    if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
        raise unauthenticated("the App Service Authentication principal has no claims list")
    role_types = ROLE_CLAIMS | ({document["role_typ"]} if isinstance(document.get("role_typ"), str) else set())
    values: dict[str, list[str]] = {}
    for claim in claims:
        typ, val = claim.get("typ"), claim.get("val")
        if isinstance(typ, str) and isinstance(val, str):
            values.setdefault(typ, []).append(val)
    roles = frozenset(v for typ, vs in values.items() if typ in role_types for v in vs)
    object_id = headers.get(f"{PRINCIPAL}-id") or _first(values, _OBJECT_ID)
    name = headers.get(f"{PRINCIPAL}-name") or _first(values, _NAMES) or object_id
    if not object_id or not name:
        raise unauthenticated("the App Service Authentication principal names no identity")
    kind = "app" if "app" in values.get("idtyp", []) else "user"
    return Caller(kind, object_id, name, roles)


def _decode(raw: str) -> dict[str, Any]:
    if len(raw) > _MAX_PRINCIPAL:
        raise unauthenticated("the App Service Authentication principal header is too large")
    try:
        document = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise unauthenticated("the App Service Authentication principal is not base64 JSON") from None
    if not isinstance(document, dict):
        raise unauthenticated("the App Service Authentication principal is not a JSON object")
    return document


def _first(values: Mapping[str, list[str]], types: tuple[str, ...]) -> str | None:
    return next((values[t][0] for t in types if values.get(t)), None)
