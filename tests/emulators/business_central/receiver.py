"""A webhook receiver for tests: answers the handshake and records notifications, with switchable misbehaviour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


class Receiver:
    def __init__(self) -> None:
        self.handshake = "echo"  # echo | wrong | error | slow
        self.slow_seconds = 1.0
        self.statuses: list[int] = []  # answers for the next notifications (then 200)
        self.handshakes: list[str] = []
        self.notifications: list[dict[str, Any]] = []
        self.attempts = 0
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            self.handshakes.append(token)
            if self.handshake == "wrong":
                return PlainTextResponse("not-the-token")
            if self.handshake == "error":
                return PlainTextResponse("boom", status_code=500)
            if self.handshake == "slow":
                await asyncio.sleep(self.slow_seconds)
            return PlainTextResponse(token)
        self.attempts += 1
        status = self.statuses.pop(0) if self.statuses else 200
        if 200 <= status < 300:
            self.notifications.append(await request.json())
        return Response(status_code=status)

    def notices(self) -> list[dict[str, Any]]:
        return [n for payload in self.notifications for n in payload["value"]]


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
