"""The full sync's bulk pipeline for coupled records (issue 12, `shared/sync/pipeline.py`), against both emulators
(HTTP via ASGI) and Azurite.

Costs are counted, not guessed: API requests by the connectors' traffic hook, Table requests by a
`raw_request_hook` on a state store of our own over the test's tables. Behaviour is judged against the
per-record path (`FullOptions.bulk=False`): the same scenario is played in two worlds built alike, one synced in
bulk and one record by record, and both must end with the same stores, results and error records."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from azure.core.pipeline import PipelineRequest
from azure.data.tables.aio import TableServiceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from shared.connectors import WriteOp, WriteResult, reads
from shared.http.retry import RetryExecutor
from shared.mapping import Side, loads_pack
from shared.state import StateStore, TableNames
from shared.sync import EngineOptions, SyncEngine
from shared.sync.full import FullRun
from tests.support.connectors import make_bc, make_dv
from tests.sync.conftest import BC_URL, DV_URL, PATIENT, ROOT, System, Traffic, World

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# The fields the scenarios edit, as each side names them.
ERP_FIELDS = {"city": "city", "phone": "phoneNumber", "name": "displayName"}
CRM_FIELDS = {"city": "address1_city", "phone": "telephone1", "name": "name"}


# ----- a world built from scratch (two per comparison), as tests/sync/conftest.py builds its `world`

@dataclass
class TableCount:
    """Table requests by table (a transaction is counted as `$batch`)."""

    names: TableNames
    seen: Counter[str] = field(default_factory=Counter)

    def __call__(self, request: PipelineRequest) -> None:
        path = request.http_request.url.split("?")[0]
        table = next((kind for kind, name in self.names.as_dict().items() if f"/{name}" in path),
                     "$batch" if path.endswith("$batch") else "other")
        self.seen[table] += 1

    def since(self, mark: Counter[str]) -> Counter[str]:
        return self.seen - mark


@asynccontextmanager
async def open_world(connection: str, prefix: str, *,
                     conflict: str = "erp_wins") -> AsyncIterator[tuple[World, TableCount]]:
    """A world like the `world` fixture's, its state store counting Table requests; `conflict` is the customers
    mapping's conflict policy."""
    names = TableNames.with_prefix(prefix)
    tables = TableCount(names)
    bc_app = create_bc(BusinessCentralSettings(records=4, seed=7))
    dv_app = create_dv(DataverseSettings(records=4, seed=7, webhook_delay_ms=0))
    traffic = Traffic([])
    hooks = {"request": [traffic], "response": [traffic.answered]}
    try:
        async with (TableServiceClient.from_connection_string(connection, raw_request_hook=tables) as service,
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app), event_hooks=hooks) as bc_http,
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app), event_hooks=hooks) as dv_http,
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app), base_url=BC_URL) as bc_admin,
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app), base_url=DV_URL) as dv_admin):
            state = StateStore(service, names)
            await state.ensure_tables()
            erp = make_bc(bc_http, bc_app, retry=RetryExecutor(PATIENT))
            crm = make_dv(dv_http, dv_app, retry=RetryExecutor(PATIENT))
            integration = dv_app.state.emulator.integration.user_id
            person = next(u for u, actor in dv_app.state.emulator.users().items()
                          if u != integration and actor.name not in ("SYSTEM",))
            text = (ROOT / "templates" / "bc-sales.yaml").read_text(encoding="utf-8")
            assert "\n    conflict: erp_wins\n" in text  # the customers mapping's, the first in the pack
            pack = loads_pack(text.replace("\n    conflict: erp_wins\n", f"\n    conflict: {conflict}\n", 1))
            options = EngineOptions(integration_users={Side.CRM: frozenset({integration})}, reservation_wait=5.0)
            engine = SyncEngine(pack, erp=erp, crm=crm, state=state, options=options)
            bc = System(bc_app, bc_admin, "bc-user-annie", {"_companyId": erp.company_id})
            yield (World(pack, engine, state, bc, System(dv_app, dv_admin, person), erp, crm, traffic, integration,
                         {Side.ERP: bc_http, Side.CRM: dv_http}), tables)
    finally:
        await bc_app.state.emulator.webhooks.aclose()
        await dv_app.state.emulator.webhooks.aclose()


