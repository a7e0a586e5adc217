"""Couplings against Azurite: atomic pairs, reservations under concurrency, ETag conflicts."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest

from shared.mapping.types import Side
from shared.state import AlreadyCoupled, ConcurrentUpdate, Coupling, NotFound, StateStore, json_hash

pytestmark = pytest.mark.azurite
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


async def rows(store: StateStore, mapping: str) -> list[str]:
    table = store.couplings.table
    return sorted([e["RowKey"] async for e in table.query_entities("PartitionKey eq @p", parameters={"p": mapping})])


async def test_create_writes_both_rows_readable_from_either_side(store: StateStore) -> None:
    snapshot = {"name": "Adatum", "credit": 1500.5, "tags": ["a", "b"]}
    await store.couplings.create_coupling(Coupling("customers", erp_id="e-1", crm_id="c-1", snapshot=snapshot,
                                                   erp_modified_on=T0, crm_etag='W/"7"'))

    from_erp = await store.couplings.get_coupling("customers", Side.ERP, "e-1")
    from_crm = await store.couplings.get_coupling("customers", "crm", "c-1")

    assert await rows(store, "customers") == ["crm:c-1", "erp:e-1"]
    assert from_erp == from_crm
    assert from_erp.snapshot == snapshot
    assert from_erp.snapshot_hash == json_hash(snapshot)
    assert from_erp.erp_modified_on == T0 and from_erp.crm_etag == 'W/"7"'
    assert not from_erp.pending


async def test_create_is_atomic_when_one_side_is_already_coupled(store: StateStore) -> None:
    await store.couplings.create_coupling(Coupling("customers", erp_id="e-1", crm_id="c-1"))

    with pytest.raises(AlreadyCoupled) as caught:
        await store.couplings.create_coupling(Coupling("customers", erp_id="e-2", crm_id="c-1"))

    assert caught.value.existing.erp_id == "e-1"
    assert await store.couplings.find_coupling("customers", Side.ERP, "e-2") is None  # nothing half-written
    assert await rows(store, "customers") == ["crm:c-1", "erp:e-1"]


async def test_get_missing_raises_and_find_returns_none(store: StateStore) -> None:
    with pytest.raises(NotFound, match="not coupled"):
        await store.couplings.get_coupling("customers", Side.CRM, "nope")
    assert await store.couplings.find_coupling("customers", Side.CRM, "nope") is None


async def test_concurrent_reserve_has_exactly_one_winner(store: StateStore) -> None:
    async def attempt() -> Coupling | AlreadyCoupled:
        try:
            return await store.couplings.reserve("customers", Side.ERP, "e-9", job_id="j1")
        except AlreadyCoupled as exc:
            return exc

    results = await asyncio.gather(*(attempt() for _ in range(12)))

    winners = [r for r in results if isinstance(r, Coupling)]
    losers = [r for r in results if isinstance(r, AlreadyCoupled)]
    assert len(winners) == 1 and len(losers) == 11
    assert all(loser.existing is None or loser.existing.reservation == winners[0].reservation for loser in losers)
    assert await rows(store, "customers") == ["erp:e-9"]


async def test_reserve_then_complete_couples_both_sides(store: StateStore) -> None:
    pending = await store.couplings.reserve("customers", Side.CRM, "c-5")
    assert pending.pending and pending.reserved_by is Side.CRM

    pending.snapshot = {"name": "Fabrikam"}
    pending.record_synced(Side.ERP, modified_on=T0, etag="W/\"JzQ0\"")
    done = await store.couplings.complete(pending, "e-5")

    again = await store.couplings.get_coupling("customers", Side.ERP, "e-5")
    assert not again.pending and again.crm_id == "c-5" and again.reservation is None
    assert again.snapshot == {"name": "Fabrikam"} and again.erp_etag == "W/\"JzQ0\""
    assert done.row_etag == (await store.couplings.get_coupling("customers", Side.CRM, "c-5")).row_etag


async def test_complete_refuses_a_destination_coupled_elsewhere(store: StateStore) -> None:
    await store.couplings.create_coupling(Coupling("customers", erp_id="e-1", crm_id="c-1"))
    pending = await store.couplings.reserve("customers", Side.CRM, "c-2")

    with pytest.raises(AlreadyCoupled, match="erp record 'e-1'"):
        await store.couplings.complete(pending, "e-1")
    still = await store.couplings.get_coupling("customers", Side.CRM, "c-2")
    assert still.pending  # the reservation was left as it was


async def test_complete_with_a_stale_reservation_is_a_concurrent_update(store: StateStore) -> None:
    pending = await store.couplings.reserve("customers", Side.ERP, "e-3")
    taken_over = await store.couplings.renew_reservation(pending)

    with pytest.raises(ConcurrentUpdate):
        await store.couplings.complete(pending, "c-3")
    assert await store.couplings.find_coupling("customers", Side.CRM, "c-3") is None
    done = await store.couplings.complete(taken_over, "c-3")
    assert done.crm_id == "c-3"


async def test_two_writers_cannot_overwrite_each_other(store: StateStore) -> None:
    await store.couplings.create_coupling(Coupling("customers", erp_id="e-1", crm_id="c-1", snapshot={"v": 0}))
    first = await store.couplings.get_coupling("customers", Side.ERP, "e-1")
    second = await store.couplings.get_coupling("customers", Side.CRM, "c-1")  # read through the other row

    first.snapshot = {"v": 1}
    written = await store.couplings.update_coupling(first)
    second.snapshot = {"v": 2}
    with pytest.raises(ConcurrentUpdate):
        await store.couplings.update_coupling(second)

    for side, record in ((Side.ERP, "e-1"), (Side.CRM, "c-1")):
        assert (await store.couplings.get_coupling("customers", side, record)).snapshot == {"v": 1}
    written.snapshot = {"v": 3}  # the winner's returned object carries the fresh ETag
    await store.couplings.update_coupling(written)
    assert (await store.couplings.get_coupling("customers", Side.CRM, "c-1")).snapshot == {"v": 3}


async def test_delete_removes_both_rows_and_succeeds_when_gone(store: StateStore) -> None:
    await store.couplings.create_coupling(Coupling("customers", erp_id="e-1", crm_id="c-1"))
    coupling = await store.couplings.get_coupling("customers", Side.CRM, "c-1")

    await store.couplings.delete_coupling(coupling)
    await store.couplings.delete_coupling(coupling)

    assert await rows(store, "customers") == []
    assert await store.couplings.uncouple("customers", Side.ERP, "e-1") is None


async def test_delete_with_a_stale_read_is_refused(store: StateStore) -> None:
    await store.couplings.create_coupling(Coupling("customers", erp_id="e-1", crm_id="c-1"))
    stale = await store.couplings.get_coupling("customers", Side.ERP, "e-1")
    fresh = dataclasses.replace(stale, skipped=True)
    await store.couplings.update_coupling(fresh)

    with pytest.raises(ConcurrentUpdate):
        await store.couplings.delete_coupling(stale)
    removed = await store.couplings.uncouple("customers", Side.CRM, "c-1")
    assert removed is not None and removed.skipped
    assert await rows(store, "customers") == []


async def test_list_yields_each_coupling_once_including_pending(store: StateStore) -> None:
    for n in range(7):
        await store.couplings.create_coupling(Coupling("contacts", erp_id=f"e-{n}", crm_id=f"c-{n}"))
    await store.couplings.reserve("contacts", Side.CRM, "c-new")
    await store.couplings.create_coupling(Coupling("accounts", erp_id="e-x", crm_id="c-x"))

    listed = [c async for c in store.couplings.list_couplings("contacts", page_size=3)]

    assert sorted((c.erp_id or "-", c.crm_id) for c in listed) == sorted(
        [(f"e-{n}", f"c-{n}") for n in range(7)] + [("-", "c-new")])


async def test_unsafe_natural_keys_round_trip(store: StateStore) -> None:
    awkward = "CUST/10#?\\ é\t'quote'"
    await store.couplings.create_coupling(Coupling("items/by number", erp_id=awkward, crm_id="c-1"))

    found = await store.couplings.get_coupling("items/by number", Side.ERP, awkward)

    assert found.erp_id == awkward and found.mapping == "items/by number"


async def test_large_snapshot_is_compressed_and_split(store: StateStore) -> None:
    import random

    rnd = random.Random(7)
    snapshot = {f"f{n}": "".join(rnd.choice("abcdefghij0123456789") for _ in range(200)) for n in range(1000)}
    await store.couplings.create_coupling(Coupling("items", erp_id="e-1", crm_id="c-1", snapshot=snapshot))

    found = await store.couplings.get_coupling("items", Side.CRM, "c-1")
    raw = await store.couplings.table.get_entity("items", "crm:c-1")

    assert found.snapshot == snapshot
    assert "snapshot" not in raw and "snapshot_z1" in raw  # > 64 KB compressed: several properties


async def test_naive_datetimes_and_non_json_snapshots_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.couplings.create_coupling(
            Coupling("items", erp_id="e-1", crm_id="c-1", erp_modified_on=dt.datetime(2024, 1, 1)))
    with pytest.raises(ValueError, match="JSON values only"):
        await store.couplings.create_coupling(Coupling("items", erp_id="e-1", crm_id="c-1", snapshot={"x": {1, 2}}))
    assert await rows(store, "items") == []


async def test_many_couplings_are_found_in_few_queries(store: StateStore) -> None:
    """A full sync's page asks for the couplings of many records at once (chunked under the 15-comparison
    limit of a Table-storage filter)."""
    ids = [f"src-{i:03d}" for i in range(40)]
    for i in range(0, 40, 3):
        await store.couplings.create_coupling(Coupling(mapping="customers", erp_id=ids[i], crm_id=f"acc-{i}"))
    found = await store.couplings.find_couplings("customers", Side.ERP, [*ids, "src-000", "nobody"])
    assert sorted(found) == [ids[i] for i in range(0, 40, 3)]
    assert found["src-003"].crm_id == "acc-3"


async def test_reserve_many_leaves_out_records_another_worker_holds(store: StateStore) -> None:
    ids = [f"c-{i:03d}" for i in range(130)]  # more than one transaction
    other = await store.couplings.reserve("customers", Side.ERP, "c-101")
    won = await store.couplings.reserve_many("customers", Side.ERP, ids, job_id="j1")
    assert set(won) == set(ids) - {"c-101"}
    assert all(c.pending and c.last_job_id == "j1" for c in won.values())
    assert (await store.couplings.get_coupling("customers", Side.ERP, "c-101")).reservation == other.reservation


async def test_complete_many_completes_each_and_reports_the_losers(store: StateStore) -> None:
    won = await store.couplings.reserve_many("customers", Side.ERP, [f"c-{i}" for i in range(60)])
    await store.couplings.create_coupling(Coupling(mapping="customers", erp_id="elsewhere", crm_id="acc-7"))
    pairs = [(won[f"c-{i}"], f"acc-{i}") for i in range(60)]
    outcomes = await store.couplings.complete_many(pairs)
    assert isinstance(outcomes[7], AlreadyCoupled)  # acc-7 is coupled to another record
    done = [o for o in outcomes if isinstance(o, Coupling)]
    assert len(done) == 59 and all(not c.pending for c in done)
    assert (await store.couplings.get_coupling("customers", Side.CRM, "acc-42")).erp_id == "c-42"
    assert (await store.couplings.get_coupling("customers", Side.ERP, "c-7")).pending
