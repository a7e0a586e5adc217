"""OAuth2 client-credentials token endpoint shared by both emulators.

Each client id is a user of the emulated system (one of them is the integration user). Tokens are opaque
bearer strings; the real services issue JWTs, but clients must treat access tokens as opaque anyway.
The routes follow Microsoft Entra ID's shapes closely enough for an azure-identity style client-secret
credential pointed at the emulator (`/{tenant}/oauth2/v2.0/token`, the OpenID configuration document and
the instance-discovery answer MSAL asks for).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulators.common.store import Actor

TOKEN_LIFETIME_S = 3599


@dataclass(frozen=True)
class Client:
    """An app registration: its secret and the system user it acts as."""

    client_id: str
    secret: str = field(repr=False)
    user_id: str
    name: str

    @property
    def actor(self) -> Actor:
        return Actor(self.user_id, self.name)


class Identity:
    def __init__(self, clients: list[Client], *,
                 resources: Callable[[Request], set[str]] | None = None) -> None:
        self.clients = {c.client_id: c for c in clients}
        self._tokens: dict[str, tuple[Client, float]] = {}
        # When given: the resource URLs whose `<url>/.default` scope this service accepts (others → AADSTS500011).
        self.resources = resources

    def issue(self, client_id: str, secret: str) -> str | None:
        client = self.clients.get(client_id)
        # Compare even for unknown ids, so timing does not tell which client ids exist.
        expected = client.secret if client else secrets.token_hex(16)
        if not hmac.compare_digest(expected.encode(), secret.encode()) or client is None:
            return None
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (client, time.monotonic() + TOKEN_LIFETIME_S)
        return token

    def authenticate(self, authorization: str | None) -> Client | None:
        """The client behind an `Authorization: Bearer …` header, or None when missing, unknown or expired."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        entry = self._tokens.get(authorization[7:].strip())
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def routes(self) -> list[Route]:
        return [
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self._openid, methods=["GET"]),
            Route("/common/discovery/instance", self._discovery, methods=["GET"]),
        ]

    async def _token(self, request: Request) -> JSONResponse:
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", "AADSTS70003: only client_credentials is supported.")
        scope = str(form.get("scope") or "")
        if not scope:
            return _aad_error(400, "invalid_request", "AADSTS90014: The required field 'scope' is missing.")
        if self.resources is not None and _resource(scope) not in {_resource(r) for r in self.resources(request)}:
            return _aad_error(400, "invalid_resource", f"AADSTS500011: The resource principal named "
                              f"{scope.removesuffix('/.default')} was not found in the tenant.")
        credentials = _client_credentials(request.headers.get("authorization"), form.get("client_id"),
                                          form.get("client_secret"))
        if credentials is None:
            return _aad_error(401, "invalid_client", "AADSTS7000216: Exactly one of client_secret_post or "
                              "client_secret_basic authentication is required.")
        token = self.issue(*credentials)
        if token is None:
            return _aad_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        return JSONResponse({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S,
                             "ext_expires_in": TOKEN_LIFETIME_S, "access_token": token})

    async def _openid(self, request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        base = str(request.base_url).rstrip("/")
        return JSONResponse({
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "issuer": f"{base}/{tenant}/v2.0",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        })

    async def _discovery(self, request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return JSONResponse({
            "tenant_discovery_endpoint": f"{base}/common/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [],
        })


def _aad_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _resource(scope: str) -> str:
    """`https://host/.default`, `https://host//.default` and `https://HOST` name one resource."""
    return scope.strip().removesuffix(".default").rstrip("/").lower()


def _client_credentials(authorization: str | None, form_id: object, form_secret: object) -> tuple[str, str] | None:
    """(client id, secret) from exactly one method: HTTP Basic (RFC 6749 §2.3.1: each part form-urlencoded,
    then base64) or `client_secret_post` form fields. Both at once, or neither, is refused."""
    basic = None
    if authorization and authorization[:6].lower() == "basic ":
        try:
            raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        if not sep:
            return None
        basic = (unquote_plus(user), unquote_plus(password))
    post = (str(form_id), str(form_secret)) if form_secret is not None else None
    if (basic is None) == (post is None):
        return None
    if basic is not None and form_id is not None and str(form_id) != basic[0]:
        return None  # a client_id field naming another client than the Basic credentials
    return basic or post