async def seed(world: World, n: int) -> list[dict[str, Any]]:
    """`n` BC customers (and nothing else in either table), synced once: coupled pairs, in step."""
    for c in await world.bc.rows("customers"):
        await world.bc.delete("customers", c["id"])
    for a in await world.dv.rows("accounts"):
        await world.dv.delete("accounts", a["accountid"])
    codes = await world.couple_salespeople()
    eur = next(c["id"] for c in await world.bc.rows("currencies") if c["code"] == "EUR")
    rows = [{**world.bc.defaults, "number": f"P{i:04d}", "displayName": f"Pipeline Co {i}", "type": "Company",
             "city": "Malmö", "phoneNumber": f"+46 40 {i:04d}", "email": f"p{i}@pipeline.example.com",
             "blocked": " ", "creditLimit": 1000.0 + i, "currencyId": eur, "salespersonCode": next(iter(codes))}
            for i in range(n)]
    response = await world.bc.admin.post("/_admin/bulk/customers", params={"as": world.bc.person}, json=rows)
    assert response.status_code == 201, response.text
    runs = await world.engine.sync_full(["customers"])
    assert [f.message for r in runs for f in r.failures] == []
    return sorted(await world.bc.rows("customers"), key=lambda c: c["number"])


async def account_of(world: World, customer: dict[str, Any]) -> dict[str, Any]:
    coupling = await world.coupling("customers", Side.ERP, customer["id"])
    assert coupling is not None and coupling.crm_id is not None
    row = await world.dv.row("accounts", coupling.crm_id)
    assert row is not None
    return row


def page_reads(requests: Sequence[httpx.Request]) -> list[httpx.Request]:
    """The listing of a full sync's pages (key order), as opposed to reads by id."""
    return [r for r in requests if r.method == "GET" and "orderby" in str(r.url)]


# ----- costs

async def test_unchanged_rerun_reads_pages_and_writes_nothing(table_connection_string: str,
                                                               table_prefix: str) -> None:
    async with open_world(table_connection_string, table_prefix) as (world, tables):
        customers = await seed(world, 300)
        mark, table_mark = world.traffic.mark(), Counter(tables.seen)
        runs = await world.engine.sync_full(["customers"])
        sent = world.traffic.requests[mark:]
        used = tables.since(table_mark)
    assert [r.counts for r in runs] == [{"unchanged": len(customers)}] * 2
    assert [r for r in sent if r.method != "GET"] == []
    assert sent == page_reads(sent) and len(sent) == 2  # one page of each side, nothing by id
    processed = 2 * len(customers)
    assert len(sent) / processed <= 0.02
    # Per record: the page's couplings and error records, a range query each per page; nothing written.
    per_record = used["couplings"] + used["errors"] + used["conflicts"] + used["$batch"]
    assert used["$batch"] == 0 and used["conflicts"] == 0
    assert per_record / processed <= 0.02, used
    # Per page and run: the job (start, increment, finish) and the checkpoint (find, save, clear).
    assert used["jobs"] + used["watermarks"] <= 2 * 9, used


async def test_a_tenth_changed_is_read_and_written_in_batches(table_connection_string: str,
                                                              table_prefix: str) -> None:
    async with open_world(table_connection_string, table_prefix) as (world, tables):
        customers = await seed(world, 1000)
        changed = customers[::10]
        edits = {"customers": [{"id": c["id"], "city": f"Lund {i}"} for i, c in enumerate(changed)]}
        for row in edits["customers"]:
            await world.bc.edit("customers", row["id"], {"city": row["city"]})
        mark, table_mark = world.traffic.mark(), Counter(tables.seen)
        runs = await world.engine.sync_full(["customers"])
        sent = world.traffic.requests[mark:]
        used = tables.since(table_mark)
        accounts = {c["id"]: await account_of(world, c) for c in changed}
    assert [r.counts for r in runs] == [{"modified": len(changed), "unchanged": len(customers) - len(changed)},
                                        {"unchanged": len(customers)}]
    assert all(accounts[row["id"]]["address1_city"] == row["city"] for row in edits["customers"])
    written = [r for r in sent if r.method != "GET"]
    assert written and all(bulk_request(r) for r in written)  # no PATCH one by one
    # Everything sent, page reads included: two pages, the counterparts and the sources read by id in a
    # request or two each, the writes in a batch or two.
    assert len(sent) / len(changed) <= 0.05, [f"{r.method} {r.url.path}" for r in sent]
    # The page's couplings and errors read in bulk; the pairs written held, then stored, 50 per transaction.
    assert (used["couplings"] + used["errors"]) / (2 * len(customers)) <= 0.02, used
    assert used["$batch"] / len(changed) <= 0.05, used


