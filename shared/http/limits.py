"""Per-target concurrency limits that follow the service, so we run as much in parallel as it allows and never
trip its protection limits by ourselves.

Business Central processes 5 requests per user at once and queues the rest (beyond 100 it answers 429);
Dataverse allows 52 concurrent requests per user and web server and recommends a degree of parallelism in
`x-ms-dop-hint`. A target is a service (`dataverse`) or a service and its user (`dataverse@<client id>`): each
target gets its own adaptive budget (`shared.http.adaptive`), the service's rules are shared by its users.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx

from shared.http.adaptive import AdaptiveBudget, Feedback, ServiceLimits, feedback_of
from shared.http.classify import Outcome

BUSINESS_CENTRAL = "business_central"
DATAVERSE = "dataverse"
FINANCE_OPERATIONS = "finance_operations"
USER_SEPARATOR = "@"

# Caps are the services' own limits; the guards stay 10 % under the 6 000 requests / 1 200 s of execution time
# per 5 minutes, leaving room for other clients of the same user and for the server counting differently.
DEFAULT_SERVICES: dict[str, ServiceLimits] = {
    BUSINESS_CENTRAL: ServiceLimits(cap=5, requests_per_window=5400),
    DATAVERSE: ServiceLimits(cap=52, initial=4, follow_dop_hint=True, requests_per_window=5400,
                             execution_budget_s=1080.0),
    FINANCE_OPERATIONS: ServiceLimits(cap=8),  # no documented per-user limits: F&O throttles by resource use
}

# (target, admission number) of the slot the current task holds, so `observe` knows which request answered.
_ADMISSION: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("dualsync_admission",
                                                                                    default=None)


def target_key(service: str, user: str | None = None) -> str:
    """The limiter target of `service` used as `user` (the service alone when the user is unknown)."""
    return f"{service}{USER_SEPARATOR}{user}" if user else service


def service_of(target: str) -> str:
    return target.split(USER_SEPARATOR, 1)[0]


def client_id_of(credential: object) -> str | None:
    """The client id a credential signs in as, when it says. azure-identity's `ClientSecretCredential` keeps it
    as `_client_id` (no public attribute); a managed identity does not say: the key is then the service alone,
    which is still per user as long as one process uses one identity per service."""
    for name in ("client_id", "_client_id"):
        value = getattr(credential, name, None)
        if isinstance(value, str) and value:
            return value
    return None


class ConcurrencyLimiter:
    """`async with limiter.slot("business_central"): …` admits at most `limit(target)` holders at once; the limit
    adapts to the answers fed back with `observe` / `observe_response` (without feedback it stays at its start).

    `limits` maps a service to its cap (an int keeps that service's other defaults) or to `ServiceLimits`.
    Services not listed use `default` as their cap; with `default=None` an unknown service is an error, which
    catches a misspelt target name instead of silently running it unlimited. Use one limiter per event loop.
    """

    def __init__(self, limits: Mapping[str, int | ServiceLimits] | None = None, *, default: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        raw = DEFAULT_SERVICES if limits is None else limits
        self._services = {service: _as_limits(service, value) for service, value in raw.items()}
        if default is not None and default < 1:
            raise ValueError(f"concurrency limit for 'default' must be at least 1, got {default}")
        self._default = default
        self._clock = clock
        self._budgets: dict[str, AdaptiveBudget] = {}
        self._waiters: dict[str, deque[asyncio.Future[int]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._service_in_use: dict[str, int] = {}
        self._service_peak: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> ConcurrencyLimiter:
        """From `shared.settings.Settings` (duck-typed, so this module does not import settings): the ERP of
        `erp.kind` and Dataverse, each with its cap, initial value and guards."""
        erp, crm = settings.erp, settings.crm
        return cls({erp.kind: _from_group(erp.kind, erp), DATAVERSE: _from_group(DATAVERSE, crm)}, **kwargs)

    # -- the interface every caller uses ---------------------------------------------------------------------

    def limit(self, target: str) -> int:
        """The current limit of `target` (its start until it has been used)."""
        budget = self._budgets.get(target)
        return budget.limit if budget is not None else self.service_limits(target).start

    @asynccontextmanager
    async def slot(self, target: str) -> AsyncIterator[None]:
        budget = self._budget(target)
        admission = await self._acquire(target, budget)
        started = self._clock()
        token = _ADMISSION.set((target, admission))
        try:
            yield
        finally:
            _ADMISSION.reset(token)
            self._release(target, budget, started)

    def in_use(self, target: str) -> int:
        """Slots held right now; a bare service name counts every user of the service."""
        if USER_SEPARATOR not in target:
            return self._service_in_use.get(target, 0)
        budget = self._budgets.get(target)
        return budget.in_use if budget is not None else 0

    def peak(self, target: str) -> int:
        """The most slots ever held at once (for tests and benchmarks); a bare service name counts its users
        together."""
        if USER_SEPARATOR not in target:
            return self._service_peak.get(target, 0)
        budget = self._budgets.get(target)
        return budget.peak if budget is not None else 0

    # -- feedback and configuration --------------------------------------------------------------------------

    def observe(self, target: str, status: int | None, retry_after: float | None = None,
                dop_hint: int | None = None, *, outcome: Outcome | None = None) -> None:
        """Feed back one attempt's answer: `status` None for no answer (transport error); `outcome` the
        classifier's verdict when known. Called inside the request's slot, it knows which request answered."""
        self.observe_feedback(target, Feedback(status, outcome, retry_after, dop_hint))

    def observe_response(self, target: str, response: httpx.Response) -> None:
        self.observe_feedback(target, feedback_of(response))

    def observe_feedback(self, target: str, feedback: Feedback) -> None:
        held = _ADMISSION.get()
        admission = held[1] if held is not None and held[0] == target else None
        self._budget(target).observe(self._clock(), feedback, admission)
        self._wake(target)  # the limit may have grown

    def restrict(self, target: str, cap: int) -> None:
        """Never more than `cap` for the service of `target` (a connector's `max_concurrency`): lowers the cap,
        never raises it, and makes the service known to this limiter if it was not."""
        service = service_of(target)
        if cap < 1:
            raise ValueError(f"concurrency limit for {service!r} must be at least 1, got {cap}")
        try:
            current = self.service_limits(service)
        except KeyError:
            current = DEFAULT_SERVICES.get(service) or ServiceLimits(cap=cap)
        limits = replace(current, cap=min(current.cap, cap))
        self._services[service] = limits
        for key, budget in self._budgets.items():
            if service_of(key) == service:
                budget.set_limits(limits)

    def service_limits(self, target: str) -> ServiceLimits:
        service = service_of(target)
        if service in self._services:
            return self._services[service]
        if self._default is None:
            raise KeyError(f"no concurrency limit configured for target {target!r} "
                           f"(known: {', '.join(sorted(self._services))})")
        return ServiceLimits(cap=self._default)

    # -- waiting in line -------------------------------------------------------------------------------------

    def _budget(self, target: str) -> AdaptiveBudget:
        budget = self._budgets.get(target)
        if budget is None:
            budget = self._budgets[target] = AdaptiveBudget(self.service_limits(target))
        return budget

    async def _acquire(self, target: str, budget: AdaptiveBudget) -> int:
        """First come, first served: a request waits behind earlier ones even when a slot is free for it."""
        queue = self._waiters.setdefault(target, deque())
        if not queue and budget.delay(self._clock()) == 0:
            return self._admit(target, budget)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queue.append(future)
        self._wake(target)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # admitted as it was cancelled: give the slot back
                self._release(target, budget, self._clock())
            elif future in queue:
                queue.remove(future)
            raise

    def _admit(self, target: str, budget: AdaptiveBudget) -> int:
        service = service_of(target)
        self._service_in_use[service] = in_use = self._service_in_use.get(service, 0) + 1
        self._service_peak[service] = max(self._service_peak.get(service, 0), in_use)
        return budget.admit(self._clock())

    def _release(self, target: str, budget: AdaptiveBudget, started: float) -> None:
        budget.release(self._clock(), started)
        self._service_in_use[service_of(target)] -= 1
        self._wake(target)

    def _wake(self, target: str) -> None:
        """Admit waiters from the front while the budget allows; when only time stands in the way (a hold, a
        full window), come back then. A slot released or a limit raised calls this again."""
        queue = self._waiters.get(target)
        budget = self._budgets.get(target)
        while queue and budget is not None:
            if queue[0].done():  # cancelled while waiting
                queue.popleft()
                continue
            delay = budget.delay(self._clock())
            if delay is None:
                return
            if delay > 0:
                self._wake_later(target, delay)
                return
            queue.popleft().set_result(self._admit(target, budget))

    def _wake_later(self, target: str, delay: float) -> None:
        timer = self._timers.pop(target, None)
        if timer is not None:
            timer.cancel()
        self._timers[target] = asyncio.get_running_loop().call_later(delay, self._on_timer, target)

    def _on_timer(self, target: str) -> None:
        self._timers.pop(target, None)
        self._wake(target)


def _as_limits(service: str, value: int | ServiceLimits) -> ServiceLimits:
    if isinstance(value, ServiceLimits):
        return value
    if value < 1:
        raise ValueError(f"concurrency limit for {service!r} must be at least 1, got {value}")
    base = DEFAULT_SERVICES.get(service)
    return replace(base, cap=value) if base is not None else ServiceLimits(cap=value)


def _from_group(service: str, group: Any) -> ServiceLimits:
    """A settings group's cap (`max_concurrency`), start and guards over the service's defaults; a guard set to
    0 is off, one left unset (None) keeps the service's default."""
    base = DEFAULT_SERVICES.get(service) or ServiceLimits(cap=group.max_concurrency)
    initial = getattr(group, "initial_concurrency", None)
    requests = getattr(group, "requests_per_window", None)
    execution = getattr(group, "execution_budget_s", None)
    return replace(base, cap=group.max_concurrency, initial=base.initial if initial is None else initial,
                   requests_per_window=base.requests_per_window if requests is None else (requests or None),
                   execution_budget_s=base.execution_budget_s if execution is None else (execution or None))
