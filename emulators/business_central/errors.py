"""Business Central's error bodies: `{"error": {"code": "...", "message": "...  CorrelationId:  <guid>."}}`.

Codes used (PROTOCOLS.md §3 where listed there; otherwise the codes BC is seen to return, marked unconfirmed):
- `BadRequest_NotFound` (404): unknown id / route — PROTOCOLS.md §3.
- `BadRequest_InvalidToken` (400): PATCH/DELETE without If-Match — PROTOCOLS.md §3.
- `Request_EntityChanged` (409): stale If-Match. BC answers 409 or 412 (unconfirmed, PROTOCOLS.md §3); 409 picked.
- `BadRequest` (400): OData-level problems (unknown property, wrong JSON type, bad query option).
- `Unknown` (400): AL option validation, e.g. "'X' is not an option. The existing options are: …" (the shape of
  the example in "Using OData transactional $batch requests", learn.microsoft.com).
- `Internal_RecordNotFound` (400): a referenced record (currency code, payment terms id…) does not exist.
- `Internal_EntityWithSameKeyExists` (400): duplicate number/code.
- `Application_DialogException` (400): other AL validation (text too long, inconsistent references).
- `Authentication_InvalidCredentials` (401), `Application_TooManyRequests` (429, no Retry-After),
  `Request_EntityTooLarge` (413, odata.maxpagesize above 20 000 — code unconfirmed).
- `Internal_CompanyNotFound` (400, status unconfirmed): an entity set at the API root without `company=<name>`
  (message as documented in "Troubleshooting REST API/OData calls").
- `BadRequest` with 406: a `$format` the emulator does not write (status as OData prescribes; code unconfirmed).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulators.common.throttle import Rejection

JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true"


class BCError(Exception):
    """Raised by handlers; rendered as a BC error body with `status`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    # BC appends the request's correlation id to every message, with two spaces on each side of the label.
    return {"error": {"code": code, "message": f"{message}  CorrelationId:  {uuid.uuid4()}."}}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type=JSON_TYPE,
                    headers={"OData-Version": "4.0", **(headers or {})})


def bc_error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, error_body(code, message), headers)


def not_found(message: str = "The requested resource does not exist.") -> BCError:
    return BCError(404, "BadRequest_NotFound", message)


def bad_request(message: str, code: str = "BadRequest") -> BCError:
    return BCError(400, code, message)


_FAULT_CODES = {500: "Internal_ServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}


class BCErrorRenderer:
    """The wire shape of the common middleware's refusals (401, 429, injected 5xx)."""

    def unauthorized(self, request: Request) -> Response:
        return bc_error_response(401, "Authentication_InvalidCredentials",
                                 "The server has rejected the client credentials.",
                                 {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def throttled(self, request: Request, rejection: Rejection) -> Response:
        # BC documents no Retry-After on 429 (PROTOCOLS.md §3): clients back off by themselves.
        reason = {"requests": "Too many requests reached in the 5-minute window.",
                  "concurrency": "Too many requests reached: 5 in flight and 95 queued.",
                  "execution_time": "Too much execution time used in the window."}[rejection.kind]
        return bc_error_response(429, "Application_TooManyRequests", reason)

    def fault(self, request: Request, status: int) -> Response:
        # 502/503 carry Retry-After (PROTOCOLS.md §3); 504 is a gateway timeout without it.
        headers = {"Retry-After": "5"} if status in (502, 503) else {}
        return bc_error_response(status, _FAULT_CODES.get(status, "Internal_ServerError"),
                                 "The service is temporarily unavailable. Please try again.", headers)