# ----- the same scenario, in bulk and record by record

@dataclass(frozen=True)
class Edit:
    """A person's change before the full sync: `field` of the `index`th pair's record on `side` (a key of
    ERP_FIELDS / CRM_FIELDS), or "delete", or "refused" (a CRM country name BC cannot hold: more than 10
    characters, which the pack's value map passes on unchanged)."""

    index: int
    side: Side
    field: str
    value: str = ""


Interference = Callable[[World, list[dict[str, Any]]], Awaitable[None]]


@dataclass
class Ending:
    """What a full sync left, with record ids replaced by the pair's number (ids differ between worlds)."""

    counts: list[dict[str, int]]
    failures: list[tuple[str, ...]]
    errors: list[tuple[Any, ...]]
    conflicts: list[tuple[Any, ...]]
    couplings: list[tuple[Any, ...]]
    erp: dict[str, dict[str, Any]]
    crm: dict[str, dict[str, Any]]


async def play(world: World, pairs: list[tuple[dict[str, Any], dict[str, Any]]], edits: Sequence[Edit]) -> None:
    gone: set[tuple[Side, int]] = set()
    for e in edits:
        side = Side.CRM if e.field == "refused" else e.side
        if (side, e.index) in gone:
            continue
        customer, account = pairs[e.index]
        if e.field == "delete":
            gone.add((e.side, e.index))
            if e.side is Side.ERP:
                await world.bc.delete("customers", customer["id"])
            else:
                await world.dv.delete("accounts", account["accountid"])
        elif e.field == "refused":
            await world.dv.edit("accounts", account["accountid"], {"address1_country": "Deutschland Land"})
        elif e.side is Side.ERP:
            await world.bc.edit("customers", customer["id"], {ERP_FIELDS[e.field]: e.value})
        else:
            await world.dv.edit("accounts", account["accountid"], {CRM_FIELDS[e.field]: e.value})


