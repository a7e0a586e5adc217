"""Deletions no notice reported, caught up by the modified-records sync: a key-set comparison for Business
Central, Dataverse change tracking (delta links kept as watermarks) with its fallbacks, and the guards against
deleting what is not deleted (filters, failed listings). Emulators over HTTP, Azurite for state."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import httpx

from shared.connectors import TrackedChanges
from shared.http.retry import RetryExecutor, RetryPolicy
from shared.mapping import DeletionPolicy, Direction, Side, TableMapping
from shared.sync import ModifiedRun, SyncEngine
from shared.sync.vanished import DELTA, KEYSET
from tests.support.connectors import make_bc
from tests.sync.conftest import World, coupled_customer

NO_OVERLAP = dt.timedelta(0)
QUICK = RetryPolicy(max_attempts=2, max_elapsed=1.0, base_delay=0.01, max_delay=0.02, rate_limit_base=0.01)


def customers(world: World, policy: DeletionPolicy) -> TableMapping:
    return world.pack.mapping("customers").model_copy(update={"deletion": policy})


async def modified(world: World, mapping: str | TableMapping = "customers",
                   engine: SyncEngine | None = None) -> dict[Direction, ModifiedRun]:
    """A modified-records sync without the overlap window: the surviving side of a deleted pair, unchanged
    since the previous run, is not re-read (re-read, its pass would find the counterpart gone by itself), so
    only the deletion check can find the deletion."""
    engine = engine or world.engine_with(world.engine.connector(Side.ERP).svc.retry.policy, overlap=NO_OVERLAP)
    return {r.direction: r for r in await engine.sync_modified(mapping)}


async def test_a_bc_customer_deleted_without_a_notice_is_deleted_in_sales_by_the_modified_sync(
        world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.delete("customers", customer["id"])  # no webhook reaches us
    runs = await modified(world, customers(world, DeletionPolicy.PROPAGATE))
    run = runs[Direction.TO_CRM]
    assert run.deletions is not None and (run.deletions.how, run.deletions.found) == (KEYSET, [customer["id"]])
    assert run.counts.get("vanished") == 1 and run.counts.get("deleted") == 1, run.counts
    assert await world.dv.row("accounts", account_id) is None
    assert await world.coupling("customers", Side.CRM, account_id) is None
    job = await world.state.jobs.get_job("customers", run.job_id)
    assert job.counts["deleted"] == 1 and "deleted without a notice" in (job.message or "")
    # The key-set read asked for ids only, and the next run finds nothing more.
    reads = [r for r in world.traffic.requests if r.method == "GET" and r.url.path.endswith("/customers")]
    assert any(r.url.params.get("$select") == "id,lastModifiedDateTime" and "$filter" not in r.url.params
               for r in reads)
    again = await modified(world, customers(world, DeletionPolicy.PROPAGATE))
    assert "vanished" not in again[Direction.TO_CRM].counts


async def test_the_packs_rule_applies_remove_coupling_keeps_the_account(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.delete("customers", customer["id"])
    run = (await modified(world))[Direction.TO_CRM]
    assert run.counts.get("uncoupled") == 1 and run.counts.get("vanished") == 1, run.counts
    assert await world.dv.row("accounts", account_id) is not None
    assert await world.coupling("customers", Side.CRM, account_id) is None


async def test_a_dataverse_account_deleted_is_found_through_the_kept_delta_link(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    mapping = customers(world, DeletionPolicy.PROPAGATE)
    first = (await modified(world, mapping))[Direction.TO_ERP]
    assert first.deletions is not None and first.deletions.how == KEYSET and first.deletions.found == []
    link = await world.state.watermarks.find_delta_link("customers", "accounts")
    assert link is not None and "$deltatoken=" in link
    await world.dv.delete("accounts", account_id)
    mark = world.traffic.mark()
    run = (await modified(world, mapping))[Direction.TO_ERP]
    assert run.deletions is not None and (run.deletions.how, run.deletions.found) == (DELTA, [account_id])
    assert run.counts.get("deleted") == 1 and run.counts.get("vanished") == 1, run.counts
    assert await world.bc.row("customers", customer["id"]) is None
    # One delta read, no full read of the accounts' ids, and a new link kept.
    tracked = [r for r in world.traffic.requests[mark:] if "odata.track-changes" in r.headers.get("Prefer", "")]
    assert tracked == [] and any("$deltatoken" in str(r.url) for r in world.traffic.requests[mark:])
    assert await world.state.watermarks.find_delta_link("customers", "accounts") not in (None, link)


async def test_an_account_that_left_the_filter_is_not_deleted(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    mapping = customers(world, DeletionPolicy.PROPAGATE)
    await modified(world, mapping)
    await world.dv.edit("accounts", account_id, {"statecode": 1})  # deactivated: outside `statecode eq 0`
    for _ in range(2):  # through the delta link, then with the link lost (a full key-set comparison)
        runs = await modified(world, mapping)
        assert all(r.deletions is not None and r.deletions.found == [] for r in runs.values()), runs
        await world.state.watermarks.delete_delta_link("customers", "accounts")
    assert await world.bc.row("customers", customer["id"]) is not None
    assert await world.coupling("customers", Side.CRM, account_id) is not None


async def test_an_expired_delta_link_falls_back_to_key_set_once_and_takes_a_new_link(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    mapping = customers(world, DeletionPolicy.PROPAGATE)
    await modified(world, mapping)
    old = await world.state.watermarks.find_delta_link("customers", "accounts")
    settings = world.dv.app.state.emulator.settings
    settings.delta_token_days = 1e-9  # every token is past its retention now
    await world.dv.delete("accounts", account_id)
    run = (await modified(world, mapping))[Direction.TO_ERP]
    assert run.deletions is not None and (run.deletions.how, run.deletions.found) == (KEYSET, [account_id])
    assert "refused" in " ".join(run.deletions.notes) and "Please perform a full sync" in run.deletions.notes[0]
    assert run.error is None and await world.bc.row("customers", customer["id"]) is None
    new = await world.state.watermarks.find_delta_link("customers", "accounts")
    assert new not in (None, old)
    settings.delta_token_days = 30.0
    assert (await modified(world, mapping))[Direction.TO_ERP].deletions.how == DELTA


async def test_a_table_without_change_tracking_is_compared_by_key_set_and_the_run_says_so(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    world.dv.app.state.emulator.settings.untracked_tables = ["accounts"]
    mapping = customers(world, DeletionPolicy.PROPAGATE)
    await modified(world, mapping)  # the watermark: the next run does not re-read the customer
    await world.dv.delete("accounts", account_id)
    run = (await modified(world, mapping))[Direction.TO_ERP]
    assert run.deletions is not None and (run.deletions.how, run.deletions.found) == (KEYSET, [account_id])
    assert "change tracking is not enabled on accounts" in run.deletions.summary()
    assert await world.bc.row("customers", customer["id"]) is None
    assert await world.state.watermarks.find_delta_link("customers", "accounts") is None
    job = await world.state.jobs.get_job("customers", run.job_id)
    assert "change tracking is not enabled" in (job.message or "")


class FailingPages(httpx.AsyncBaseTransport):
    """Answers 503 to every request for a page after the first of an unfiltered customers read (the key-set
    read; the modified listing carries a `$filter` and its link keeps it)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url).lower()
        if request.url.path.endswith("/customers") and "skiptoken" in url and "filter" not in url:
            return httpx.Response(503, json={"error": {"code": "ServiceUnavailable", "message": "down"}})
        return await self.inner.handle_async_request(request)


