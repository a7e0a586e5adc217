"""Driving a deployed Function App through its admin API (docs/admin-api.md) instead of opening the
connections locally: what `dualsync --remote URL …` uses. The function key comes from `DUALSYNC_ADMIN_KEY`
and travels as the `x-functions-key` header (never in the URL: it would end up in proxy logs, and the API
refuses a key in the URL for anything that writes). An app behind App Service Authentication wants an Entra
ID access token for its app registration instead: `DUALSYNC_ADMIN_TOKEN`, sent as `Authorization: Bearer`
(e.g. `az account get-access-token --scope api://<client id>/.default --query accessToken -o tsv`).

    async with AdminClient.from_env("https://dualsync-prod.azurewebsites.net") as admin:
        status = await admin.mappings()
        report = await admin.full_sync(["customers"], dry_run=True)

Every method returns the route's JSON document; an error answer raises `RemoteError` with the API's code and
message (or the HTTP status when the answer is not the API's JSON, e.g. 401 for a wrong key).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

KEY_ENV = "DUALSYNC_ADMIN_KEY"
TOKEN_ENV = "DUALSYNC_ADMIN_TOKEN"
PREFIX = "api/manage"
TIMEOUT = httpx.Timeout(230.0, connect=10.0)  # Azure's HTTP front end gives up on a request after 230 s


class RemoteError(Exception):
    """A refusal: the API's `status` and `code`, or status 0 with `Unreachable` / `Timeout` when no answer came."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})" if status else f"{message} ({code})")
        self.status, self.code, self.message = status, code, message


def _api_root(url: str) -> str:
    """`https://app.azurewebsites.net` or `…/api` → `https://app.azurewebsites.net/api/manage/`."""
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"--remote must be the app's http(s) URL, got {url!r}")
    base = url.rstrip("/").removesuffix("/api")
    return f"{base}/{PREFIX}/"


def _flag(value: bool) -> str:
    return "true" if value else "false"


