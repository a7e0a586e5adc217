"""The request pipeline both emulators share: bearer authentication → service protection → injected
latency and faults → the API. Each emulator supplies how its errors look on the wire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from emulators.common.faults import FaultInjector
from emulators.common.identity import Identity
from emulators.common.throttle import Rejection, Throttle


class ErrorRenderer(Protocol):
    def unauthorized(self, request: Request) -> Response: ...
    def throttled(self, request: Request, rejection: Rejection) -> Response: ...
    def fault(self, request: Request, status: int) -> Response: ...


class EmulatorMiddleware:
    """Pure ASGI middleware; requests under `open_prefixes` (token endpoint, `/_admin`) bypass it."""

    def __init__(self, app: ASGIApp, *, identity: Identity, throttle: Throttle, faults: FaultInjector,
                 errors: ErrorRenderer, open_prefixes: tuple[str, ...],
                 is_open: Callable[[str], bool] | None = None) -> None:
        self.app = app
        self.identity = identity
        self.throttle = throttle
        self.faults = faults
        self.errors = errors
        self.open_prefixes = open_prefixes
        self.is_open = is_open or (lambda path: False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(self.open_prefixes) or self.is_open(path):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        client = self.identity.authenticate(request.headers.get("authorization"))
        if client is None:
            await self.errors.unauthorized(request)(scope, receive, send)
            return
        rejection = await self.throttle.acquire(client.user_id)
        if rejection is not None:
            await self.errors.throttled(request, rejection)(scope, receive, send)
            return
        started = time.monotonic()
        try:
            await self.faults.request_delay()
            fault = self.faults.draw()
            if fault == "error":
                await self.errors.fault(request, self.faults.faults.error_status)(scope, receive, send)
                return
            if fault == "timeout":
                await asyncio.sleep(self.faults.faults.timeout_seconds)
                await self.errors.fault(request, 504)(scope, receive, send)
                return
            scope.setdefault("state", {})["client"] = client
            await self.app(scope, receive, send)
        finally:
            await self.throttle.release(client.user_id, (time.monotonic() - started) * 1000)
