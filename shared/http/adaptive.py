"""How many requests one user may have in flight against one service right now: the pure decisions behind
`shared.http.limits.ConcurrencyLimiter` (no asyncio here, every method takes the time, so tests use a fake clock).

Concurrency follows the answers (AIMD, as TCP congestion control):

- it starts at the service's initial value (Dataverse: the first `x-ms-dop-hint` the service sends, the degree of
  parallelism Microsoft recommends for the environment; Business Central: its 5 requests processed per user);
- after a run of clean answers — as many as the current limit, i.e. about one round trip at that limit, and only
  when the limit was actually reached, so an idle limit does not creep up — it grows by one;
- a 429 (or a 503 "server busy") halves it, once per round: answers to requests admitted before the cut came back
  under the old limit and say nothing new; the service's Retry-After holds every new request back until it ends;
- the limit that was refused becomes a ceiling for `ceiling_memory_s`: growth stops one below it, so the limit
  settles under the server's limit instead of probing (and being refused) again every few requests;
- it never exceeds the service's hard cap (Dataverse 52 per user, BC 5) and never goes below 1.

Two guards keep a long run under Dataverse's service protection (per user, 300-second sliding window) before the
server starts refusing: at most `requests_per_window` requests admitted per window (Dataverse and BC refuse beyond
6 000), and at most `execution_budget_s` seconds of request time per window (Dataverse: 1 200 s of "combined
execution time"). Our request time is wall-clock time from admission to release, network and token included, so it
overestimates the server's execution time and errs on the side of waiting. Requests still in flight are counted
when they finish, as the server counts them. Each request inside a `$batch` is not seen here: the guards count
HTTP requests, so a batch-heavy run is held back by Retry-After if the server counts otherwise.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

import httpx

from shared.http.classify import Outcome, classify, parse_retry_after

DOP_HINT_HEADER = "x-ms-dop-hint"
PROTECTION_WINDOW_S = 300.0  # Dataverse and Business Central both count per user over 5 minutes


class Signal(Enum):
    """What one answer says about the load we put on the service."""

    CLEAN = "clean"          # answered normally (errors of the request itself included): room to grow
    NEUTRAL = "neutral"      # timeouts, dropped connections, other 5xx: no verdict on our concurrency
    THROTTLED = "throttled"  # 429 / service protection, 503 server busy: too much, halve


def signal_of(status: int | None, outcome: Outcome | None = None) -> Signal:
    """The signal of one attempt's answer; `status` None means no answer (a transport error)."""
    if outcome is Outcome.RATE_LIMITED or status in (429, 503):
        return Signal.THROTTLED
    if status is None or status >= 500 or outcome is Outcome.RETRY:
        return Signal.NEUTRAL
    return Signal.CLEAN  # a 400, 404 or 412 is the record's problem, served at full speed


@dataclass(frozen=True)
class Feedback:
    """What the limiter reads from one response."""

    status: int | None
    outcome: Outcome | None = None
    retry_after: float | None = None
    dop_hint: int | None = None

    @property
    def signal(self) -> Signal:
        return signal_of(self.status, self.outcome)


def feedback_of(response: httpx.Response) -> Feedback:
    """Status, verdict (errors only: service codes such as BC's Application_TooManyRequests decide), Retry-After
    and `x-ms-dop-hint` of a response."""
    outcome = classify(response).outcome if response.status_code >= 400 else None
    return Feedback(response.status_code, outcome, parse_retry_after(response.headers.get("Retry-After")),
                    parse_dop_hint(response.headers.get(DOP_HINT_HEADER)))


def parse_dop_hint(value: str | None) -> int | None:
    """A positive integer, or None when absent or malformed (a bad header must not change our concurrency)."""
    try:
        hint = int((value or "").strip())
    except ValueError:
        return None
    return hint if hint >= 1 else None


@dataclass(frozen=True)
class ServiceLimits:
    """One service's rules, applied to each of its users separately.

    `cap` is the hard upper bound; `initial` the starting limit (None: the cap), adopted from the first
    `x-ms-dop-hint` instead when `follow_dop_hint`. The guards are off when None.
    """

    cap: int
    initial: int | None = None
    follow_dop_hint: bool = False
    requests_per_window: int | None = None
    execution_budget_s: float | None = None
    window_s: float = PROTECTION_WINDOW_S
    ceiling_memory_s: float = 60.0

    def __post_init__(self) -> None:
        if self.cap < 1 or (self.initial is not None and self.initial < 1):
            raise ValueError(f"concurrency cap and initial value must be at least 1, got {self.cap}, {self.initial}")
        if self.requests_per_window is not None and self.requests_per_window < 1:
            raise ValueError("requests_per_window must be at least 1 (None turns the guard off)")
        if self.execution_budget_s is not None and self.execution_budget_s <= 0:
            raise ValueError("execution_budget_s must be positive (None turns the guard off)")
        if self.window_s <= 0 or self.ceiling_memory_s < 0:
            raise ValueError("window_s must be positive and ceiling_memory_s not negative")

    def clamp(self, value: int) -> int:
        return max(1, min(self.cap, value))

    @property
    def start(self) -> int:
        return self.clamp(self.initial if self.initial is not None else self.cap)


