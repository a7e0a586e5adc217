"""The shared misdelivery helper: what each setting does to a delivery, and that a seed fixes the fates."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from pydantic import ValidationError

from emulators.common.delivery import DeliveryFaults, DeliveryInjector


async def run(injector: DeliveryInjector, n: int) -> list[int]:
    """Deliver 0..n-1 concurrently (each its own task, as the senders do); what arrived, in arrival order."""
    arrived: list[int] = []

    def sender(i: int) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            arrived.append(i)
        return send

    await asyncio.gather(*(injector.deliver(sender(i)) for i in range(n)))
    return arrived


async def test_off_by_default_sends_each_once_in_order() -> None:
    injector = DeliveryInjector()
    assert await run(injector, 20) == list(range(20))
    assert injector.report()["delivery_counts"] == {"deliveries": 20, "dropped": 0, "duplicated": 0, "delayed": 0}


async def test_drops_are_never_sent_and_counted() -> None:
    injector = DeliveryInjector(DeliveryFaults(drop_ratio=0.5, seed=3))
    arrived = await run(injector, 200)
    counts = injector.counts
    assert counts.dropped == 200 - len(arrived)
    assert 60 < counts.dropped < 140  # about half
    assert len(set(arrived)) == len(arrived)  # dropped, not duplicated
    assert counts.duplicated == counts.delayed == 0


async def test_duplicates_are_sent_twice_and_counted() -> None:
    injector = DeliveryInjector(DeliveryFaults(duplicate_ratio=1.0, duplicate_gap_ms=5, seed=1))
    arrived = await run(injector, 10)
    assert sorted(arrived) == sorted(list(range(10)) * 2)
    assert (injector.counts.duplicated, injector.counts.dropped) == (10, 0)
    assert injector.counts.delayed == 0  # the gap before a copy is not a delay of the delivery


async def test_jitter_delays_and_reorders() -> None:
    injector = DeliveryInjector(DeliveryFaults(delay_ms=5, delay_jitter_ms=60, seed=11))
    loop = asyncio.get_running_loop()
    started = loop.time()
    arrived = await run(injector, 12)
    assert loop.time() - started >= 0.005
    assert sorted(arrived) == list(range(12)) and arrived != list(range(12))
    assert injector.counts.delayed == 12


async def test_a_seed_gives_the_same_fates_and_reconfigure_restarts_it() -> None:
    faults = DeliveryFaults(drop_ratio=0.3, duplicate_ratio=0.3, delay_jitter_ms=10, seed=42)
    a, b = DeliveryInjector(faults), DeliveryInjector(faults)
    plans = [a.plan() for _ in range(50)]
    assert plans == [b.plan() for _ in range(50)]
    assert len({p.drop for p in plans}) == 2 and len({p.duplicate_gap_s is None for p in plans}) == 2
    a.reconfigure(faults)
    assert [a.plan() for _ in range(50)] == plans
    assert a.counts.deliveries == 100  # counts go on across a reconfiguration


def test_ratios_are_probabilities() -> None:
    with pytest.raises(ValidationError):
        DeliveryFaults(drop_ratio=1.5)
    with pytest.raises(ValidationError):
        DeliveryFaults(delay_ms=-1)
