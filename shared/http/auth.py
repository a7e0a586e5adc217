"""Access tokens for the connectors, through azure-core's `AsyncTokenCredential` protocol.

Why our own client-secret credential: azure-identity refuses any authority that is not https
("… must be a TLS protected (https) URL", `azure.identity._internal.utils.normalize_authority`), and the
local emulators serve Entra ID's token endpoint over plain http on 127.0.0.1. This class speaks the same
OAuth2 client-credentials request (`POST {authority}/{tenant}/oauth2/v2.0/token`) against either, so the
code path proven locally is the one used with a client secret in Azure. With a managed identity the app
passes azure-identity's `ManagedIdentityCredential` instead (`make_credential`); the connectors only see
the protocol: `await credential.get_token(scope)` and the `BearerAuth` httpx hook.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httpx
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.credentials_async import AsyncTokenCredential
from pydantic import SecretStr

from shared.http.retry import RequestError, RetryExecutor, RetryPolicy

PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
# Refresh this long before expiry (azure-identity refreshes 5 minutes early as well).
REFRESH_MARGIN_S = 300.0


class TokenError(Exception):
    """The token endpoint refused or failed; the message carries Entra ID's error code, never the secret."""


class ClientSecretCredential:
    """OAuth2 client-credentials credential with an in-memory cache per scope set.

    Tokens are reused until `REFRESH_MARGIN_S` (at most half the lifetime) before expiry. Concurrent
    callers needing the same scopes wait on one request instead of each fetching a token.
    """

    def __init__(self, tenant_id: str, client_id: str, client_secret: str | SecretStr, *,
                 http: httpx.AsyncClient, authority: str = PUBLIC_AUTHORITY,
                 retry: RetryExecutor | None = None, clock: Callable[[], float] = time.time) -> None:
        if not tenant_id or not client_id:
            raise ValueError("ClientSecretCredential needs a tenant id and a client id")
        secret = client_secret.get_secret_value() if isinstance(client_secret, SecretStr) else client_secret
        if not secret:
            raise ValueError("ClientSecretCredential needs a client secret")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = secret
        self._http = http
        self.token_url = f"{authority.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self._retry = retry or RetryExecutor(RetryPolicy(max_attempts=4, max_elapsed=30.0))
        self._clock = clock
        self._cache: dict[tuple[str, ...], AccessTokenInfo] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self.fetches = 0  # token requests made, for tests and metrics

    def __repr__(self) -> str:  # never show the secret
        return f"ClientSecretCredential(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    async def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                        enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        info = await self.get_token_info(*scopes)
        return AccessToken(info.token, info.expires_on)

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        if not scopes:
            raise ValueError("get_token needs at least one scope, e.g. 'https://api.businesscentral.dynamics.com/.default'")
        key = tuple(sorted(scopes))
        cached = self._cache.get(key)
        if cached is not None and self._fresh(cached):
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)  # another waiter may have refreshed it meanwhile
            if cached is not None and self._fresh(cached):
                return cached
            info = await self._fetch(key)
            self._cache[key] = info
            return info

    def invalidate(self, *scopes: str) -> None:
        """Forget the cached token (e.g. after a 401), so the next call fetches a new one."""
        self._cache.pop(tuple(sorted(scopes)), None)

    def _fresh(self, info: AccessTokenInfo) -> bool:
        return self._clock() < (info.refresh_on or info.expires_on)

    async def _fetch(self, scopes: tuple[str, ...]) -> AccessTokenInfo:
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self._secret, "scope": " ".join(scopes)}
        requested_at = self._clock()
        self.fetches += 1
        try:
            response = await self._retry.run(lambda: self._http.post(self.token_url, data=form),
                                              describe=f"token request to {self.token_url}")
        except RequestError as exc:
            verdict = exc.classification
            raise TokenError(f"token request for client {self.client_id} failed: {verdict.describe()}") from None
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"token endpoint {self.token_url} answered without access_token/expires_in") from None
        if not isinstance(token, str) or not token or lifetime <= 0:
            raise TokenError(f"token endpoint {self.token_url} answered an empty or expired token")
        expires_on = int(requested_at + lifetime)
        refresh_on = int(requested_at + lifetime - min(REFRESH_MARGIN_S, lifetime / 2))
        return AccessTokenInfo(token, expires_on, token_type=str(body.get("token_type", "Bearer")),
                               refresh_on=refresh_on)

    async def close(self) -> None:
        """Nothing to release: the httpx client belongs to the caller."""

    async def __aenter__(self) -> ClientSecretCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class BearerAuth(httpx.Auth):
    """httpx auth hook adding `Authorization: Bearer <token>` from any AsyncTokenCredential.

    On a 401 it asks a credential that supports `invalidate` for a fresh token and sends once more (the
    emulators forget tokens on restart; Entra ID may revoke one early).
    """

    requires_request_body = True  # the request may be sent twice

    def __init__(self, credential: AsyncTokenCredential, scope: str) -> None:
        self.credential = credential
        self.scope = scope

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise RuntimeError("BearerAuth works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.credential.get_token(self.scope)
        request.headers["Authorization"] = f"Bearer {token.token}"
        response = yield request
        invalidate = getattr(self.credential, "invalidate", None)
        if response.status_code == 401 and callable(invalidate):
            invalidate(self.scope)
            token = await self.credential.get_token(self.scope)
            request.headers["Authorization"] = f"Bearer {token.token}"
            yield request


def make_credential(*, tenant_id: str, client_id: str, client_secret: SecretStr | None, authority: str,
                    http: httpx.AsyncClient) -> AsyncTokenCredential:
    """A client-secret credential when a secret is configured, otherwise the Function App's managed identity
    (`client_id` then names a user-assigned identity)."""
    if client_secret is not None and client_secret.get_secret_value():
        return ClientSecretCredential(tenant_id, client_id, client_secret, http=http, authority=authority)
    from azure.identity.aio import ManagedIdentityCredential  # only needed in Azure

    return ManagedIdentityCredential(client_id=client_id or None)

