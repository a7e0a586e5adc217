"""The product's credentials (azure-identity, through `shared.http.auth.make_credential`) against the emulators'
Entra-shaped token endpoint, over HTTPS with the local CA, as in Azure."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.common.identity import Client, Identity
from emulators.common.server import BackgroundServer
from emulators.common.tls import trust_local_ca
from shared.http import BearerAuth, make_credential

SCOPE = "https://api.businesscentral.dynamics.com/.default"


class Endpoint:
    """An identity with a whoami route, counting token requests and able to fail the next few."""

    def __init__(self) -> None:
        self.identity = Identity([Client("app-1", "app-secret-1", "user-1", "Integration")])
        self.token_requests = 0
        self.fail_next = 0
        token_route = next(r for r in self.identity.routes() if r.path.endswith("/token"))

        async def token(request: Request) -> Response:
            self.token_requests += 1
            if self.fail_next:
                self.fail_next -= 1
                return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
            return await token_route.endpoint(request)

        async def whoami(request: Request) -> JSONResponse:
            client = self.identity.authenticate(request.headers.get("authorization"))
            if client is None:
                return JSONResponse({"error": {"code": "Unauthorized", "message": "no"}}, status_code=401)
            return JSONResponse({"user": client.user_id})

        others = [r for r in self.identity.routes() if r is not token_route]
        self.app = Starlette(routes=[Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]), *others,
                                     Route("/whoami", whoami)])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[BackgroundServer, Endpoint]]:
    ep = Endpoint()
    with BackgroundServer(ep.app, tls=trust_local_ca()) as server:
        yield server, ep


def credential(server: BackgroundServer, secret: str = "app-secret-1"):
    return make_credential(tenant_id="tenant-1", client_id="app-1", client_secret=SecretStr(secret),
                           authority=server.url)


async def test_one_token_serves_many_requests(endpoint) -> None:
    server, ep = endpoint
    before = ep.token_requests
    async with credential(server) as cred, httpx.AsyncClient(base_url=server.url,
                                                             auth=BearerAuth(cred, SCOPE)) as api:
        answers = [(await api.get("/whoami")).json() for _ in range(10)]
    assert answers == [{"user": "user-1"}] * 10
    assert ep.token_requests - before == 1  # azure-identity cached it


async def test_wrong_secret_is_a_clear_error_without_the_secret(endpoint, caplog: pytest.LogCaptureFixture) -> None:
    server, _ = endpoint
    caplog.set_level(logging.DEBUG)
    async with credential(server, "wrong-secret-xyz") as cred:
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215") as caught:
            await cred.get_token(SCOPE)
    assert "wrong-secret-xyz" not in str(caught.value) and "wrong-secret-xyz" not in caplog.text


async def test_transient_token_endpoint_failures_are_retried(endpoint) -> None:
    server, ep = endpoint
    ep.fail_next, before = 1, ep.token_requests
    async with credential(server) as cred:
        token = await cred.get_token(SCOPE)
    assert ep.identity.authenticate(f"Bearer {token.token}").user_id == "user-1"
    assert ep.token_requests - before == 2


async def test_the_emulators_certificate_is_verified_not_ignored() -> None:
    """A client that does not trust the local CA is refused: the HTTPS is real."""
    ep = Endpoint()
    with BackgroundServer(ep.app, tls=trust_local_ca()) as server:
        async with httpx.AsyncClient(verify=False) as trusting_nothing:
            assert (await trusting_nothing.get(f"{server.url}/whoami")).status_code == 401
        import ssl

        import certifi
        strict = ssl.create_default_context(cafile=certifi.where())  # public roots only
        async with httpx.AsyncClient(verify=strict) as public_only:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await public_only.get(f"{server.url}/whoami")


def test_plain_http_authorities_are_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        make_credential(tenant_id="t", client_id="c", client_secret=SecretStr("s"), authority="http://127.0.0.1:1")


def test_without_a_secret_the_managed_identity_is_used() -> None:
    from azure.identity.aio import ManagedIdentityCredential

    assert isinstance(make_credential(tenant_id="t", client_id="", client_secret=None,
                                      authority="https://login.microsoftonline.com"), ManagedIdentityCredential)
