"""Token acquisition against the emulators' Entra-shaped token endpoint over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulators.common.identity import Client, Identity
from emulators.common.server import BackgroundServer
from shared.http import BearerAuth, ClientSecretCredential, TokenError

SCOPE = "https://api.businesscentral.dynamics.com/.default"


@pytest.fixture(scope="module")
def identity_server() -> Iterator[tuple[BackgroundServer, Identity]]:
    identity = Identity([Client("app-1", "app-secret-1", "user-1", "Integration")])

    async def whoami(request: Request) -> JSONResponse:
        client = identity.authenticate(request.headers.get("authorization"))
        if client is None:
            return JSONResponse({"error": {"code": "Unauthorized", "message": "no"}}, status_code=401)
        return JSONResponse({"user": client.user_id})

    app = Starlette(routes=[*identity.routes(), Route("/whoami", whoami)])
    with BackgroundServer(app) as server:
        yield server, identity


def test_azure_identity_refuses_plain_http_authorities() -> None:
    # The reason shared.http.auth has its own credential; if this ever passes, azure-identity could be used.
    from azure.identity.aio import ClientSecretCredential as AzureClientSecretCredential

    with pytest.raises(ValueError, match="https"):
        AzureClientSecretCredential("tenant", "app-1", "app-secret-1", authority="http://127.0.0.1:1")


async def test_token_is_cached_and_shared_by_concurrent_waiters(identity_server) -> None:
    server, identity = identity_server
    async with httpx.AsyncClient() as http:
        credential = ClientSecretCredential("tenant-1", "app-1", "app-secret-1", http=http, authority=server.url)
        tokens = await asyncio.gather(*(credential.get_token(SCOPE) for _ in range(20)))
        again = await credential.get_token(SCOPE)

    assert credential.fetches == 1
    assert len({t.token for t in tokens} | {again.token}) == 1
    assert identity.authenticate(f"Bearer {again.token}").user_id == "user-1"


async def test_token_is_refreshed_before_expiry(identity_server) -> None:
    server, _ = identity_server
    now = [1_000_000.0]
    async with httpx.AsyncClient() as http:
        credential = ClientSecretCredential("t", "app-1", "app-secret-1", http=http, authority=server.url,
                                            clock=lambda: now[0])
        first = await credential.get_token(SCOPE)
        now[0] += 3599 - 301  # still more than the 5-minute margin left
        assert (await credential.get_token(SCOPE)).token == first.token
        now[0] += 2  # inside the margin
        second = await credential.get_token(SCOPE)

    assert second.token != first.token and credential.fetches == 2
    assert second.expires_on == int(now[0] + 3599)


async def test_wrong_secret_is_a_clear_error_without_the_secret(identity_server) -> None:
    server, _ = identity_server
    async with httpx.AsyncClient() as http:
        credential = ClientSecretCredential("t", "app-1", "wrong-secret-xyz", http=http, authority=server.url)
        with pytest.raises(TokenError, match="invalid_client") as caught:
            await credential.get_token(SCOPE)
    assert "wrong-secret-xyz" not in str(caught.value) and "wrong-secret-xyz" not in repr(credential)


async def test_bearer_auth_sends_the_token_and_renews_after_401(identity_server) -> None:
    server, identity = identity_server
    async with httpx.AsyncClient() as http:
        credential = ClientSecretCredential("t", "app-1", "app-secret-1", http=http, authority=server.url)
        async with httpx.AsyncClient(base_url=server.url, auth=BearerAuth(credential, SCOPE)) as api:
            assert (await api.get("/whoami")).json() == {"user": "user-1"}
            identity._tokens.clear()  # the emulator restarted: every issued token is unknown now
            response = await api.get("/whoami")

    assert response.status_code == 200 and credential.fetches == 2


async def test_transient_token_endpoint_failures_are_retried() -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json={"access_token": "tok", "expires_in": 3599})])
    transport = httpx.MockTransport(lambda request: next(answers))
    async with httpx.AsyncClient(transport=transport) as http:
        from shared.http import RetryExecutor

        async def no_sleep(_: float) -> None:
            return None

        credential = ClientSecretCredential("t", "c", "s3cret", http=http, authority="https://login.example",
                                            retry=RetryExecutor(sleep=no_sleep))
        assert (await credential.get_token(SCOPE)).token == "tok"


def test_missing_inputs_are_refused() -> None:
    http = httpx.AsyncClient()
    with pytest.raises(ValueError, match="client secret"):
        ClientSecretCredential("t", "c", "", http=http)
    with pytest.raises(ValueError, match="tenant id"):
        ClientSecretCredential("", "c", "s", http=http)