async def test_a_key_set_read_that_fails_part_way_applies_nothing(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    mapping = customers(world, DeletionPolicy.PROPAGATE)
    await modified(world, mapping)
    await world.bc.delete("customers", customer["id"])
    async with httpx.AsyncClient(transport=FailingPages(httpx.ASGITransport(app=world.bc.app))) as http:
        erp = make_bc(http, world.bc.app, page_size=2, retry=RetryExecutor(QUICK))
        engine = SyncEngine(world.pack, erp=erp, crm=world.crm, state=world.state,
                            options=dataclasses.replace(world.engine.options, overlap=NO_OVERLAP))
        run = (await modified(world, mapping, engine))[Direction.TO_CRM]
    assert run.deletions is not None and run.deletions.found == [] and run.counts.get("deleted") is None
    assert run.error is not None and "nothing applied" in run.error
    assert await world.dv.row("accounts", account_id) is not None
    job = await world.state.jobs.get_job("customers", run.job_id)
    assert job.status == "failed" and "deletion check failed" in (job.message or "")
    # The service is back: the next run applies the rule.
    run = (await modified(world, mapping))[Direction.TO_CRM]
    assert run.counts.get("vanished") == 1 and await world.dv.row("accounts", account_id) is None


async def test_a_listed_id_that_the_get_still_finds_is_not_deleted(world: World, monkeypatch: Any) -> None:
    """The GET confirms: an id missing from a listing (a record created meanwhile, a paging glitch) that the
    service still has is left alone."""
    customer, account_id = await coupled_customer(world)

    async def nothing_listed(entity: str, delta_link: str | None = None) -> TrackedChanges:
        return TrackedChanges(started=True, delta_link=None)

    monkeypatch.setattr(world.crm, "track_changes", nothing_listed)  # the engine's own connector
    run = (await modified(world, customers(world, DeletionPolicy.PROPAGATE), world.engine))[Direction.TO_ERP]
    assert run.deletions is not None and run.deletions.found == [] and "no delta link" in run.deletions.summary()
    assert await world.bc.row("customers", customer["id"]) is not None
    assert await world.dv.row("accounts", account_id) is not None
