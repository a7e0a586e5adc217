"""The timers leave a paused mapping alone: the modified-records sync and the retry skip it (the other
mappings run), and take it again after resume. The app's own timer
functions, called as the host calls them, against both emulators and Azurite."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

from shared.admin.pauses import pause_mapping, resume_mapping
from shared.mapping import Side, load_pack
from tests.functions.runtime import installed
from tests.sync import conftest as fixtures
from tests.sync.conftest import ROOT, World, bc_customer

pack, bc_app, dv_app, state, engine_options, world = (fixtures.pack, fixtures.bc_app, fixtures.dv_app,
                                                      fixtures.state, fixtures.engine_options, fixtures.world)


@functools.cache
def _timers() -> dict[str, Any]:
    from function_app import build_app

    app = build_app(load_pack(ROOT / "templates" / "bc-sales.yaml"))
    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


async def test_timers_skip_a_paused_mapping(world: World, caplog: pytest.LogCaptureFixture) -> None:
    people = await world.bc.rows("salespeoplePurchasers")
    customer = await bc_customer(world, salespersonCode=people[0]["code"])  # fails: its salesperson is not coupled
    assert (await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)).outcome == "failed"
    await pause_mapping(world.engine, "customers", "checking the salesperson mapping")
    caplog.set_level(logging.INFO, logger="dualsync.schedules")
    with installed(world.engine):
        await _timers()["timer_retry_failed"](TimerRequest())
        await _timers()["timer_modified_sync"](TimerRequest())
    assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is not None
    assert await world.coupling("customers", Side.ERP, customer["id"]) is None
    scheduled = {j.mapping async for j in world.state.jobs.list_jobs() if j.trigger == "schedule"}
    assert "customers" not in scheduled and {"currencies", "contacts"} <= scheduled
    assert "modified sync customers: skipped, paused since" in caplog.text
    assert "retry customers: skipped, paused since" in caplog.text
    assert not [j async for j in world.state.jobs.list_jobs("customers") if j.trigger == "retry"]

    await resume_mapping(world.engine, "customers", catch_up=False)
    with installed(world.engine):
        await _timers()["timer_retry_failed"](TimerRequest())
        await _timers()["timer_modified_sync"](TimerRequest())
    triggers = {j.trigger async for j in world.state.jobs.list_jobs("customers")}
    assert {"retry", "schedule"} <= triggers  # both timers take it again
