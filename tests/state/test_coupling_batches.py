"""Couplings in bulk against Azurite: a page read with a range query, writes in entity-group transactions that
isolate a failing coupling, and what each costs in Table requests (counted on the client)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.mapping.types import Side
from shared.state import AlreadyCoupled, ConcurrentUpdate, Coupling, StateStore, TableNames
from shared.state.coupling_batches import (
    MAX_TRANSACTION,
    OpGroup,
    PartitionRate,
    TableRequestCounter,
    pack,
)
from shared.state.couplings import CouplingStore
from tests.support.azurite import Azurite

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
# Letters `encode_key` keeps, and ones it escapes (`~XX`), which sort differently once escaped.
AWKWARD = "abcXYZ019-_.:~ /#?\\'é€\t"


@dataclasses.dataclass
class Counted:
    state: StateStore
    count: TableRequestCounter

    @property
    def couplings(self) -> CouplingStore:
        return self.state.couplings


@pytest.fixture
async def counted(table_connection_string: str, table_prefix: str) -> AsyncIterator[Counted]:
    count = TableRequestCounter()
    async with TableServiceClient.from_connection_string(table_connection_string, raw_request_hook=count,
                                                         raw_response_hook=count.response) as service:
        state = StateStore(service, TableNames.with_prefix(table_prefix))
        await state.ensure_tables()
        count.reset()
        yield Counted(state, count)


def pairs(mapping: str, ids: list[str]) -> list[Coupling]:
    return [Coupling(mapping, erp_id=i, crm_id=f"crm-{i}", snapshot={"v": 0}) for i in ids]


async def couple(store: CouplingStore, mapping: str, ids: list[str]) -> None:
    outcomes = await store.create_many(pairs(mapping, ids))
    assert all(isinstance(o, Coupling) for o in outcomes)


def same(a: dict[str, Coupling], b: dict[str, Coupling]) -> bool:
    """Equal answers, down to the row each was read from."""
    return a == b and all((a[k].row_side, a[k].row_etag) == (b[k].row_side, b[k].row_etag) for k in a)


needs_azurite = pytest.mark.azurite


# ---- find_page -------------------------------------------------------------------------------------------------

@needs_azurite
async def test_a_key_ordered_page_of_1000_is_read_in_one_request(counted: Counted) -> None:
    ids = [f"CUST-{n:05d}" for n in range(1200)]
    await couple(counted.couplings, "customers", ids[::2])  # every other record coupled
    await counted.couplings.reserve("customers", Side.ERP, ids[301])  # a pending reservation inside the page
    counted.count.reset()

    page = await counted.couplings.find_page("customers", Side.ERP, ids[100:1100])

    assert counted.count.requests <= 3 and counted.count.transactions == 0
    assert counted.count.requests == 1  # 501 rows in range: one response holds them
    assert counted.count.rows_read == 501
    assert set(page) == {*ids[100:1100:2], ids[301]} and page[ids[301]].pending
    assert same(page, await counted.couplings.find_couplings("customers", Side.ERP, ids[100:1100]))


@needs_azurite
async def test_a_full_page_of_1000_couplings_costs_at_most_three_requests(counted: Counted) -> None:
    ids = [f"{n:06d}" for n in range(3000)]
    await couple(counted.couplings, "items", ids)
    for start in (0, 1000, 2000):
        counted.count.reset()
        page = await counted.couplings.find_page("items", Side.CRM, [f"crm-{i}" for i in ids[start:start + 1000]])
        assert len(page) == 1000
        assert counted.count.requests <= 3, counted.count.log
    # 3 000 records in 3 pages: 0.001 requests a record, far under the 0.02 an unchanged re-run may spend.
    assert counted.count.requests == 1


@needs_azurite
async def test_scattered_ids_stop_the_scan_at_its_bound_and_fall_back(counted: Counted) -> None:
    """A source that orders its keys differently from Table storage (e.g. SQL Server's uniqueidentifier order)
    hands over pages whose ids span the whole partition: the scan stops after 3 rows per id."""
    rnd = random.Random(3)
    ids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(2000)]
    await couple(counted.couplings, "contacts", ids)
    ordered = sorted(ids)
    asked = [ordered[0], ordered[-1], *random.Random(5).sample(ordered[1:-1], 48)]  # the extremes + 48 anywhere
    random.Random(6).shuffle(asked)
    counted.count.reset()

    page = await counted.couplings.find_page("contacts", Side.ERP, asked)

    assert set(page) == set(asked)
    assert counted.count.rows_read <= 3 * 50 + 50  # the bounded scan, then one row per id not reached
    assert counted.count.requests <= 1 + math.ceil(50 / 14)
    counted.count.reset()
    assert same(page, await counted.couplings.find_couplings("contacts", Side.ERP, asked))


@needs_azurite
async def test_an_unbounded_scan_would_have_read_the_whole_partition(counted: Counted) -> None:
    """The bound is what keeps the scattered case cheap: with a scan factor large enough, the same page reads
    every row between its extremes."""
    ids = [f"k{n:04d}" for n in range(600)]
    await couple(counted.couplings, "vendors", ids)
    wide = CouplingStore(counted.couplings.table, scan_factor=100)
    asked = ids[::60]  # 10 ids spread over 600 rows
    counted.count.reset()
    assert set(await wide.find_page("vendors", Side.ERP, asked)) == set(asked)
    assert counted.count.rows_read > 500
    counted.count.reset()
    assert set(await counted.couplings.find_page("vendors", Side.ERP, asked)) == set(asked)
    assert counted.count.rows_read <= 3 * 10 + 10


@needs_azurite
def test_find_page_agrees_with_find_couplings(azurite: Azurite) -> None:
    """Random id sets, in any order: coupled, pending, uncoupled, escaped characters, ids beyond the stored
    range, and both sides; with scan factors that force the fallback."""
    rnd = random.Random(11)
    pool = sorted({"".join(rnd.choice(AWKWARD) for _ in range(rnd.randint(1, 6))) for _ in range(160)})
    coupled, pending, absent = pool[:100], pool[100:125], pool[125:]
    mapping = "items/by #no"
    prefix = "h" + uuid.uuid4().hex[:10]

    async def setup() -> None:
        async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
            state = StateStore(service, TableNames.with_prefix(prefix))
            await state.ensure_tables()
            await couple(state.couplings, mapping, coupled)
            await state.couplings.reserve_many(mapping, Side.ERP, pending)

    async def compare(side: Side, ids: list[str], factor: int) -> None:
        async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
            table = service.get_table_client(TableNames.with_prefix(prefix).couplings)
            store = CouplingStore(table, scan_factor=factor)
            page = await store.find_page(mapping, side, ids)
            if side is Side.ERP:
                truth = {i for i in ids if i in coupled or i in pending}
            else:
                truth = {i for i in ids if i.startswith("crm-") and i.removeprefix("crm-") in coupled}
            assert set(page) == truth
            assert same(page, await store.find_couplings(mapping, side, ids))

    asyncio.run(setup())
    any_id = st.one_of(st.sampled_from(pool), st.text(AWKWARD, min_size=1, max_size=8))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(side=st.sampled_from([Side.ERP, Side.CRM]), ids=st.lists(any_id, max_size=40),
           factor=st.integers(1, 4))
    def check(side: Side, ids: list[str], factor: int) -> None:
        if side is Side.CRM:
            ids = [f"crm-{i}" if n % 3 else i for n, i in enumerate(ids)]  # mostly crm ids, some that are not
        asyncio.run(compare(side, ids, factor))

    check()
    assert absent  # ids of the pool never stored exist


# ---- update_many -----------------------------------------------------------------------------------------------

@needs_azurite
async def test_update_many_of_1000_couplings_is_20_transactions(counted: Counted) -> None:
    ids = [f"E{n:04d}" for n in range(1000)]
    await couple(counted.couplings, "customers", ids)
    read = await counted.couplings.find_page("customers", Side.ERP, ids)
    for c in read.values():
        c.snapshot = {"v": 1, "id": c.erp_id}
        c.record_synced(Side.CRM, modified_on=T0, etag='W/"2"')
    counted.count.reset()

    written = await counted.couplings.update_many([read[i] for i in ids])

    assert counted.count.transactions <= 20 and counted.count.requests == counted.count.transactions
    assert all(isinstance(c, Coupling) for c in written)
    again = await counted.couplings.find_page("customers", Side.CRM, [f"crm-{i}" for i in ids])
    assert all(again[f"crm-{i}"].snapshot == {"v": 1, "id": i} and again[f"crm-{i}"].crm_etag == 'W/"2"'
               for i in ids)
    # The answers carry the new ETags: writing them again succeeds.
    assert all(isinstance(c, Coupling) for c in await counted.couplings.update_many(written))  # type: ignore[arg-type]


@needs_azurite
async def test_one_stale_coupling_among_120_fails_alone(counted: Counted) -> None:
    ids = [f"S{n:03d}" for n in range(120)]
    await couple(counted.couplings, "customers", ids)
    read = await counted.couplings.find_page("customers", Side.ERP, ids)
    meanwhile = dataclasses.replace(read["S077"], skipped=True)
    await counted.couplings.update_coupling(meanwhile)  # another worker wrote S077 since we read it
    for c in read.values():
        c.snapshot = {"v": 2}
    counted.count.reset()

    outcomes = await counted.couplings.update_many([read[i] for i in ids])

    failed = [i for i, o in zip(ids, outcomes, strict=True) if not isinstance(o, Coupling)]
    assert failed == ["S077"] and isinstance(outcomes[77], ConcurrentUpdate)
    assert counted.count.transactions == 4  # 3 transactions (50 + 50 + 20), one sent again without S077
    again = await counted.couplings.find_page("customers", Side.CRM, [f"crm-{i}" for i in ids])
    assert [i for i in ids if again[f"crm-{i}"].snapshot != {"v": 2}] == ["S077"]
    assert again["crm-S077"].skipped and again["crm-S077"].snapshot == {"v": 0}  # the other worker's write stays


@needs_azurite
async def test_update_many_answers_each_item_when_rows_cannot_be_built_or_repeat(counted: Counted) -> None:
    ids = [f"B{n}" for n in range(6)]
    await couple(counted.couplings, "items", ids)
    read = await counted.couplings.find_page("items", Side.ERP, ids)
    read["B2"].erp_modified_on = dt.datetime(2024, 1, 1)  # naive: refused before sending, for B2 only
    for c in read.values():
        c.attempts = 5
    twice = dataclasses.replace(read["B4"], attempts=9)  # the same coupling twice, both from the same read

    outcomes = await counted.couplings.update_many([*(read[i] for i in ids), twice])

    assert isinstance(outcomes[2], ValueError)
    b4 = [outcomes[4], outcomes[6]]
    assert sum(isinstance(o, Coupling) for o in b4) == 1 and sum(isinstance(o, ConcurrentUpdate) for o in b4) == 1
    again = await counted.couplings.find_page("items", Side.ERP, ids)
    assert [again[i].attempts for i in ids] == [5, 5, 0, 5, next(o.attempts for o in b4 if isinstance(o, Coupling)), 5]


@needs_azurite
async def test_update_many_of_pending_and_complete_couplings(counted: Counted) -> None:
    won = await counted.couplings.reserve_many("customers", Side.CRM, ["c-1", "c-2"])
    await couple(counted.couplings, "customers", ["e-3"])
    complete = await counted.couplings.get_coupling("customers", Side.CRM, "crm-e-3")
    renewed = [dataclasses.replace(won["c-1"], reservation="r1"), dataclasses.replace(complete, attempts=2)]

    outcomes = await counted.couplings.update_many(renewed)

    assert all(isinstance(o, Coupling) for o in outcomes)
    assert (await counted.couplings.get_coupling("customers", Side.CRM, "c-1")).reservation == "r1"
    assert (await counted.couplings.get_coupling("customers", Side.ERP, "e-3")).attempts == 2
    with pytest.raises(ValueError, match="read from the store"):
        await counted.couplings.update_many([Coupling("customers", erp_id="x", crm_id="y")])


# ---- create_many / complete_many / reserve_many ----------------------------------------------------------------

@needs_azurite
async def test_create_many_with_one_already_coupled_record(counted: Counted) -> None:
    await counted.couplings.create_coupling(Coupling("customers", erp_id="elsewhere", crm_id="crm-M033"))
    ids = [f"M{n:03d}" for n in range(80)]
    counted.count.reset()

    outcomes = await counted.couplings.create_many(pairs("customers", ids))

    assert [i for i, o in zip(ids, outcomes, strict=True) if not isinstance(o, Coupling)] == ["M033"]
    refused = outcomes[33]
    assert isinstance(refused, AlreadyCoupled) and refused.existing.erp_id == "elsewhere"
    assert counted.count.transactions == 3  # 50 + 30 pairs, one sent again without M033
    assert await counted.couplings.find_coupling("customers", Side.ERP, "M033") is None  # nothing half-written
    both = await counted.couplings.find_page("customers", Side.CRM, [f"crm-{i}" for i in ids])
    assert all(both[f"crm-{i}"].erp_id == i for i in ids if i != "M033")
    created = outcomes[0]
    assert isinstance(created, Coupling) and created.snapshot_hash is not None
    created.attempts = 1
    await counted.couplings.update_coupling(created)  # carries a usable ETag


@needs_azurite
async def test_complete_many_isolates_a_loser_in_one_extra_transaction(counted: Counted) -> None:
    won = await counted.couplings.reserve_many("customers", Side.ERP, [f"r-{n}" for n in range(60)])
    await counted.couplings.create_coupling(Coupling("customers", erp_id="other", crm_id="acc-12"))
    stale = won["r-40"]
    await counted.couplings.renew_reservation(stale)  # taken over by another worker
    counted.count.reset()

    outcomes = await counted.couplings.complete_many([(won[f"r-{n}"], f"acc-{n}") for n in range(60)])

    assert isinstance(outcomes[12], AlreadyCoupled) and outcomes[12].existing.erp_id == "other"
    assert isinstance(outcomes[40], ConcurrentUpdate)
    assert sum(isinstance(o, Coupling) for o in outcomes) == 58
    assert counted.count.transactions == 2 + 2  # 50 + 10, then each loser costs one resend (not 50 requests)
    assert (await counted.couplings.get_coupling("customers", Side.CRM, "acc-59")).erp_id == "r-59"
    assert (await counted.couplings.get_coupling("customers", Side.ERP, "r-40")).pending


@needs_azurite
async def test_reserve_many_of_1000_is_10_transactions(counted: Counted) -> None:
    ids = [f"n{n:04d}" for n in range(1000)]
    await counted.couplings.reserve("customers", Side.ERP, "n0500")
    counted.count.reset()
    won = await counted.couplings.reserve_many("customers", Side.ERP, ids)
    assert set(won) == set(ids) - {"n0500"}
    assert counted.count.transactions == 11  # 10 transactions, one sent again without n0500


# ---- batching and pacing, without the service --------------------------------------------------------------------

def _group(pk: str, *rows: str, blob: int = 0) -> OpGroup[None]:
    async def failed(at: int, exc: Any) -> Exception:
        return exc

    return OpGroup([("create", {"PartitionKey": pk, "RowKey": r, "x": b"\0" * blob}) for r in rows],
                   lambda answers: None, failed)


def test_pack_cuts_by_operations_partition_size_and_repeated_rows() -> None:
    groups = [_group("a", f"erp:{n}", f"crm:{n}") for n in range(120)] + [_group("b", "erp:1")]
    chunks = pack(groups)
    assert [len(c) for c in chunks] == [50, 50, 20, 1]
    assert all(len({groups[i].partition for i in c}) == 1 for c in chunks)

    repeated = pack([_group("a", "erp:1", "crm:1"), _group("a", "erp:1", "crm:2"), _group("a", "erp:3")])
    assert repeated == [[0, 2], [1]]  # a transaction may not name a row twice

    big = pack([_group("a", f"erp:{n}", blob=700_000) for n in range(10)])
    assert all(len(c) <= 4 for c in big) and sum(map(len, big)) == 10  # ≤ 3 MiB of base64 each
    assert max(len(c) for c in pack([_group("a", f"r{n}") for n in range(250)])) == MAX_TRANSACTION


async def test_partition_rate_caps_entities_per_second() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    rate = PartitionRate(1000, clock=lambda: now[0], sleep=sleep)
    for _ in range(40):
        await rate.spend("a", 100)  # 4 000 entities: one second of burst, then 1 000 a second
    assert now[0] == pytest.approx(3.0)
    await rate.spend("b", 1000)  # another partition has its own budget
    assert now[0] == pytest.approx(3.0)
    rate.charge("a", 500)  # a read that returned 500 rows puts the bucket in debt
    await rate.spend("a", 0)
    assert now[0] == pytest.approx(3.5)
    unlimited = PartitionRate(None, clock=lambda: now[0], sleep=sleep)
    await unlimited.spend("a", 10**6)
    assert now[0] == pytest.approx(3.5)
