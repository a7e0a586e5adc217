"""Per-target concurrency limits, so we never trip a service's protection limits by ourselves.

Business Central processes 5 requests per user at once and queues the rest (beyond 100 it answers 429);
Dataverse allows 52 concurrent requests per user and web server. Each target gets its own semaphore.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

BUSINESS_CENTRAL = "business_central"
DATAVERSE = "dataverse"
FINANCE_OPERATIONS = "finance_operations"
DEFAULT_LIMITS: dict[str, int] = {BUSINESS_CENTRAL: 5, DATAVERSE: 16, FINANCE_OPERATIONS: 8}


class ConcurrencyLimiter:
    """`async with limiter.slot("business_central"): …` admits at most `limit(target)` holders at once.

    Targets not listed in `limits` use `default`; with `default=None` an unknown target is an error, which
    catches a misspelt target name instead of silently running it unlimited. Use one limiter per event loop.
    """

    def __init__(self, limits: Mapping[str, int] | None = None, *, default: int | None = None) -> None:
        merged = dict(DEFAULT_LIMITS if limits is None else limits)
        for target, value in [*merged.items(), ("default", default or 1)]:
            if value < 1:
                raise ValueError(f"concurrency limit for {target!r} must be at least 1, got {value}")
        self._limits = merged
        self._default = default
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._in_use: dict[str, int] = {}
        self._peak: dict[str, int] = {}

    def limit(self, target: str) -> int:
        if target in self._limits:
            return self._limits[target]
        if self._default is None:
            raise KeyError(f"no concurrency limit configured for target {target!r} "
                           f"(known: {', '.join(sorted(self._limits))})")
        return self._default

    @asynccontextmanager
    async def slot(self, target: str) -> AsyncIterator[None]:
        semaphore = self._semaphores.get(target)
        if semaphore is None:
            semaphore = self._semaphores[target] = asyncio.Semaphore(self.limit(target))
        async with semaphore:
            self._in_use[target] = self._in_use.get(target, 0) + 1
            self._peak[target] = max(self._peak.get(target, 0), self._in_use[target])
            try:
                yield
            finally:
                self._in_use[target] -= 1

    def in_use(self, target: str) -> int:
        """Slots held right now."""
        return self._in_use.get(target, 0)

    def peak(self, target: str) -> int:
        """The most slots ever held at once (for tests and benchmarks)."""
        return self._peak.get(target, 0)
