"""F&O-shaped errors: `{"error": {"code": "", "message": "An error has occurred.", "innererror": {"message",
"type", "stacktrace"}}}` (the ASP.NET Web API OData shape F&O answers with), and the renderer the common
middleware uses for 401 / 429 / injected faults."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulators.common.throttle import Rejection, Throttle

WRITE_FAILED = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
ODATA = "Microsoft.OData.ODataException"
NOT_FOUND = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataObjectNotFoundException"  # (unconfirmed)
CONCURRENCY = "Microsoft.Dynamics.Ax.Xpp.UpdateConflictException"  # (unconfirmed)
ARGUMENT = "System.ArgumentException"
INVALID_OPERATION = "System.InvalidOperationException"


class FOError(Exception):
    """Raised by handlers; rendered as the service renders its faults."""

    def __init__(self, status: int, message: str, type_: str = ODATA, *, plain: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        # Web API routing errors ("No HTTP resource was found…") carry the message at the top, no innererror.
        self.plain = plain

    def body(self) -> dict[str, Any]:
        if self.plain:
            return {"error": {"code": "", "message": self.message}}
        return {"error": {"code": "", "message": "An error has occurred.",
                          "innererror": {"message": self.message, "type": self.type, "stacktrace": ""}}}


def write_failed(table: str, *infolog: str) -> FOError:
    """A validation failure as the OData write path reports the infolog (status 400; unconfirmed: older
    versions answer 500 for the same)."""
    lines = "; ".join(infolog)
    return FOError(400, f"Write failed for table row of type '{table}'. Infolog: {lines}", WRITE_FAILED)


def no_resource(url: str) -> FOError:
    # (unconfirmed) wording: ASP.NET Web API's routing answer, seen for wrong-case entity set names.
    return FOError(404, f"No HTTP resource was found that matches the request URI '{url}'.", plain=True)


def not_found_for_update() -> FOError:
    return FOError(404, "No resources were found when selecting for update.", NOT_FOUND)


def not_found_read(entity: str) -> FOError:
    return FOError(404, f"No resources were found for the key in entity set '{entity}'.", NOT_FOUND)  # (unconfirmed)


def bad_property(prop: str, public: str) -> FOError:
    return FOError(400, f"The property '{prop}' does not exist on type 'Microsoft.Dynamics.DataEntities.{public}'. "
                   "Make sure to only use property names that are defined by the type or mark the type as open "
                   "type.")


class FinanceOperationsErrors:
    """ErrorRenderer for `EmulatorMiddleware`."""

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle

    def unauthorized(self, request: Request) -> Response:
        return JSONResponse(FOError(401, "Authorization has been denied for this request.",
                                    "System.UnauthorizedAccessException").body(), status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    def throttled(self, request: Request, rejection: Rejection) -> Response:
        # (unconfirmed) wording of priority-based throttling's 429.
        body = FOError(429, "The request was throttled. Retry after the time given in the Retry-After header.",
                       INVALID_OPERATION).body()
        return JSONResponse(body, status_code=429,
                            headers={"Retry-After": str(max(1, math.ceil(rejection.retry_after_s)))})

    def fault(self, request: Request, status: int) -> Response:
        body = FOError(status, "The service is temporarily unavailable.", INVALID_OPERATION).body()
        return JSONResponse(body, status_code=status, headers={"Retry-After": "1"} if status in (502, 503) else None)
