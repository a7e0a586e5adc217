"""Background work an emulator starts after answering (webhook deliveries, asynchronous jobs): wait for it, or
cancel it at shut-down — one way for every emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Collection


async def drain(tasks: Collection[asyncio.Task], timeout: float = 10.0) -> None:
    """Wait until every task has finished (tests, the demo)."""
    if tasks:
        await asyncio.wait_for(asyncio.gather(*list(tasks), return_exceptions=True), timeout)


async def cancel(tasks: Collection[asyncio.Task]) -> None:
    """Cancel every task and wait for them to end."""
    for task in list(tasks):
        task.cancel()
    if tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