class AdaptiveBudget:
    """The state of one service + user: current limit, slots held, the hold and the two sliding windows."""

    def __init__(self, limits: ServiceLimits) -> None:
        self.limits = limits
        self.limit = limits.start
        self.in_use = 0
        self.peak = 0
        self.hold_until = -math.inf     # no new request before this time (the server's Retry-After)
        self.ceiling: int | None = None  # the limit last refused, remembered until ceiling_until
        self.ceiling_until = -math.inf
        self._hinted = False
        self._clean = 0                 # clean answers since the limit last changed
        self._saturated = False         # every slot was taken at some point since the limit last changed
        self._admitted = 0              # admissions so far; numbers the requests
        self._cut_at = 0                # the admission number at the last halving
        self._sent: deque[float] = deque()
        self._executed: deque[tuple[float, float]] = deque()  # (finished at, seconds taken)
        self._executed_total = 0.0

    # -- admission ------------------------------------------------------------------------------------------

    def delay(self, now: float) -> float | None:
        """0: a request may start now; seconds: not before then (hold, windows); None: wait for a free slot."""
        if self.in_use >= self.limit:
            return None
        return max(0.0, self.hold_until - now, self._rate_delay(now), self._execution_delay(now))

    def admit(self, now: float) -> int:
        """Take a slot (the caller checked `delay`); returns the request's admission number for `observe`."""
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        self._saturated = self._saturated or self.in_use >= self.limit
        self._admitted += 1
        if self.limits.requests_per_window is not None:
            self._sent.append(now)
        return self._admitted

    def release(self, now: float, started: float) -> None:
        self.in_use -= 1
        if self.limits.execution_budget_s is not None:
            taken = max(0.0, now - started)
            self._executed.append((now, taken))
            self._executed_total += taken

    def _rate_delay(self, now: float) -> float:
        allowed = self.limits.requests_per_window
        if allowed is None:
            return 0.0
        horizon = now - self.limits.window_s
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()
        if len(self._sent) < allowed:
            return 0.0
        # The window has room again once the oldest requests beyond the allowance have left it.
        return self._sent[len(self._sent) - allowed] + self.limits.window_s - now

    def _execution_delay(self, now: float) -> float:
        budget = self.limits.execution_budget_s
        if budget is None:
            return 0.0
        horizon = now - self.limits.window_s
        while self._executed and self._executed[0][0] <= horizon:
            self._executed_total -= self._executed.popleft()[1]
        if not self._executed:
            self._executed_total = 0.0  # no float drift survives an empty window
        if self._executed_total < budget:
            return 0.0
        excess, leaving = self._executed_total - budget, 0.0
        for finished, taken in self._executed:
            leaving += taken
            if leaving > excess:
                return finished + self.limits.window_s - now
        return 0.0  # unreachable: the whole window leaving removes more than the excess

    # -- feedback -------------------------------------------------------------------------------------------

    def observe(self, now: float, feedback: Feedback, admission: int | None = None) -> None:
        """Adjust to one attempt's answer. `admission` is the number `admit` gave that request (None: unknown,
        treated as sent under the current limit)."""
        self._follow_hint(feedback.dop_hint)
        signal = feedback.signal
        if signal is Signal.THROTTLED:
            self._throttled(now, feedback.retry_after, admission)
        elif signal is Signal.NEUTRAL:
            self._clean = 0
        else:
            self._answered_clean(now)

    def set_limits(self, limits: ServiceLimits) -> None:
        self.limits = limits
        self.limit = limits.clamp(self.limit)

    def _follow_hint(self, hint: int | None) -> None:
        # Only the first hint sets the start, and only before any refusal: afterwards the answers know better.
        if hint is None or not self.limits.follow_dop_hint or self._hinted:
            return
        self._hinted = True
        if self.ceiling is None:
            self._set(self.limits.clamp(hint))

    def _throttled(self, now: float, retry_after: float | None, admission: int | None) -> None:
        if retry_after is not None:
            self.hold_until = max(self.hold_until, now + retry_after)
        if admission is not None and admission <= self._cut_at:
            return  # sent before the last cut: that cut already answered this overload
        self.ceiling, self.ceiling_until = self.limit, now + self.limits.ceiling_memory_s
        self._cut_at = self._admitted
        self._set(max(1, self.limit // 2))

    def _answered_clean(self, now: float) -> None:
        self._clean += 1
        if self._clean < self.limit or not self._saturated or self.limit >= self.limits.cap:
            return
        if self.ceiling is not None and now >= self.ceiling_until:
            self.ceiling = None  # long enough without a refusal: probe upwards again
        if self.ceiling is not None and self.limit + 1 >= self.ceiling:
            return
        self._set(self.limit + 1)

    def _set(self, limit: int) -> None:
        self.limit = limit
        self._clean = 0
        self._saturated = False  # reached again only by requests admitted under the new limit
