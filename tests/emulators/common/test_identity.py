"""The shared token endpoint: client_secret_post and client_secret_basic (RFC 6749 §2.3.1), exactly one of them,
and the optional resource check."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import httpx
from starlette.applications import Starlette

from emulators.common.identity import Client, Identity


def _app(resources: set[str] | None = None) -> Starlette:
    identity = Identity([Client("app:1", "s&cret/+", "uid", "App")],
                        resources=(lambda request: resources) if resources is not None else None)
    return Starlette(routes=identity.routes())


def _basic(user: str, password: str) -> dict[str, str]:
    raw = f"{quote_plus(user)}:{quote_plus(password)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def test_basic_and_post_exactly_one() -> None:
    form = {"grant_type": "client_credentials", "scope": "https://x/.default"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(_app()), base_url="http://id.test") as c:
        r = await c.post("/t/oauth2/v2.0/token", data=form, headers=_basic("app:1", "s&cret/+"))
        assert r.status_code == 200, r.text
        r = await c.post("/t/oauth2/v2.0/token", data={**form, "client_id": "app:1", "client_secret": "s&cret/+"})
        assert r.status_code == 200
        both = await c.post("/t/oauth2/v2.0/token", data={**form, "client_id": "app:1", "client_secret": "s&cret/+"},
                            headers=_basic("app:1", "s&cret/+"))
        neither = await c.post("/t/oauth2/v2.0/token", data=form)
        garbled = await c.post("/t/oauth2/v2.0/token", data=form, headers={"Authorization": "Basic !!!"})
        for r in (both, neither, garbled):
            assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_resource_check_is_optional() -> None:
    form = {"grant_type": "client_credentials", "client_id": "app:1", "client_secret": "s&cret/+"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(_app({"https://env.example"})),
                                 base_url="http://id.test") as c:
        ok = await c.post("/t/oauth2/v2.0/token", data={**form, "scope": "https://ENV.example//.default"})
        assert ok.status_code == 200
        r = await c.post("/t/oauth2/v2.0/token", data={**form, "scope": "https://other/.default"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_resource"
