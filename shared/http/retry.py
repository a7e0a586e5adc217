"""One retry executor for every HTTP call: exponential back-off with full jitter, Retry-After honoured,
bounded by attempts and total time. Classification comes from `shared.http.classify`; this module only
decides *when* to try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx

from shared.http.classify import Classification, Outcome, classify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """The budget: at most `max_attempts` tries and `max_elapsed` seconds from the first try.

    Transient failures wait `uniform(0, min(max_delay, base_delay * 2**(n-1)))` ("full jitter"). A 429
    without Retry-After (Business Central sends none) waits at least half of the same curve built on
    `rate_limit_base`, so a throttled caller does not hammer back at once. A Retry-After longer than the
    remaining time budget ends the attempts at once instead of sleeping past the budget.
    """

    max_attempts: int = 6
    max_elapsed: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    rate_limit_base: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if min(self.max_elapsed, self.base_delay, self.max_delay, self.rate_limit_base) < 0:
            raise ValueError("RetryPolicy delays and budget must not be negative")

    @classmethod
    def from_settings(cls, retry: Any) -> RetryPolicy:
        """From `shared.settings.RetrySettings` (duck-typed, so this module does not import settings)."""
        return cls(max_attempts=retry.max_attempts, max_elapsed=retry.max_elapsed_s, base_delay=retry.base_delay_s,
                   max_delay=retry.max_delay_s, rate_limit_base=retry.rate_limit_base_s)

    def delay(self, attempt: int, verdict: Classification, rand: float) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); `rand` is uniform in [0, 1)."""
        if verdict.retry_after is not None:
            # Honour the service's wait, plus up to 10 % so a crowd of throttled callers spreads out.
            return verdict.retry_after * (1 + 0.1 * rand)
        if verdict.outcome is Outcome.RATE_LIMITED:
            cap = min(self.max_delay, self.rate_limit_base * 2 ** (attempt - 1))
            return cap * (0.5 + 0.5 * rand)
        return rand * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


class RequestError(Exception):
    """A request that did not succeed; `classification` says why, `response` is the last one (if any)."""

    def __init__(self, message: str, classification: Classification, *, response: httpx.Response | None = None,
                 attempts: int = 1) -> None:
        super().__init__(message)
        self.classification = classification
        self.response = response
        self.attempts = attempts


class ConflictError(RequestError):
    """412 / Request_EntityChanged / already exists: re-read the record and reconcile."""


class NotFoundError(RequestError):
    """404 or a service "does not exist" code."""


class PermanentError(RequestError):
    """Validation, authentication, privilege or another failure that retrying cannot fix."""


class RetriesExhausted(RequestError):
    """The budget (attempts or time) was spent on transient failures; the last classification is attached."""


_ERRORS: dict[Outcome, type[RequestError]] = {
    Outcome.CONFLICT: ConflictError,
    Outcome.NOT_FOUND: NotFoundError,
    Outcome.PERMANENT: PermanentError,
}

Operation = Callable[[], Awaitable[httpx.Response]]
SlotFactory = Callable[[], AbstractAsyncContextManager[object]]
# Told of every wait a throttling answer (429, server busy) imposes: (describe, seconds). shared.telemetry counts
# them per service, and per mapping and direction for the change being processed.
ThrottleHook = Callable[[str, float], None]
throttle_hooks: list[ThrottleHook] = []


class RetryExecutor:
    """Runs an operation until it succeeds, fails for good, or the budget is spent.

    `operation` sends one request and returns the response (any status) or raises a transport error.
    `slot`, when given, is entered around each attempt only (e.g. a concurrency-limiter slot), so a
    caller sleeping in back-off does not hold a slot another request could use.
    """

    def __init__(self, policy: RetryPolicy | None = None, *,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 random: Callable[[], float] = _random.random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self.retries = 0  # retries performed by this executor, for metrics and benchmarks

    async def run(self, operation: Operation, *, slot: SlotFactory | None = None,
                  describe: str = "request") -> httpx.Response:
        """The successful response; raises ConflictError / NotFoundError / PermanentError / RetriesExhausted."""
        policy = self.policy
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            async with slot() if slot else contextlib.nullcontext():
                try:
                    response = await operation()
                except (httpx.HTTPError, OSError, TimeoutError) as exc:
                    verdict = classify(exc)
                    if isinstance(exc, httpx.HTTPStatusError):
                        response = exc.response
                    if not verdict.retryable:
                        raise _ERRORS.get(verdict.outcome, PermanentError)(
                            f"{describe} failed: {verdict.describe()}", verdict, response=response,
                            attempts=attempt) from exc
                else:
                    verdict = classify(response)
            if verdict.outcome is Outcome.SUCCESS and response is not None:
                return response
            if not verdict.retryable:
                raise _ERRORS[verdict.outcome](f"{describe} failed: {verdict.describe()}", verdict,
                                               response=response, attempts=attempt)
            wait = policy.delay(attempt, verdict, self._random())
            elapsed = self._clock() - started
            if attempt >= policy.max_attempts or elapsed + wait > policy.max_elapsed:
                raise RetriesExhausted(
                    f"{describe} gave up after {attempt} attempt(s) in {elapsed:.1f}s: {verdict.describe()}",
                    verdict, response=response, attempts=attempt)
            log.info("%s: %s; retry %d in %.2fs", describe, verdict.describe(), attempt, wait)
            if verdict.outcome is Outcome.RATE_LIMITED:
                for hook in throttle_hooks:
                    hook(describe, wait)
            if response is not None:
                await response.aclose()
            self.retries += 1
            await self._sleep(wait)
