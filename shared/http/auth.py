"""Access tokens for the connectors: azure-identity's credentials, and the httpx hook that sends their tokens.

In Azure the Function App uses its managed identity, or an app registration's client secret (a Key Vault
reference); locally the same `ClientSecretCredential` asks the emulators' Entra-like token endpoint, which they
serve over HTTPS with a local certificate authority (`emulators.common.tls`). So the code path proven locally is
the one that runs in Azure, and no OAuth code of our own exists: tokens, their cache and refresh, and retries of
the token endpoint are azure-identity's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from pydantic import SecretStr


class BearerAuth(httpx.Auth):
    """httpx auth hook adding `Authorization: Bearer <token>` from any azure-core `AsyncTokenCredential` (which
    caches the token and refreshes it before it expires)."""

    def __init__(self, credential: AsyncTokenCredential, scope: str) -> None:
        self.credential = credential
        self.scope = scope

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise RuntimeError("BearerAuth works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.credential.get_token(self.scope)
        request.headers["Authorization"] = f"Bearer {token.token}"
        yield request


def make_credential(*, tenant_id: str, client_id: str, client_secret: SecretStr | None,
                    authority: str) -> AsyncTokenCredential:
    """azure-identity's `ClientSecretCredential` when a secret is configured (against `authority`: Entra ID, a
    sovereign cloud or the local emulators), otherwise the Function App's managed identity (`client_id` then
    names a user-assigned identity). The caller closes it (`await credential.close()`)."""
    if client_secret is not None and client_secret.get_secret_value():
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(tenant_id, client_id, client_secret.get_secret_value(), authority=authority)
    from azure.identity.aio import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id or None)
