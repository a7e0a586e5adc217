"""The BC clientState in the subscriptions table: only a keyed hash is written, a rotated secret is noticed from
it, and a row from before (the secret in clear) is renewed with the current secret and overwritten."""

from __future__ import annotations

import datetime as dt
from typing import Any

from azure.data.tables import UpdateMode

from shared.subscriptions import SYSTEM
from tests.functions import test_schedules as timers
from tests.functions.hooks import HandshakeReceiver
from tests.sync.conftest import World

# The subscription timer's fixtures: the engine world, with a BC emulator whose handshakes reach a receiver.
pack, dv_app, state, engine_options, world, bc_app, receiver, bc_lifetime_days = (
    timers.pack, timers.dv_app, timers.state, timers.engine_options, timers.world, timers.bc_app, timers.receiver,
    timers.bc_lifetime_days)
SECRET, _ensure, _wanted = timers.SECRET, timers._ensure, timers._wanted


async def _rows(world: World) -> list[dict[str, Any]]:
    return [dict(e) async for e in world.state.subscriptions.table.list_entities()]


def _clear(rows: list[dict[str, Any]], secret: str) -> list[str]:
    return [k for row in rows for k, v in row.items() if secret in str(v)]


async def test_no_clear_client_state_is_stored_and_a_rotation_renews(world: World,
                                                                     receiver: HandshakeReceiver) -> None:
    wanted = _wanted(world, "customers")
    assert (await _ensure(world, wanted)).created == ["customers"]
    assert _clear(await _rows(world), SECRET) == []

    assert (await _ensure(world, wanted)).kept  # same secret: the hash matches, nothing to do
    rotated = await _ensure(world, wanted, client_state="rotated-s3cret")
    assert rotated.renewed == ["customers"]
    remote = list(world.bc.app.state.emulator.store.table("subscriptions").all())
    assert [s["clientState"] for s in remote] == ["rotated-s3cret"]  # the new secret reached BC
    assert _clear(await _rows(world), "rotated-s3cret") == []


async def test_a_row_holding_the_secret_in_clear_is_renewed_and_overwritten(world: World,
                                                                            receiver: HandshakeReceiver) -> None:
    wanted = _wanted(world, "customers")
    await _ensure(world, wanted)
    [row] = await _rows(world)
    # What the table held before: the secret itself, no hash.
    legacy = {k: v for k, v in row.items() if k != "client_state_hash"} | {"client_state": SECRET}
    await world.state.subscriptions.table.upsert_entity(legacy, mode=UpdateMode.REPLACE)
    assert _clear(await _rows(world), SECRET) == ["client_state"]

    report = await _ensure(world, wanted, now=dt.datetime.now(dt.UTC))
    assert report.renewed == ["customers"] and not report.created and report.ok
    rows = await _rows(world)
    assert len(rows) == 1 and _clear(rows, SECRET) == [] and "client_state" not in rows[0]
    assert (await _ensure(world, wanted)).kept == [rows[0]["RowKey"]]  # and kept from then on
    assert [s.subscription_id async for s in world.state.subscriptions.list_subscriptions(SYSTEM)] == \
        [rows[0]["RowKey"]]
