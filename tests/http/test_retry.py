"""The retry executor with a fake clock and sleep, and a scripted server behind httpx.MockTransport."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.http import (
    Classification,
    ConcurrencyLimiter,
    ConflictError,
    NotFoundError,
    Outcome,
    PermanentError,
    RetriesExhausted,
    RetryExecutor,
    RetryPolicy,
)


class FakeTime:
    """A clock that only moves when the executor sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(answers: Iterable[httpx.Response | Exception]) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose server answers from a script, one entry per request."""
    script = iter(answers)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(script)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="https://svc"), seen


def executor(policy: RetryPolicy | None = None, rand: float = 0.5) -> tuple[RetryExecutor, FakeTime]:
    fake = FakeTime()
    return RetryExecutor(policy, sleep=fake.sleep, random=lambda: rand, clock=fake.clock), fake


async def test_rides_out_5xx_timeouts_and_429_then_succeeds() -> None:
    client, seen = scripted([httpx.Response(503), httpx.ReadTimeout("slow"),
                             httpx.Response(429, headers={"Retry-After": "4"}), httpx.Response(200, json={"ok": 1})])
    run, fake = executor()

    response = await run.run(lambda: client.get("/x"))

    assert response.json() == {"ok": 1} and len(seen) == 4
    assert fake.sleeps[0] == 0.25 and fake.sleeps[1] == 0.5  # rand 0.5 × 0.5·2^(n-1)
    assert 4 <= fake.sleeps[2] <= 4.4                      # Retry-After honoured (+ ≤10 % spread)
    assert run.retries == 3


async def test_bc_429_without_retry_after_backs_off_by_itself() -> None:
    client, _ = scripted([httpx.Response(429), httpx.Response(429), httpx.Response(204)])
    run, fake = executor(rand=0.0)

    await run.run(lambda: client.get("/x"))

    assert fake.sleeps == [1.0, 2.0]  # at least half of rate_limit_base·2^(n-1), never ~0


@pytest.mark.parametrize(("response", "error"), [
    (httpx.Response(412, json={"error": {"code": "0x80060882", "message": "stale"}}), ConflictError),
    (httpx.Response(404), NotFoundError),
    (httpx.Response(400, json={"error": {"code": "BadRequest", "message": "bad"}}), PermanentError),
])
async def test_non_retryable_outcomes_raise_at_once(response: httpx.Response, error: type[Exception]) -> None:
    client, seen = scripted([response])
    run, fake = executor()

    with pytest.raises(error) as caught:
        await run.run(lambda: client.get("/x"), describe="GET customer")

    assert len(seen) == 1 and fake.sleeps == []
    assert caught.value.response is not None and caught.value.response.status_code == response.status_code
    assert str(caught.value).startswith("GET customer failed")


async def test_attempt_budget_is_bounded_and_carries_the_last_classification() -> None:
    client, seen = scripted([httpx.Response(502)] * 3 + [httpx.Response(503, headers={"Retry-After": "1"})])
    run, _ = executor(RetryPolicy(max_attempts=4))

    with pytest.raises(RetriesExhausted) as caught:
        await run.run(lambda: client.get("/x"))

    assert len(seen) == 4 and caught.value.attempts == 4
    assert caught.value.classification.status == 503 and caught.value.classification.outcome is Outcome.RETRY


async def test_time_budget_stops_before_sleeping_past_it() -> None:
    client, seen = scripted([httpx.Response(429, headers={"Retry-After": "100"})])
    run, fake = executor(RetryPolicy(max_elapsed=60))

    with pytest.raises(RetriesExhausted, match="gave up after 1 attempt"):
        await run.run(lambda: client.get("/x"))
    assert fake.sleeps == [] and len(seen) == 1


async def test_programming_errors_are_not_retried() -> None:
    run, _ = executor()

    async def broken() -> httpx.Response:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await run.run(broken)


async def test_transport_error_that_cannot_heal_is_permanent() -> None:
    client, seen = scripted([httpx.UnsupportedProtocol("nope")])
    run, _ = executor()
    with pytest.raises(PermanentError, match="unsupported protocol"):
        await run.run(lambda: client.get("/x"))
    assert len(seen) == 1


async def test_slot_is_held_per_attempt_not_during_back_off() -> None:
    limiter = ConcurrencyLimiter({"bc": 1})
    held_while_sleeping: list[int] = []

    async def sleep(_: float) -> None:
        held_while_sleeping.append(limiter.in_use("bc"))
        await asyncio.sleep(0)

    client, _ = scripted([httpx.Response(503), httpx.Response(200)])
    run = RetryExecutor(sleep=sleep, random=lambda: 0.0)
    await run.run(lambda: client.get("/x"), slot=lambda: limiter.slot("bc"))
    assert held_while_sleeping == [0] and limiter.peak("bc") == 1


@given(attempt=st.integers(1, 30), rand=st.floats(0, 1, exclude_max=True),
       base=st.floats(0.01, 5), cap=st.floats(0.01, 60),
       outcome=st.sampled_from([Outcome.RETRY, Outcome.RATE_LIMITED]),
       retry_after=st.none() | st.floats(0, 600))
def test_back_off_bounds(attempt: int, rand: float, base: float, cap: float, outcome: Outcome,
                         retry_after: float | None) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap, rate_limit_base=base * 4)
    delay = policy.delay(attempt, Classification(outcome, "x", retry_after=retry_after), rand)
    if retry_after is not None:
        assert retry_after <= delay <= retry_after * 1.1 + 1e-9
    elif outcome is Outcome.RATE_LIMITED:
        ceiling = min(cap, base * 4 * 2 ** (attempt - 1))
        assert ceiling / 2 - 1e-9 <= delay <= ceiling + 1e-9
    else:
        assert 0 <= delay <= min(cap, base * 2 ** (attempt - 1)) + 1e-9


@given(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=12))
def test_full_jitter_never_exceeds_the_cap(rands: list[float]) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8)
    verdict = Classification(Outcome.RETRY, "HTTP 503")
    assert all(0 <= policy.delay(n, verdict, r) <= 8 for n, r in enumerate(rands, start=1))


def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_policy_from_settings() -> None:
    from shared.settings import RetrySettings

    policy = RetryPolicy.from_settings(RetrySettings(max_attempts=3, max_elapsed_s=9, rate_limit_base_s=1))
    assert (policy.max_attempts, policy.max_elapsed, policy.rate_limit_base, policy.base_delay) == (3, 9, 1, 0.5)
