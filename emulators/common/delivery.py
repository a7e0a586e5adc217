"""Injected misdelivery of the emulators' outgoing notifications (Dataverse webhooks, BC subscription notifications,
F&O data events): dropped, duplicated, delayed and — through a random extra delay per delivery — reordered, as
receivers meet them in the real world. Every sender wraps each delivery in `DeliveryInjector.deliver`, so the
three behave alike; the counts are answered by `/_admin/config`."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from pydantic import BaseModel, Field


class DeliveryFaults(BaseModel):
    """Editable at start (`*EMU_DELIVERY__*`) or through `/_admin/config {"delivery": {...}}`. Ratios are
    probabilities per delivery (one webhook call, one notification batch, one data event). All off by default."""

    drop_ratio: float = Field(0.0, ge=0, le=1)
    duplicate_ratio: float = Field(0.0, ge=0, le=1)
    delay_ms: float = Field(0.0, ge=0)
    # A random 0..jitter extra per delivery: deliveries queued close together arrive out of order.
    delay_jitter_ms: float = Field(0.0, ge=0)
    # The copy of a duplicated delivery follows the original after a random 0..gap.
    duplicate_gap_ms: float = Field(100.0, ge=0)
    seed: int | None = None

    @property
    def delays(self) -> bool:
        return bool(self.delay_ms or self.delay_jitter_ms)


@dataclass
class DeliveryCounts:
    deliveries: int = 0  # deliveries the emulator meant to make (each counted once, whatever happened to it)
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0


@dataclass(frozen=True)
class Plan:
    drop: bool
    delay_s: float
    duplicate_gap_s: float | None  # None: sent once


Send = Callable[[], Awaitable[object]]


class DeliveryInjector:
    def __init__(self, faults: DeliveryFaults | None = None) -> None:
        self.faults = faults or DeliveryFaults()
        self._rng = random.Random(self.faults.seed)
        self.counts = DeliveryCounts()

    def reconfigure(self, faults: DeliveryFaults) -> None:
        """New settings; a new random sequence from the seed (counts go on, so a harness can diff them)."""
        self.faults = faults
        self._rng = random.Random(faults.seed)

    def plan(self) -> Plan:
        """Decide one delivery's fate up front, so a seed gives the same fates whatever the timing."""
        f, rng = self.faults, self._rng
        self.counts.deliveries += 1
        # A ratio of 0 draws nothing: with everything off the random sequence (and behaviour) is untouched.
        if f.drop_ratio and rng.random() < f.drop_ratio:
            self.counts.dropped += 1
            return Plan(True, 0.0, None)
        delay = f.delay_ms + (rng.uniform(0, f.delay_jitter_ms) if f.delay_jitter_ms else 0.0)
        gap = None
        if f.duplicate_ratio and rng.random() < f.duplicate_ratio:
            gap = rng.uniform(0, f.duplicate_gap_ms) / 1000
            self.counts.duplicated += 1
        if delay:
            self.counts.delayed += 1
        return Plan(False, delay / 1000, gap)

    async def deliver(self, send: Send) -> None:
        """Run `send` (one whole delivery, retries included) as the plan says: never, once or twice, maybe late."""
        plan = self.plan()
        if plan.drop:
            return
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        await send()
        if plan.duplicate_gap_s is not None:
            await asyncio.sleep(plan.duplicate_gap_s)
            await send()

    def report(self) -> dict[str, object]:
        """The `/_admin/config` part: the settings and what they did so far."""
        return {"delivery": self.faults.model_dump(), "delivery_counts": asdict(self.counts)}
