"""Paused mappings in Table storage (Azurite): pause, resume, an automatic pause never replacing an operator's,
the state surviving a restart (a new store on the same table), and the processor's cached view."""

from __future__ import annotations

import asyncio

from azure.data.tables.aio import TableServiceClient

from shared.state import StateStore, TableNames
from shared.state.pauses import AUTO_PAUSED, PAUSED, PauseStore


async def test_pause_resume_and_list(store: StateStore) -> None:
    pauses = store.pauses
    assert await pauses.get("customers") is None and await pauses.list() == {}
    paused = await pauses.pause("customers", reason="BC upgrade tonight", by="user:ana@contoso.com")
    assert (paused.state, paused.reason, paused.by, paused.fresh) == (PAUSED, "BC upgrade tonight",
                                                                     "user:ana@contoso.com", True)
    assert await pauses.get("customers") == paused
    await pauses.pause("contacts", reason="x", by="key")
    assert set(await pauses.list()) == {"customers", "contacts"}
    lifted = await pauses.resume("customers", by="user:bo@contoso.com")
    assert lifted == paused
    assert await pauses.get("customers") is None
    assert set(await pauses.list()) == {"contacts"}
    assert await pauses.resume("customers", by="user:bo@contoso.com") is None  # not paused: nothing to lift
    assert await pauses.resumed_at("customers") is not None
    assert await pauses.resumed_at("contacts") is None  # paused: not resumed


async def test_an_automatic_pause_never_replaces_one_in_force(store: StateStore) -> None:
    pauses = store.pauses
    manual = await pauses.pause("customers", reason="maintenance", by="user:ana@contoso.com")
    auto = await pauses.pause("customers", reason="25 failures in 10 minutes", by="auto-pause", auto=True)
    assert auto == manual and not auto.fresh
    assert (await pauses.get("customers")).state == PAUSED  # type: ignore[union-attr]
    # An operator's pause does replace an automatic one: they take it over, with their reason.
    await pauses.resume("customers", by="x")
    first = await pauses.pause("customers", reason="25 failures in 10 minutes", by="auto-pause", auto=True)
    assert first.fresh and first.state == AUTO_PAUSED
    taken = await pauses.pause("customers", reason="looking into it", by="user:ana@contoso.com")
    assert (taken.state, taken.reason) == (PAUSED, "looking into it")


async def test_concurrent_automatic_pauses_put_one_in_force(store: StateStore) -> None:
    results = await asyncio.gather(*(store.pauses.pause("customers", reason=f"burst {i}", by="auto-pause", auto=True)
                                     for i in range(6)))
    assert sum(p.fresh for p in results) == 1
    assert len({(p.reason, p.at) for p in results}) == 1  # everyone sees the one pause in force


async def test_the_state_survives_a_restart(table_connection_string: str, table_prefix: str) -> None:
    names = TableNames.with_prefix(table_prefix)
    async with TableServiceClient.from_connection_string(table_connection_string) as service:
        before = StateStore(service, names)
        await before.ensure_tables()
        await before.pauses.pause("customers", reason="a very long reason " * 100, by="auto-pause", auto=True)
    async with TableServiceClient.from_connection_string(table_connection_string) as service:
        after = StateStore(service, names)  # a new process: nothing in memory
        found = await after.pauses.paused("customers")
        assert found is not None and found.state == AUTO_PAUSED and len(found.reason) <= 1000
        # The pause row sits beside the watermarks without disturbing them.
        assert await after.watermarks.find_watermark("customers", "to_crm") is None


async def test_the_cached_view_sees_another_instance_within_max_age(store: StateStore) -> None:
    other = PauseStore(store.watermarks.table, max_age=0.3)  # another instance's store on the same table
    assert await other.paused("customers") is None
    await store.pauses.pause("customers", reason="r", by="b")
    assert await other.paused("customers") is None  # its snapshot is still young …
    await asyncio.sleep(0.35)
    assert (await other.paused("customers")) is not None  # … and then read again
    # A change made through a store shows in its own snapshot at once.
    await other.resume("customers", by="b")
    assert await other.paused("customers") is None
