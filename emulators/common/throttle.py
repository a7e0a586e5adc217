"""Service protection limits per user, as both services enforce them.

Dataverse: requests per sliding window, combined execution time per window, and concurrent requests;
beyond any of them → 429 with Retry-After. Business Central: 5 requests processed at once and up to 95
more queued, beyond that → 429 (no Retry-After), plus requests per sliding window.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

RejectionKind = Literal["requests", "execution_time", "concurrency"]


class Limits(BaseModel):
    """Editable at start or through `/_admin/config`."""

    enabled: bool = True
    window_seconds: float = Field(300.0, gt=0)
    window_requests: int = Field(6000, ge=1)
    # Combined server time spent on a user's requests per window (Dataverse: 1 200 000 ms); None = unlimited.
    window_execution_ms: int | None = None
    max_concurrent: int = Field(52, ge=1)
    # Requests allowed to wait for a free slot (BC: 95) before the next is refused; 0 = refuse at once.
    max_queued: int = Field(0, ge=0)


@dataclass(frozen=True)
class Rejection:
    kind: RejectionKind
    retry_after_s: float


class _UserState:
    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.execution: deque[tuple[float, float]] = deque()
        self.in_flight = 0
        self.waiting = 0
        self.slot_freed = asyncio.Condition()


class Throttle:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._users: dict[str, _UserState] = {}

    def _state(self, user: str) -> _UserState:
        return self._users.setdefault(user, _UserState())

    async def acquire(self, user: str) -> Rejection | None:
        """Admit a request (possibly after queueing) or say why not. Pair every admission with `release`."""
        lim = self.limits
        if not lim.enabled:
            self._state(user).in_flight += 1
            return None
        st = self._state(user)
        now = time.monotonic()
        _trim(st.requests, now - lim.window_seconds)
        while st.execution and st.execution[0][0] < now - lim.window_seconds:
            st.execution.popleft()
        if len(st.requests) >= lim.window_requests:
            return Rejection("requests", max(1.0, st.requests[0] + lim.window_seconds - now))
        if lim.window_execution_ms is not None:
            spent = sum(ms for _, ms in st.execution)
            if spent >= lim.window_execution_ms:
                return Rejection("execution_time", max(1.0, st.execution[0][0] + lim.window_seconds - now))
        if st.in_flight >= lim.max_concurrent:
            if st.waiting >= lim.max_queued:
                return Rejection("concurrency", 1.0)
            st.waiting += 1
            try:
                async with st.slot_freed:
                    await st.slot_freed.wait_for(lambda: st.in_flight < self.limits.max_concurrent)
            finally:
                st.waiting -= 1
        st.in_flight += 1
        st.requests.append(time.monotonic())
        return None

    async def release(self, user: str, execution_ms: float) -> None:
        st = self._state(user)
        st.in_flight -= 1
        st.execution.append((time.monotonic(), execution_ms))
        async with st.slot_freed:
            st.slot_freed.notify()


def _trim(times: deque[float], horizon: float) -> None:
    while times and times[0] < horizon:
        times.popleft()