def interfere_once(world: World, interference: Interference, customers: list[dict[str, Any]]) -> None:
    """Run `interference` (a person's edit through /_admin) right before the first write to the CRM, whether
    it goes in a batch (bulk) or alone (per record): between our read of the account and our write."""
    real_batch, real_update = world.crm.write_batch, world.crm.update
    done: list[bool] = []

    async def first() -> None:
        if not done:
            done.append(True)
            await interference(world, customers)

    async def write_batch(ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        await first()
        return await real_batch(ops, atomic=atomic)

    async def update(entity: str, record_id: str, payload: Any, *, etag: str | None = None) -> Any:
        await first()
        return await real_update(entity, record_id, payload, etag=etag)

    world.crm.write_batch = write_batch  # type: ignore[method-assign]
    world.crm.update = update  # type: ignore[method-assign]


async def ending(world: World, runs: Sequence[FullRun], names: dict[str, str]) -> Ending:
    def name(value: Any) -> Any:
        return names.get(str(value).lower(), "<id>") if value is not None else None

    def plain(value: Any) -> Any:
        if isinstance(value, str):
            return GUID.sub(lambda m: name(m.group(0)), value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in sorted(value.items())}
        return value

    errors = sorted([(e.direction, name(e.source_id), plain(e.message), name(e.destination_id), e.skipped,
                      e.transient) async for e in world.state.errors.list_errors("customers")])
    conflicts = sorted([(c.kind, c.field, plain(c.erp_value), plain(c.crm_value), str(c.winner), name(c.erp_id),
                         name(c.crm_id)) async for c in world.state.conflicts.list_conflicts("customers")])
    couplings = sorted([(name(c.erp_id), name(c.crm_id), c.result_to_crm, c.result_to_erp, c.skipped, c.attempts,
                         repr(plain(c.snapshot))) async for c in world.state.couplings.list_couplings("customers")])
    fields = {**{v: v for v in ERP_FIELDS.values()}, "country": "", "number": ""}
    erp = {c["number"]: {k: c.get(k) for k in fields} for c in await world.bc.rows("customers")}
    crm = {a["accountnumber"]: {k: a.get(k) for k in [*CRM_FIELDS.values(), "address1_country"]}
           for a in await world.dv.rows("accounts")}
    failures = sorted((r.direction.value, name(r.source_id), r.outcome.value, plain(r.message or ""),
                       str(r.retryable)) for run in runs for r in run.failures)
    return Ending([run.counts for run in runs], failures, errors, conflicts, couplings, erp, crm)


def bulk_request(request: httpx.Request) -> bool:
    """A request carrying many writes: `$batch`, or a Dataverse bulk action (UpdateMultiple, …)."""
    return request.url.path.endswith(("$batch", "Multiple"))


def writes(requests: Sequence[httpx.Request]) -> Counter[str]:
    """Writes by kind: `PATCH bc.test`, `bulk dv.test`, …"""
    return Counter(f"{'bulk' if bulk_request(r) else r.method} {r.url.host}" for r in requests if r.method != "GET")


async def both_ways(connection: str, n: int, edits: Sequence[Edit], *, conflict: str = "erp_wins",
                    interference: Interference | None = None,
                    sent: list[Counter[str]] | None = None) -> tuple[Ending, Ending]:
    """The scenario in a world synced in bulk and in one synced record by record: (bulk, per record). `sent`
    receives each world's writes during the full sync (bulk first)."""
    endings = []
    for bulk in (True, False):
        async with open_world(connection, "t" + uuid.uuid4().hex[:10], conflict=conflict) as (world, _):
            customers = await seed(world, n)
            pairs = [(c, await account_of(world, c)) for c in customers]
            names = {**{c["id"]: c["number"] for c, _ in pairs}, **{a["accountid"]: c["number"] for c, a in pairs}}
            await play(world, pairs, edits)
            if interference is not None:
                interfere_once(world, interference, customers)
            mark = world.traffic.mark()
            runs = await world.engine.sync_full(["customers"], bulk=bulk)
            if sent is not None:
                sent.append(writes(world.traffic.requests[mark:]))
            endings.append(await ending(world, runs, names))
    return endings[0], endings[1]


async def test_a_settled_conflict_ends_as_record_by_record(table_connection_string: str) -> None:
    edits = [Edit(0, Side.ERP, "city", "Lund"), Edit(0, Side.CRM, "city", "Oslo"),  # the same field: ERP wins
             Edit(1, Side.ERP, "city", "Graz"), Edit(1, Side.CRM, "phone", "+47 1")]  # different fields: both stay
    sent: list[Counter[str]] = []
    bulk, per_record = await both_ways(table_connection_string, 3, edits, sent=sent)
    assert bulk == per_record
    # In bulk, each side's writes in one batch; record by record, one PATCH each (pair 1 is written both ways).
    assert sent == [Counter({"bulk bc.test": 1, "bulk dv.test": 1}),
                    Counter({"PATCH bc.test": 1, "PATCH dv.test": 2})]
    assert bulk.counts == [{"modified": 2, "unchanged": 1}, {"unchanged": 3}]
    assert bulk.erp["P0000"]["city"] == bulk.crm["P0000"]["address1_city"] == "Lund"
    assert (bulk.erp["P0001"]["city"], bulk.erp["P0001"]["phoneNumber"]) == ("Graz", "+47 1")
    assert (bulk.crm["P0001"]["address1_city"], bulk.crm["P0001"]["telephone1"]) == ("Graz", "+47 1")
    assert [c[:2] + c[4:] for c in bulk.conflicts] == [("update", "city ⇄ address1_city", "erp", "P0000", "P0000")]
    assert bulk.errors == []


async def test_an_unresolved_conflict_ends_as_record_by_record(table_connection_string: str) -> None:
    edits = [Edit(0, Side.ERP, "city", "Lund"), Edit(0, Side.CRM, "city", "Oslo")]
    bulk, per_record = await both_ways(table_connection_string, 2, edits, conflict="error")
    assert bulk == per_record
    assert bulk.counts == [{"failed": 1, "unchanged": 1}, {"failed": 1, "unchanged": 1}]
    conflict = "update conflict: both sides changed 'city ⇄ address1_city'"
    assert [(e[0], e[1], e[2].startswith(conflict)) for e in bulk.errors] == [
        ("to_crm", "P0000", True), ("to_erp", "P0000", True)]
    assert (bulk.erp["P0000"]["city"], bulk.crm["P0000"]["address1_city"]) == ("Lund", "Oslo")  # left to a person


async def test_a_deleted_counterpart_ends_as_record_by_record(table_connection_string: str) -> None:
    # A deletion comes to light when the other side changed (an unchanged source is not looked at further).
    edits = [Edit(0, Side.CRM, "delete"), Edit(0, Side.ERP, "city", "Lund"),
             Edit(1, Side.ERP, "delete"), Edit(1, Side.CRM, "phone", "+47 2"), Edit(2, Side.ERP, "city", "Lund")]
    bulk, per_record = await both_ways(table_connection_string, 4, edits)
    assert bulk == per_record
    assert bulk.counts == [{"uncoupled": 1, "modified": 1, "unchanged": 1}, {"uncoupled": 1, "unchanged": 2}]
    assert [c[0] for c in bulk.conflicts] == ["deletion", "deletion"]  # remove_coupling kept the survivors
    assert {c[0] for c in bulk.couplings} == {"P0002", "P0003"}
    assert "P0000" in bulk.erp and "P0001" in bulk.crm


async def test_a_record_changed_between_read_and_write_ends_as_record_by_record(table_connection_string: str) -> None:
    async def person_edits_the_account(world: World, customers: list[dict[str, Any]]) -> None:
        account = await account_of(world, customers[0])
        await world.dv.edit("accounts", account["accountid"], {"telephone1": "+49 89 2"})

    edits = [Edit(0, Side.ERP, "city", "Lund")]
    sent: list[Counter[str]] = []
    bulk, per_record = await both_ways(table_connection_string, 2, edits, interference=person_edits_the_account,
                                       sent=sent)
    assert bulk == per_record
    # The batched write met the 412 and the record went the per-record way, as in the other world, whose first
    # PATCH met it: read again, merged, the city written to the CRM and the person's phone number to the ERP.
    assert sent == [Counter({"bulk dv.test": 1, "PATCH dv.test": 1, "PATCH bc.test": 1}),
                    Counter({"PATCH dv.test": 2, "PATCH bc.test": 1})]
    # The 412 made the sync read again and merge: the city travelled, the person's phone number too.
    assert bulk.counts == [{"modified": 1, "unchanged": 1}, {"unchanged": 2}]
    assert (bulk.crm["P0000"]["address1_city"], bulk.crm["P0000"]["telephone1"]) == ("Lund", "+49 89 2")
    assert (bulk.erp["P0000"]["city"], bulk.erp["P0000"]["phoneNumber"]) == ("Lund", "+49 89 2")
    assert bulk.errors == [] and bulk.failures == []


async def test_a_write_refused_after_the_other_side_was_written_ends_as_record_by_record(
        table_connection_string: str) -> None:
    async def person_edits_the_phone_again(world: World, customers: list[dict[str, Any]]) -> None:
        account = await account_of(world, customers[0])
        await world.dv.edit("accounts", account["accountid"], {"telephone1": "+49 89 9"})

    # Both sides changed, different fields: the ERP is written first (the phone), then the CRM (the city) — but
    # a person edits the phone in Sales again just before: that write is refused. The phone we wrote to the ERP
    # counts as synced, so the person's newer phone wins on both sides.
    edits = [Edit(0, Side.ERP, "city", "Lund"), Edit(0, Side.CRM, "phone", "+33 1 2")]
    sent: list[Counter[str]] = []
    bulk, per_record = await both_ways(table_connection_string, 2, edits, interference=person_edits_the_phone_again,
                                       sent=sent)
    assert bulk == per_record
    assert sent[0]["bulk bc.test"] == sent[0]["bulk dv.test"] == 1
    assert (bulk.erp["P0000"]["phoneNumber"], bulk.crm["P0000"]["telephone1"]) == ("+49 89 9", "+49 89 9")
    assert (bulk.erp["P0000"]["city"], bulk.crm["P0000"]["address1_city"]) == ("Lund", "Lund")
    assert bulk.errors == [] and bulk.failures == []


async def test_a_refused_value_ends_as_record_by_record(table_connection_string: str) -> None:
    edits = [Edit(0, Side.CRM, "refused"), Edit(1, Side.CRM, "city", "Oslo")]
    sent: list[Counter[str]] = []
    bulk, per_record = await both_ways(table_connection_string, 3, edits, sent=sent)
    assert bulk == per_record
    # Refused in the batch, then again on its own: the per-record path writes the error record.
    assert sent == [Counter({"bulk bc.test": 1, "PATCH bc.test": 1}), Counter({"PATCH bc.test": 2})]
    assert bulk.counts == [{"unchanged": 3}, {"failed": 1, "modified": 1, "unchanged": 1}]
    [error] = bulk.errors
    assert error[:2] == ("to_erp", "P0000") and "update customers(P0000) failed" in error[2], error
    assert error[4:] == (False, False)  # a first permanent failure: recorded, not skipped yet
    assert bulk.erp["P0001"]["city"] == "Oslo"


EDITS = st.builds(Edit, index=st.integers(0, 3), side=st.sampled_from([Side.ERP, Side.CRM]),
                  field=st.sampled_from(["city", "phone", "name", "delete", "refused"]),
                  value=st.sampled_from(["Lund", "Oslo", "Graz"]))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(EDITS, max_size=6), conflict=st.sampled_from(["erp_wins", "crm_wins", "error"]))
