"""A token credential for emulators served in-process (`httpx.ASGITransport`): no socket exists there for
azure-identity to reach, so the client-credentials request goes through the test's own httpx client.

Only tests of other things (connectors, the engine) use it. Wherever the emulators listen on real sockets — the
sandbox, the demo, the end-to-end tests, `tests/http/test_auth.py` — the product's own path runs:
azure-identity's `ClientSecretCredential` over HTTPS (`shared.http.auth.make_credential`)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from azure.core.credentials import AccessToken


class EmulatorCredential:
    def __init__(self, http: httpx.AsyncClient, authority: str, tenant_id: str, client_id: str, secret: str) -> None:
        self._http = http
        self._url = f"{authority.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self._form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        self._tokens: dict[str, AccessToken] = {}

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        scope = " ".join(scopes)
        cached = self._tokens.get(scope)
        if cached is not None and cached.expires_on - 60 > time.time():
            return cached
        response = await self._http.post(self._url, data={**self._form, "scope": scope})
        if response.status_code != 200:
            from azure.core.exceptions import ClientAuthenticationError

            raise ClientAuthenticationError(f"token endpoint answered {response.status_code}: {response.text}")
        body = response.json()
        token = AccessToken(body["access_token"], int(time.time() + body["expires_in"]))
        self._tokens[scope] = token
        return token

    async def close(self) -> None:
        """The httpx client is the test's."""