class AdminClient:
    """The admin API of one deployed app. Pass `http` to reuse a client (tests bind one to the local host)."""

    def __init__(self, url: str, key: str | None, *, token: str | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self.root = _api_root(url)
        self._key, self._token = key, token
        self._owns = http is None
        self.http = http or httpx.AsyncClient(timeout=TIMEOUT)

    @classmethod
    def from_env(cls, url: str, *, http: httpx.AsyncClient | None = None) -> AdminClient:
        return cls(url, os.environ.get(KEY_ENV) or None, token=os.environ.get(TOKEN_ENV) or None, http=http)

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owns:
            await self.http.aclose()

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._key:
            headers["x-functions-key"] = self._key
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self.http.request(method, self.root + path, params=clean, json=body, headers=headers)
        except httpx.TimeoutException:
            raise RemoteError(0, "Timeout", f"no answer from {self.root} in time") from None
        except httpx.HTTPError as exc:  # refused, DNS, TLS: the message names the host, never the key
            raise RemoteError(0, "Unreachable", f"cannot reach {self.root}: {exc}") from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.status_code >= 400:
            error = document.get("error") if isinstance(document, dict) else None
            if isinstance(error, dict):
                raise RemoteError(response.status_code, str(error.get("code")), str(error.get("message")))
            why = {401: f"the function key or token was refused (set {KEY_ENV}, or {TOKEN_ENV} where the app "
                        f"uses Entra ID sign-in)", 404: "no admin API at this URL"}
            raise RemoteError(response.status_code, "HttpError", why.get(response.status_code, response.reason_phrase))
        if not isinstance(document, dict):
            raise RemoteError(response.status_code, "UnexpectedResponse", "the app did not answer with a JSON object")
        return document

    # ----- mappings
    async def mappings(self) -> dict[str, Any]:
        return await self._call("GET", "mappings")

    async def mapping(self, name: str) -> dict[str, Any]:
        return await self._call("GET", f"mappings/{name}")

    async def pause(self, mapping: str, reason: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"mappings/{mapping}/pause", body={"reason": reason} if reason else None)

    async def resume(self, mapping: str, *, catch_up: bool = True) -> dict[str, Any]:
        return await self._call("POST", f"mappings/{mapping}/resume", params={"catch_up": _flag(catch_up)})

    async def couple(self, mapping: str, erp_id: str, crm_id: str) -> dict[str, Any]:
        return await self._call("POST", f"mappings/{mapping}/couple", body={"erp_id": erp_id, "crm_id": crm_id})

    async def uncouple(self, mapping: str, *, erp_id: str | None = None, crm_id: str | None = None) -> dict[str, Any]:
        body = {"erp_id": erp_id} if erp_id is not None else {"crm_id": crm_id}
        return await self._call("POST", f"mappings/{mapping}/uncouple", body=body)

    async def match(self, mapping: str, *, create: bool = False, dry_run: bool = False) -> dict[str, Any]:
        return await self._call("POST", f"mappings/{mapping}/match",
                                params={"create": _flag(create), "dry_run": _flag(dry_run)})

    # ----- sync now
    async def sync_record(self, mapping: str, direction: str, source_ids: Sequence[str], *,
                          create: bool | None = None, force: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"direction": direction, "source_ids": list(source_ids), "force": force}
        if create is not None:
            body["create"] = create
        return await self._call("POST", f"mappings/{mapping}/sync-record", body=body)

    async def sync_mapping(self, mapping: str, direction: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"mappings/{mapping}/sync", params={"direction": direction} if direction
                                else None)

    async def full_sync(self, mappings: Sequence[str] | None = None, *, dry_run: bool = True,
                        create: bool | None = None, direction: str | None = None,
                        restart: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"mappings": list(mappings or [])}
        if create is not None:
            body["create"] = create
        if direction is not None:
            body["direction"] = direction
        if restart:
            body["restart"] = True
        return await self._call("POST", "full-sync", params={"dry_run": _flag(dry_run)}, body=body)

    # ----- jobs and errors
    async def jobs(self, mapping: str | None = None, *, since: str | None = None, limit: int = 50) -> dict[str, Any]:
        return await self._call("GET", "jobs", params={"mapping": mapping, "since": since, "limit": str(limit)})

    async def errors(self, mapping: str | None = None, *, skipped: bool | None = None,
                     limit: int = 50) -> dict[str, Any]:
        flag = None if skipped is None else _flag(skipped)
        return await self._call("GET", "errors", params={"mapping": mapping, "skipped": flag, "limit": str(limit)})

    async def retry(self, mapping: str, direction: str, source_id: str) -> dict[str, Any]:
        return await self._call("POST", "errors/retry", body=_one(mapping, direction, source_id))

    async def retry_all(self, mapping: str | None = None, direction: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in {"mapping": mapping, "direction": direction}.items() if v}
        return await self._call("POST", "errors/retry-all", body=body)

    async def skip(self, mapping: str, direction: str, source_id: str) -> dict[str, Any]:
        return await self._call("POST", "errors/skip", body=_one(mapping, direction, source_id))

    async def restore(self, mapping: str, direction: str, source_id: str) -> dict[str, Any]:
        return await self._call("POST", "errors/restore", body=_one(mapping, direction, source_id))

    # ----- reconcile
    async def reconcile(self, mappings: Sequence[str] | None = None) -> dict[str, Any]:
        return await self._call("POST", "reconcile", body={"mappings": list(mappings or [])})

    # ----- settled conflicts
    async def conflicts(self, mapping: str | None = None, *, reversed_: bool | None = None,
                        limit: int = 50) -> dict[str, Any]:
        flag = None if reversed_ is None else _flag(reversed_)
        return await self._call("GET", "conflicts", params={"mapping": mapping, "reversed": flag,
                                                            "limit": str(limit)})

    async def reverse(self, entry_id: str) -> dict[str, Any]:
        return await self._call("POST", f"conflicts/{quote(entry_id, safe='')}/reverse")


def _one(mapping: str, direction: str, source_id: str) -> dict[str, str]:
    return {"mapping": mapping, "direction": direction, "source_id": source_id}
