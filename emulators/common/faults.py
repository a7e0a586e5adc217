"""Injected latency and faults, so benchmarks and failure tests can use realistic, hostile conditions."""

from __future__ import annotations

import asyncio
import random

from pydantic import BaseModel, Field


class Faults(BaseModel):
    """Editable at start or through `/_admin/config`. Ratios are probabilities per request."""

    latency_ms: float = Field(0.0, ge=0)
    latency_jitter_ms: float = Field(0.0, ge=0)
    batch_op_latency_ms: float = Field(0.0, ge=0)
    error_ratio: float = Field(0.0, ge=0, le=1)
    error_status: int = Field(503, ge=500, le=599)
    timeout_ratio: float = Field(0.0, ge=0, le=1)
    # How long a "timed out" request hangs before the gateway gives up (the client usually gives up first).
    timeout_seconds: float = Field(30.0, ge=0)
    seed: int | None = None


class FaultInjector:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)

    def reconfigure(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)

    async def request_delay(self) -> None:
        f = self.faults
        if f.latency_ms or f.latency_jitter_ms:
            await asyncio.sleep((f.latency_ms + self._rng.uniform(0, f.latency_jitter_ms)) / 1000)

    async def batch_op_delay(self) -> None:
        if self.faults.batch_op_latency_ms:
            await asyncio.sleep(self.faults.batch_op_latency_ms / 1000)

    def draw(self) -> str | None:
        """'error', 'timeout' or None for this request."""
        f = self.faults
        if not (f.error_ratio or f.timeout_ratio):
            return None
        roll = self._rng.random()
        if roll < f.error_ratio:
            return "error"
        if roll < f.error_ratio + f.timeout_ratio:
            return "timeout"
        return None
