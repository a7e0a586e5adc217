"""Holding a coupled pair while its records are written.

Two syncs of one pair can run at once: the two directions are different Service Bus sessions (one per source
record), and the catch-up and the full sync run beside the processor. Each guards its writes with the record's
ETag and its coupling update with the coupling's, but that last guard comes after the writes. So a sync that
read the pair while another was between writing a record and storing the coupling took that write for a
person's change, pushed it over the other side — over a newer edit made there meanwhile — and only then lost the
race on the coupling: the edit was gone (the chaos harness's "lost update", seen under load).

So a sync that is about to write holds the pair first: it stamps the coupling it read with a token (the same
`reservation` / `reserved_at` fields a pending create uses; on a complete coupling they mean "being written"),
guarded by the coupling's ETag. That compare-and-swap succeeds only if no other sync stored or held the pair
since this one read the coupling — and every sync reads the coupling before the records it merges, so records it
read are at least as new as what any earlier holder wrote. Others wait while the pair is held; storing the
settled coupling releases it. A holder that died is taken over after `EngineOptions.stale_reservation`.

The hold also carries the holder's intent: the values it is about to write, per side. A holder can stop between
its writes and its settlement — a second write refused, a read-back or a request that timed out after the
service applied it, a cancelled run, a killed host — and then nothing but the intent tells the next merge that a
value on one side is ours, not a person's change (without it, with the policy on that side, the next merge would
push our stale write over the person's newer edit on the other side). The intent stays until a settlement
replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.mapping import Side, TableMapping
from shared.state import Coupling
from shared.sync.errors import RetryLater

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


def held(engine: SyncEngine, coupling: Coupling) -> bool:
    """Another sync holds this complete pair (its token is set and not stale)."""
    if coupling.pending or coupling.reservation is None or coupling.reserved_at is None:
        return False
    return engine.options.clock() - coupling.reserved_at <= engine.options.stale_reservation


async def hold(engine: SyncEngine, coupling: Coupling, intent: dict[Side, dict[str, Any]]) -> Coupling:
    """Take the pair before writing either record, recording what will be written (`intent`). Raises
    `ConcurrentUpdate` when the coupling changed since it was read (another sync stored or holds it): the caller
    reads everything again and decides again."""
    return await engine.state.couplings.update_coupling(taking(engine, coupling, intent))


def taking(engine: SyncEngine, coupling: Coupling, intent: dict[Side, dict[str, Any]]) -> Coupling:
    """`coupling` held by a new token, with `intent` added to any intent an earlier holder left."""
    return dataclasses.replace(coupling, reservation=uuid.uuid4().hex, reserved_at=engine.options.clock(),
                               intent=merge_intent(coupling.intent, intent))


def merge_intent(earlier: dict[str, Any] | None, intent: dict[Side, dict[str, Any]]) -> dict[str, Any] | None:
    merged = {side: dict(fields) for side, fields in (earlier or {}).items()}
    for side, fields in intent.items():
        if fields:
            merged.setdefault(side.value, {}).update(fields)
    return merged or None


def intended(coupling: Coupling) -> dict[Side, dict[str, Any]]:
    """The intent left on the coupling, by side."""
    return {Side(side): fields for side, fields in (coupling.intent or {}).items()}


async def let_go(engine: SyncEngine, coupling: Coupling) -> None:
    """Give the pair up without storing a settlement (a write failed): best effort — if it cannot be written,
    the hold goes stale and is taken over."""
    release(coupling)
    with contextlib.suppress(Exception):
        await engine.state.couplings.update_coupling(coupling)


def release(coupling: Coupling) -> None:
    """Clear the hold on a coupling about to be stored (the store writes it). The intent stays: only a
    settlement (`record.stamp`) replaces it."""
    coupling.reservation = coupling.reserved_at = None


async def await_release(engine: SyncEngine, mapping: TableMapping, side: Side, coupling: Coupling) -> Coupling | None:
    """Wait while another sync holds the pair; the coupling as that sync left it (None if it is gone). A hold
    older than `stale_reservation` is ignored: `hold` takes it over. Raises `RetryLater` after
    `reservation_wait` seconds (the message is retried later, nothing is lost)."""
    return await wait_while(engine, mapping, side, coupling, lambda c: held(engine, c), "writing the pair of")


async def wait_while(engine: SyncEngine, mapping: TableMapping, side: Side, coupling: Coupling,
                     busy: Callable[[Coupling], bool], doing: str) -> Coupling | None:
    """Re-read `coupling` (backing off) while another worker keeps it `busy`: a hold here, a pending create in
    `create.await_reservation`. Raises `RetryLater` ("another worker is <doing> …") after `reservation_wait`."""
    couplings, options = engine.state.couplings, engine.options
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.reservation_wait
    delay = 0.02
    current: Coupling | None = coupling
    record_id = coupling.id_of(side) or ""
    while current is not None and busy(current):
        if loop.time() >= deadline:
            raise RetryLater(f"another worker is {doing} {side.value} record {record_id!r} in mapping "
                             f"'{mapping.name}'; try again later")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
        current = await couplings.find_coupling(mapping.name, side, record_id)
    return current
