"""JSON `$batch` (`POST …/api/v2.0/$batch`, PROTOCOLS.md §3): `{"requests": [{"method", "id", "url", "headers",
"body"}]}` → `{"responses": [{"id", "status", "headers", "body"}]}`, at most 100 operations.

Each operation goes through the same handler as a single request (`api.handle`). Behaviour when an
operation fails, as BC documents and is seen to do:
- by default execution stops at the first failed operation; the responses hold the operations up to and
  including it and earlier changes stay committed ("Batch calls with Business Central (2) – Error handling",
  kauffmann.nl); `Prefer: odata.continue-on-error` runs the remaining operations too;
- `Isolation: snapshot` runs the batch as one transaction: on a failure every change is reverted "as if the
  batch request never happened" ("Using OData transactional $batch requests", learn.microsoft.com). The
  responses still list the earlier operations with the status they had when they ran (the documented example
  answers 200, 204, 400), so a client must treat any failed operation as failing the whole batch.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulators.business_central import api
from emulators.business_central.errors import JSON_TYPE, BCError, bad_request
from emulators.business_central.options import query_params
from emulators.business_central.routing import ApiRequest, ApiResponse
from emulators.business_central.state import Environment
from emulators.common.identity import Client

_METHODS = {"GET", "POST", "PATCH", "DELETE"}


class _Rollback(Exception):
    pass


def _operation_path(env: Environment, url: str) -> tuple[str, dict[str, str]]:
    """An operation URL (relative to the API root, or with a leading `/`, or absolute) → (path, query)."""
    parts = urlsplit(url)
    path = parts.path
    s = env.settings
    prefixes = (f"/v2.0/{s.tenant_id}/{s.environment}/api/v2.0/", f"/v2.0/{s.tenant_domain}/{s.environment}/api/v2.0/",
                f"/v2.0/{s.environment}/api/v2.0/", "/api/v2.0/", "api/v2.0/")
    for prefix in prefixes:
        if path.lower().startswith(prefix.lower()):
            path = path[len(prefix):]
            break
    else:
        if parts.scheme or path.startswith("/v2.0/"):
            raise bad_request(f"The operation URL '{url}' is not under this service's API root.")
    return path.lstrip("/"), query_params(parse_qsl(parts.query, keep_blank_values=True))


def _operations(env: Environment, body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise bad_request("The batch request body must be a JSON object with a 'requests' array.")
    ops = body["requests"]
    if len(ops) > env.settings.max_batch_requests:
        raise bad_request(f"The batch request contains {len(ops)} operations; at most "
                          f"{env.settings.max_batch_requests} are allowed in a batch.")
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or str(op.get("method", "")).upper() not in _METHODS \
                or not isinstance(op.get("url"), str):
            raise bad_request(f"Operation {i} of the batch needs a 'method' (GET, POST, PATCH or DELETE) and a 'url'.")
        if op.get("headers") is not None and not isinstance(op["headers"], dict):
            raise bad_request(f"The 'headers' of operation {i} must be a JSON object.")
    return ops


def _wire(op: dict[str, Any], resp: ApiResponse) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in resp.headers.items()}
    out: dict[str, Any] = {"id": op.get("id"), "status": resp.status}
    if resp.body is not None:
        # A text body (`/$count`, `$metadata`) travels as a JSON string, as OData's JSON batch format has it.
        headers = {"content-type": resp.media_type or JSON_TYPE, "odata-version": "4.0", **headers}
        out["headers"] = headers
        out["body"] = resp.body
    else:
        out["headers"] = headers
    return out


async def run_batch(env: Environment, body: Any, headers: dict[str, str], client: Client, base: str) -> ApiResponse:
    """Run a JSON batch; `headers` are the batch request's (lower-case names)."""
    try:
        ops = _operations(env, body)
    except BCError as exc:
        return ApiResponse(exc.status, exc.body())
    snapshot = headers.get("isolation", "").strip().lower() == "snapshot"
    keep_going = "odata.continue-on-error" in headers.get("prefer", "").lower() and not snapshot
    responses: list[dict[str, Any]] = []

    async def run_all() -> bool:
        failed = False
        for op in ops:
            await env.faults.batch_op_delay()
            try:
                path, query = _operation_path(env, op["url"])
            except BCError as exc:
                resp = ApiResponse(exc.status, exc.body())
            else:
                op_headers = {str(k).lower(): str(v) for k, v in (op.get("headers") or {}).items()}
                req = ApiRequest(op["method"].upper(), path, query, op_headers, op.get("body"), client, base,
                                 in_transaction=snapshot)
                resp = await api.handle(env, req)
            responses.append(_wire(op, resp))
            if resp.status >= 400:
                failed = True
                if not keep_going:
                    break
        return failed

    if not snapshot:
        await run_all()
    else:
        async with env.write_lock:
            series = dict(env.number_series)
            try:
                with env.store.transaction():
                    if await run_all():
                        raise _Rollback
            except _Rollback:
                env.number_series = series  # number series are rolled back with the rest
    return ApiResponse(200, {"responses": responses})
