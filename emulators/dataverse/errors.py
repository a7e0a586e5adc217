"""Dataverse-shaped errors: `{"error": {"code": "0x…", "message": "…"}}` with the service's hex codes, and the
renderer the common middleware uses for 401 / 429 / injected faults."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulators.common.throttle import Limits, Rejection, Throttle

# Hex codes as the Web API returns them (Microsoft Learn: "Web service error codes", "Service protection API
# limits", "Perform conditional operations using the Web API").
NOT_FOUND = "0x80040217"  # ObjectDoesNotExist
DUPLICATE = "0x80040237"  # DuplicateRecord: "A record with matching key values already exists."
DUPLICATE_KEY = "0x80060892"  # DuplicateRecordEntityKey
CONCURRENCY = "0x80060882"  # ConcurrencyVersionMismatch
BAD_PROPERTY = "0x80060888"  # unknown property / unsupported OData construct
BAD_PAYLOAD = "0x80048d19"  # "Error identified in Payload provided by the user…"
QUERY_SYNTAX = "0x8006088a"  # "Bad Request - Error in query syntax."
INVALID_ARGUMENT = "0x80040203"
VALIDATION = "0x8004431a"  # option set value out of range
UNEXPECTED = "0x80040216"
THROTTLE_CODES = {"requests": "0x80072322", "execution_time": "0x80072321", "concurrency": "0x80072326"}


class DataverseError(Exception):
    """Raised by handlers; rendered as the service renders its faults."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(logical: str, rid: str) -> DataverseError:
    return DataverseError(404, NOT_FOUND, f"Entity '{logical}' With Id = {rid} Does Not Exist")


def bad_property(prop: str, logical: str) -> DataverseError:
    return DataverseError(400, BAD_PROPERTY, f"The property '{prop}' does not exist on type "
                          f"'Microsoft.Dynamics.CRM.{logical}'. Make sure to only use property names that are "
                          "defined by the type.")


def throttle_message(rejection: Rejection, lim: Limits) -> str:
    """Messages from Microsoft Learn, "Service protection API limits" (errors returned)."""
    if rejection.kind == "requests":
        return (f"Number of requests exceeded the limit of {lim.window_requests} over time window of "
                f"{int(lim.window_seconds)} seconds.")
    if rejection.kind == "execution_time":
        return (f"Combined execution time of incoming requests exceeded limit of {lim.window_execution_ms:,} "
                f"milliseconds over time window of {int(lim.window_seconds)} seconds. Decrease number of "
                "concurrent requests or reduce the duration of requests and try again later.")
    return f"Number of concurrent requests exceeded the limit of {lim.max_concurrent}."


class DataverseErrors:
    """ErrorRenderer for `EmulatorMiddleware`."""

    def __init__(self, tenant_id: str, throttle: Throttle) -> None:
        self.tenant_id = tenant_id
        self.throttle = throttle

    def unauthorized(self, request: Request) -> Response:
        # Dataverse answers 401 with an empty body and a Bearer challenge naming the authority to ask.
        base = str(request.base_url).rstrip("/")
        challenge = (f"Bearer authorization_uri={base}/{self.tenant_id}/oauth2/authorize, "
                     f"resource_id={base}/")
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})

    def throttled(self, request: Request, rejection: Rejection) -> Response:
        body = {"error": {"code": THROTTLE_CODES[rejection.kind],
                          "message": throttle_message(rejection, self.throttle.limits)}}
        return JSONResponse(body, status_code=429,
                            headers={"Retry-After": str(max(1, math.ceil(rejection.retry_after_s)))})

    def fault(self, request: Request, status: int) -> Response:
        # Injected fault (not a documented body: the real gateway's 5xx bodies vary); Dataverse-shaped anyway.
        return JSONResponse({"error": {"code": UNEXPECTED, "message": "The service is temporarily unavailable. "
                                       "Please try again later."}}, status_code=status,
                            headers={"Retry-After": "1"} if status in (502, 503) else None)