async def test_random_edits_end_alike_in_bulk_and_record_by_record(table_connection_string: str, edits: list[Edit],
                                                                   conflict: str) -> None:
    bulk, per_record = await both_ways(table_connection_string, 4, edits, conflict=conflict)
    assert bulk == per_record


async def test_get_many_reads_by_id_in_requests_that_keep_urls_short(world: World,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "MAX_URL_CHARS", 400)  # a few keys per request
    customers = [c for c in await world.bc.rows("customers") if c.get("_companyId") == world.erp.company_id]
    accounts = await world.dv.rows("accounts")
    gone = [str(uuid.uuid4()) for _ in range(6)]  # deleted, or never there
    for connector, entity, ids in ((world.erp, "customers", [c["id"] for c in customers]),
                                   (world.crm, "accounts", [a["accountid"].upper() for a in accounts])):
        mark = world.traffic.mark()
        found = await connector.get_many(entity, [*gone[:3], *ids, *gone[3:]], select=None)
        sent = world.traffic.requests[mark:]
        assert sorted(found) == sorted(ids)  # by the id as asked (upper case too); the missing one absent
        assert all(found[i].id.casefold() == i.casefold() for i in ids)
        assert 1 < len(sent) < len(ids) + len(gone), [str(r.url) for r in sent]
        assert all(len(str(r.url)) <= 400 for r in sent), [str(r.url) for r in sent]


