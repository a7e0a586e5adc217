"""Adaptive concurrency per service and user (issue 12): the AIMD decisions and the service-protection guards
with a fake clock, invariants over random answer sequences, the limiter's waiting line, the feedback wired into
`ServiceClient`, and convergence against the Dataverse emulator's own limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from shared.connectors.service import ServiceClient
from shared.http import BUSINESS_CENTRAL, DATAVERSE, ConcurrencyLimiter, ServiceLimits, Signal, target_key
from shared.http.adaptive import AdaptiveBudget, Feedback, feedback_of, parse_dop_hint, signal_of
from shared.http.classify import Outcome
from shared.http.limits import FINANCE_OPERATIONS
from shared.http.retry import RetryExecutor, RetryPolicy
from shared.settings import CrmSettings, ErpSettings
from tests.support.connectors import DV_URL, Sent, configure, make_dv


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
async def dv_app() -> AsyncIterator[Starlette]:
    app = create_dv(DataverseSettings(records=4, seed=3, webhook_delay_ms=0))
    yield app
    await app.state.emulator.webhooks.aclose()


@pytest.fixture
async def dv_http(dv_app: Starlette, sent: Sent) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app), event_hooks={"request": [sent]}) as http:
        yield http


OK = Feedback(200)
REFUSED = Feedback(429)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def saturate(budget: AdaptiveBudget, now: float) -> list[int]:
    """Fill every slot, as a busy sync does; returns the admission numbers."""
    return [budget.admit(now) for _ in range(budget.limit - budget.in_use)]


def answer(budget: AdaptiveBudget, now: float, feedback: Feedback, admission: int | None = None) -> None:
    """One request answers and leaves its slot."""
    budget.observe(now, feedback, admission)
    budget.release(now, now)


def clean_round(budget: AdaptiveBudget, now: float) -> None:
    """Every slot taken, then as many clean answers as the limit: one round trip at this limit."""
    saturate(budget, now)
    for _ in range(budget.limit):
        answer(budget, now, OK)


# -- signals and feedback ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "outcome", "signal"), [
    (200, None, Signal.CLEAN), (204, None, Signal.CLEAN), (404, Outcome.NOT_FOUND, Signal.CLEAN),
    (412, Outcome.CONFLICT, Signal.CLEAN), (400, Outcome.PERMANENT, Signal.CLEAN),
    (429, Outcome.RATE_LIMITED, Signal.THROTTLED), (503, Outcome.RETRY, Signal.THROTTLED),
    (400, Outcome.RATE_LIMITED, Signal.THROTTLED),  # a service code saying "too many requests" decides
    (500, Outcome.RETRY, Signal.NEUTRAL), (504, Outcome.RETRY, Signal.NEUTRAL), (408, Outcome.RETRY, Signal.NEUTRAL),
    (None, None, Signal.NEUTRAL),
])
def test_signal_of_each_answer(status: int | None, outcome: Outcome | None, signal: Signal) -> None:
    assert signal_of(status, outcome) is signal


def test_feedback_reads_retry_after_the_hint_and_service_codes() -> None:
    throttled = httpx.Response(429, headers={"Retry-After": "7", "x-ms-dop-hint": "12"},
                               json={"error": {"code": "0x80072322", "message": "Number of requests exceeded"}})
    assert feedback_of(throttled) == Feedback(429, Outcome.RATE_LIMITED, 7.0, 12)
    assert feedback_of(httpx.Response(204)) == Feedback(204)
    assert [parse_dop_hint(v) for v in (None, "", "x", "0", "-3", " 8 ")] == [None, None, None, None, None, 8]


# -- AIMD --------------------------------------------------------------------------------------------------------

def test_grows_by_one_after_a_round_of_clean_answers() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=10, initial=2))
    clean_round(budget, 0.0)
    assert budget.limit == 3
    clean_round(budget, 0.0)
    assert budget.limit == 4


def test_an_unused_limit_does_not_creep_up() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=10, initial=4))
    for _ in range(50):  # one request at a time: the limit of 4 is never reached
        answer(budget, 0.0, OK, budget.admit(0.0))
    assert budget.limit == 4


def test_halves_on_429_and_503_once_per_round() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=52, initial=16))
    sent = saturate(budget, 0.0)
    answer(budget, 0.0, REFUSED, sent[0])
    assert budget.limit == 8
    answer(budget, 0.0, REFUSED, sent[1])  # sent with the first: the cut already answered it
    assert budget.limit == 8
    while budget.in_use >= budget.limit:  # room under the new limit
        answer(budget, 0.0, OK)
    later = budget.admit(0.0)
    answer(budget, 0.0, Feedback(503, Outcome.RETRY), later)  # sent under the new limit and still refused
    assert budget.limit == 4


def test_other_server_errors_neither_grow_nor_shrink() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=10, initial=3))
    saturate(budget, 0.0)
    answer(budget, 0.0, OK)
    answer(budget, 0.0, OK)
    answer(budget, 0.0, Feedback(500, Outcome.RETRY))  # breaks the run of clean answers
    assert budget.limit == 3
    clean_round(budget, 0.0)
    assert budget.limit == 4


def test_retry_after_holds_every_new_request() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=10, initial=4))
    answer(budget, 10.0, Feedback(429, Outcome.RATE_LIMITED, retry_after=30.0), budget.admit(10.0))
    assert budget.delay(10.0) == 30.0 and budget.delay(39.0) == pytest.approx(1.0) and budget.delay(40.0) == 0.0
    answer(budget, 40.0, Feedback(429, Outcome.RATE_LIMITED, retry_after=5.0), budget.admit(40.0))
    assert budget.delay(40.0) == 5.0  # a later refusal holds again


def test_never_above_the_cap_nor_below_one() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=5, initial=1))
    for _ in range(40):
        clean_round(budget, 0.0)
    assert budget.limit == 5
    for _ in range(10):  # each refused request was sent under the current limit
        answer(budget, 0.0, REFUSED, budget.admit(0.0))
    assert budget.limit == 1
    assert AdaptiveBudget(ServiceLimits(cap=3, initial=8)).limit == 3  # a start above the cap is clamped


def test_the_limit_refused_is_a_ceiling_for_a_while() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=52, initial=8, ceiling_memory_s=60.0))
    answer(budget, 0.0, REFUSED, saturate(budget, 0.0)[0])
    assert budget.limit == 4 and budget.ceiling == 8
    while budget.in_use:  # the requests sent under the old limit come back
        answer(budget, 0.0, OK)
    for _ in range(20):
        clean_round(budget, 1.0)
    assert budget.limit == 7  # one below the limit the server refused, without asking again
    clean_round(budget, 61.0)
    assert budget.limit == 8 and budget.ceiling is None  # a minute later it probes upwards again


def test_the_first_dop_hint_sets_the_start_within_the_cap() -> None:
    dataverse = ServiceLimits(cap=52, initial=4, follow_dop_hint=True)
    budget = AdaptiveBudget(dataverse)
    budget.observe(0.0, Feedback(200, dop_hint=12))
    assert budget.limit == 12
    budget.observe(0.0, Feedback(200, dop_hint=40))  # only the first hint: from then on the answers lead
    assert budget.limit == 12
    assert _hinted(dataverse, 500) == 52
    throttled_first = AdaptiveBudget(dataverse)
    throttled_first.observe(0.0, REFUSED)
    throttled_first.observe(0.0, Feedback(200, dop_hint=30))
    assert throttled_first.limit == 2  # a refusal already said more than the hint
    assert _hinted(ServiceLimits(cap=5), 30) == 5  # Business Central sends no hint and follows none


def _hinted(limits: ServiceLimits, hint: int) -> int:
    budget = AdaptiveBudget(limits)
    budget.observe(0.0, Feedback(200, dop_hint=hint))
    return budget.limit


# -- service-protection guards -----------------------------------------------------------------------------------

def test_request_rate_guard_waits_for_the_sliding_window() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=50, requests_per_window=3, window_s=10.0))
    for at in (0.0, 2.0, 4.0):
        budget.admit(at)
        budget.release(at, at)
    assert budget.delay(5.0) == pytest.approx(5.0)  # the request at 0 leaves the window at 10
    assert budget.delay(10.0) == 0.0
    budget.admit(10.0)
    assert budget.delay(10.0) == pytest.approx(2.0)


def test_execution_budget_waits_until_enough_time_has_left_the_window() -> None:
    budget = AdaptiveBudget(ServiceLimits(cap=50, execution_budget_s=5.0, window_s=10.0))
    for started, finished in ((0.0, 3.0), (1.0, 4.0)):  # 3 s + 3 s = 6 s spent, budget 5 s
        budget.admit(started)
        budget.release(finished, started)
    assert budget.delay(4.0) == pytest.approx(9.0)  # at 13 the first 3 s leave: 3 s < 5 s
    assert budget.delay(13.0) == 0.0
    assert AdaptiveBudget(ServiceLimits(cap=50)).delay(0.0) == 0.0  # guards off


def test_limits_are_validated() -> None:
    for bad in ({"cap": 0}, {"cap": 2, "initial": 0}, {"cap": 2, "requests_per_window": 0},
                {"cap": 2, "execution_budget_s": 0.0}, {"cap": 2, "window_s": 0.0}):
        with pytest.raises(ValueError):
            ServiceLimits(**bad)  # type: ignore[arg-type]


# -- invariants over random answers ------------------------------------------------------------------------------

STEP = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 8)),
    st.tuples(st.just("answer"), st.sampled_from([200, 204, 404, 412, 429, 500, 503, None]),
              st.one_of(st.none(), st.floats(0, 30)), st.one_of(st.none(), st.integers(1, 80))),
    st.tuples(st.just("wait"), st.floats(0, 40)),
)


@settings(max_examples=300, deadline=None)
@given(cap=st.integers(1, 52), initial=st.integers(1, 60), steps=st.lists(STEP, max_size=150))
def test_invariants_over_random_answers(cap: int, initial: int, steps: list[tuple]) -> None:
    limits = ServiceLimits(cap=cap, initial=initial, follow_dop_hint=True, requests_per_window=20,
                           execution_budget_s=15.0, window_s=60.0)
    budget = AdaptiveBudget(limits)
    now, holding, admitted_at, hold_until = 0.0, [], [], 0.0
    for step in steps:
        if step[0] == "wait":
            now += step[1]
        elif step[0] == "send":
            for _ in range(step[1]):
                delay = budget.delay(now)
                assert (delay is None) == (budget.in_use >= budget.limit)
                if delay != 0:
                    break
                assert now >= hold_until  # nothing starts while the server's Retry-After lasts
                holding.append((budget.admit(now), now))
                admitted_at.append(now)
        elif holding:
            _, status, retry_after, hint = step
            admission, started = holding.pop(0)
            before = budget.limit
            outcome = Outcome.RATE_LIMITED if status == 429 else None
            budget.observe(now, Feedback(status, outcome, retry_after, hint), admission)
            budget.release(now, started)
            if signal_of(status, outcome) is Signal.THROTTLED and retry_after is not None:
                hold_until = max(hold_until, now + retry_after)
            assert budget.limit in {before, before + 1, max(1, before // 2)} or hint is not None
        assert 1 <= budget.limit <= cap
        assert budget.in_use == len(holding)
        in_window = [t for t in admitted_at if now - limits.window_s < t <= now]
        assert len(in_window) <= 20  # never more requests per window than the guard allows


# -- the limiter: keys, waiting line, feedback -------------------------------------------------------------------

def test_separate_users_have_separate_budgets() -> None:
    clock = Clock()
    limiter = ConcurrencyLimiter(clock=clock)
    alice, bob = target_key(DATAVERSE, "alice"), target_key(DATAVERSE, "bob")
    assert alice == "dataverse@alice" and limiter.limit(alice) == limiter.limit(bob) == 4
    limiter.observe(alice, 429, retry_after=20.0)
    assert limiter.limit(alice) == 2 and limiter.limit(bob) == 4
    limiter.observe(bob, 200, dop_hint=10)
    assert limiter.limit(bob) == 10 and limiter.limit(alice) == 2
    assert limiter.limit(BUSINESS_CENTRAL) == 5 and limiter.limit(target_key(BUSINESS_CENTRAL, "x")) == 5


async def test_a_user_on_hold_does_not_hold_the_other() -> None:
    limiter = ConcurrencyLimiter({DATAVERSE: 4})
    alice, bob = target_key(DATAVERSE, "alice"), target_key(DATAVERSE, "bob")
    limiter.observe(alice, 429, retry_after=0.3)
    started = time.monotonic()
    async with limiter.slot(bob):
        assert time.monotonic() - started < 0.1
        assert limiter.in_use(bob) == 1 and limiter.in_use(DATAVERSE) == 1  # a bare service counts its users
    async with limiter.slot(alice):
        assert time.monotonic() - started >= 0.29
    assert limiter.peak(DATAVERSE) == 1 and limiter.peak(alice) == 1


async def test_waiters_are_admitted_in_order_as_the_limit_grows_and_shrinks() -> None:
    limiter = ConcurrencyLimiter({"svc": ServiceLimits(cap=6, initial=1)})
    order: list[int] = []

    async def request(i: int) -> None:
        async with limiter.slot("svc"):
            order.append(i)
            await asyncio.sleep(0.005)
            limiter.observe("svc", 200)

    await asyncio.gather(*(request(i) for i in range(40)))
    assert order == list(range(40)) and 1 < limiter.peak("svc") <= 6 and limiter.in_use("svc") == 0


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    limiter = ConcurrencyLimiter({"svc": 1})
    async with limiter.slot("svc"):
        waiter = asyncio.create_task(_enter(limiter, "svc"))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    async with asyncio.timeout(1):
        await _enter(limiter, "svc")
    assert limiter.in_use("svc") == 0


async def _enter(limiter: ConcurrencyLimiter, target: str) -> None:
    async with limiter.slot(target):
        pass


async def test_feedback_inside_a_slot_knows_which_request_answered() -> None:
    limiter = ConcurrencyLimiter({"svc": ServiceLimits(cap=20, initial=8)})
    release = asyncio.Event()

    async def refused() -> None:
        async with limiter.slot("svc"):
            await release.wait()
            limiter.observe("svc", 429)

    tasks = [asyncio.create_task(refused()) for _ in range(8)]
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*tasks)
    assert limiter.limit("svc") == 4  # eight refusals of one round: one halving, not eight


def test_restrict_lowers_and_never_raises() -> None:
    limiter = ConcurrencyLimiter()
    limiter.restrict(DATAVERSE, 16)
    limiter.restrict(target_key(DATAVERSE, "u"), 30)
    assert limiter.service_limits(DATAVERSE).cap == 16
    limiter.observe(DATAVERSE, 200, dop_hint=40)
    assert limiter.limit(DATAVERSE) == 16
    limiter.restrict(DATAVERSE, 6)
    assert limiter.limit(DATAVERSE) == 6  # an existing budget follows
    strict = ConcurrencyLimiter({"x": 1})
    strict.restrict(BUSINESS_CENTRAL, 3)  # a connector makes its service known
    assert strict.limit(BUSINESS_CENTRAL) == 3
    with pytest.raises(KeyError):
        strict.limit(DATAVERSE)


def test_from_settings() -> None:
    common = {"tenant_id": "t", "client_id": "c"}
    erp = ErpSettings(**common, company_id="co", initial_concurrency=2, requests_per_window=0)
    crm = CrmSettings(**common, base_url="https://org.crm.dynamics.com", max_concurrency=30, execution_budget_s=0)
    limiter = ConcurrencyLimiter.from_settings(SimpleNamespace(erp=erp, crm=crm))
    bc, dv = limiter.service_limits(BUSINESS_CENTRAL), limiter.service_limits(DATAVERSE)
    assert (bc.cap, bc.start, bc.requests_per_window) == (5, 2, None)
    assert (dv.cap, dv.start, dv.follow_dop_hint, dv.requests_per_window, dv.execution_budget_s) == \
        (30, 4, True, 5400, None)
    fo = ErpSettings(**common, kind="finance_operations", base_url="https://fo", max_concurrency=12)
    fo_limits = ConcurrencyLimiter.from_settings(SimpleNamespace(erp=fo, crm=crm)).service_limits(FINANCE_OPERATIONS)
    assert (fo_limits.cap, fo_limits.start, fo_limits.requests_per_window) == (12, 12, None)


# -- wired into ServiceClient ------------------------------------------------------------------------------------

class Credential:
    client_id = "app-1"

    async def get_token(self, *scopes: str, **kwargs: object) -> SimpleNamespace:
        return SimpleNamespace(token="t")


async def test_every_attempt_feeds_the_limiter_under_the_users_key() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(503),
                    httpx.Response(200, json={}, headers={"x-ms-dop-hint": "9"})])
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: next(answers)))
    limiter = ConcurrencyLimiter({DATAVERSE: ServiceLimits(cap=52, initial=8, follow_dop_hint=True)})
    svc = ServiceClient(http, Credential(), scope="s", target=DATAVERSE, headers={}, max_concurrency=20,
                        limiter=limiter, retry=RetryExecutor(RetryPolicy(base_delay=0, rate_limit_base=0)))
    assert svc.limit_key == "dataverse@app-1" and limiter.service_limits(DATAVERSE).cap == 20
    await svc.send_raw("GET", "https://org/api/data/v9.2/accounts")
    # 429 halved 8 → 4, the retried request's 503 halved again → 2 (the hint came after the refusals: ignored).
    assert limiter.limit("dataverse@app-1") == 2 and limiter.peak(DATAVERSE) == 1
    await http.aclose()


# -- against the Dataverse emulator ------------------------------------------------------------------------------

async def test_converges_under_the_emulators_concurrency_limit(dv_http: httpx.AsyncClient, dv_app: Starlette,
                                                               sent: Sent) -> None:
    """The server takes 3 requests at once and recommends 4 (`x-ms-dop-hint`): the limiter starts at 4, is
    refused once or twice, settles at 3 and finishes the work without being refused again."""
    limiter = ConcurrencyLimiter()
    dv = make_dv(dv_http, dv_app, limiter=limiter)
    await dv.get("accounts", (await anext(dv.list("accounts")))[0].id)  # token and metadata fetched
    await configure(dv_http, DV_URL, limits={"max_concurrent": 3, "max_queued": 0}, faults={"latency_ms": 15})
    created = await asyncio.gather(*(dv.create("accounts", {"name": f"A{i}"}) for i in range(90)))
    assert len({r.id for r in created}) == 90
    refused = dv.svc.retry.retries
    assert 1 <= refused <= 3  # the first burst at the hint (4) met the limit, then never again
    assert len(sent.to("/accounts", "POST")) == 90 + refused
    assert limiter.limit(DATAVERSE) == 3 and limiter.peak(DATAVERSE) == 4


async def test_request_guard_keeps_a_long_run_under_the_emulators_window(dv_http: httpx.AsyncClient,
                                                                         dv_app: Starlette) -> None:
    """The server allows 20 requests per 1.5 s; our guard allows 16: the work waits instead of being refused."""
    guard = ServiceLimits(cap=16, initial=4, follow_dop_hint=True, requests_per_window=16, window_s=1.5)
    limiter = ConcurrencyLimiter({DATAVERSE: guard})
    dv = make_dv(dv_http, dv_app, limiter=limiter)
    await configure(dv_http, DV_URL, limits={"window_requests": 20, "window_seconds": 1.5})
    started = time.monotonic()
    created = await asyncio.gather(*(dv.create("accounts", {"name": f"W{i}"}) for i in range(40)))
    assert len({r.id for r in created}) == 40 and dv.svc.retry.retries == 0
    assert time.monotonic() - started >= 3.0  # 40 requests (and a token) at 16 per 1.5 s: three windows