class Crash(Exception):
    pass


async def test_a_run_interrupted_while_writing_lets_its_pairs_go(table_connection_string: str,
                                                                 table_prefix: str) -> None:
    async with open_world(table_connection_string, table_prefix) as (world, _):
        customers = await seed(world, 4)
        for c in customers[:3]:
            await world.bc.edit("customers", c["id"], {"city": "Lund"})
        # Both sides changed for the first: its ERP write goes through, the CRM batch never comes back.
        account = await account_of(world, customers[0])
        await world.dv.edit("accounts", account["accountid"], {"telephone1": "+47 2"})
        real = world.crm.write_batch

        async def crash(ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
            raise Crash("worker died")

        world.crm.write_batch = crash  # type: ignore[method-assign]
        with pytest.raises(Crash):
            await world.engine.sync_full(["customers"])
        held = [c async for c in world.state.couplings.list_couplings("customers") if c.reservation is not None]
        assert held == []  # nobody has to wait for a hold that would only go stale
        first = await world.coupling("customers", Side.ERP, customers[0]["id"])
        assert first is not None and first.snapshot is not None
        assert first.snapshot["crm"]["phoneNumber ⇄ telephone1"] == "+47 2"  # what reached the ERP counts as synced
        world.crm.write_batch = real  # type: ignore[method-assign]
        runs = await world.engine.sync_full(["customers"])
        assert [f.message for r in runs for f in r.failures] == []
        for c in customers[:3]:
            assert (await account_of(world, c))["address1_city"] == "Lund"
        assert (await world.bc.row("customers", customers[0]["id"]) or {})["phoneNumber"] == "+47 2"
