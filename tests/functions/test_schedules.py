"""The timers' work: BC subscriptions created with the real handshake and renewed before they expire, the
retry of failed records, the purge of old jobs and errors, the modified-records sync of every mapping."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import AsyncIterator
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.functions.timer import TimerRequest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from shared.maintenance import purge_history, retry_failed, sync_modified_all
from shared.mapping import Side, load_pack
from shared.state import Subscription
from shared.state.subscriptions import client_state_digest
from shared.subscriptions import (
    SYSTEM,
    BusinessCentralSubscriptions,
    WantedSubscription,
    ensure_subscriptions,
    plan_subscriptions,
    wanted_subscriptions,
)
from shared.sync import Outcome
from shared.telemetry.activity import ActivityRecorder, recent
from tests.functions.hooks import HandshakeReceiver
from tests.functions.runtime import app_settings, installed
from tests.sync import conftest as fixtures
from tests.sync.conftest import ROOT, World, bc_customer, coupled_customer

# The engine fixtures of tests/sync, reused (bc_app is replaced below: its webhooks reach a receiver).
pack, dv_app, state, engine_options, world = (fixtures.pack, fixtures.dv_app, fixtures.state,
                                              fixtures.engine_options, fixtures.world)

PUBLIC = "https://dualsync.example.net"
SECRET = "client-state-s3cret"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def receiver() -> HandshakeReceiver:
    return HandshakeReceiver()


@pytest.fixture
def bc_lifetime_days() -> float:
    return 3.0


@pytest.fixture
async def bc_app(receiver: HandshakeReceiver, bc_lifetime_days: float) -> AsyncIterator[Starlette]:
    """The BC emulator, its handshakes and notifications going to the receiver."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as hooks:
        app = create_bc(BusinessCentralSettings(records=4, seed=7, subscription_lifetime_days=bc_lifetime_days,
                                                notification_delay_ms=60_000), http=hooks)
        yield app
        await app.state.emulator.webhooks.aclose()


def _wanted(world: World, *entities: str) -> list[WantedSubscription]:
    found = wanted_subscriptions(world.pack, company_id=world.erp.company_id, public_base_url=PUBLIC)
    return [w for w in found if w.entity in entities] if entities else found


async def _ensure(world: World, wanted: list[WantedSubscription], **kwargs):
    kwargs.setdefault("now", dt.datetime.now(dt.UTC))
    kwargs.setdefault("renew_within", dt.timedelta(days=1))
    kwargs.setdefault("client_state", SECRET)
    return await ensure_subscriptions(BusinessCentralSubscriptions(world.erp), world.state.subscriptions, wanted,
                                      **kwargs)


# ----- which subscriptions a pack needs (pure)
def test_every_bc_entity_synced_from_gets_one_subscription() -> None:
    wanted = wanted_subscriptions(load_pack(ROOT / "templates" / "bc-sales.yaml"), company_id="c0",
                                  public_base_url=PUBLIC + "/")
    by_entity = {w.entity: w for w in wanted}
    assert by_entity["customers"].notification_url == f"{PUBLIC}/api/webhooks/business_central/customers"
    assert by_entity["customers"].resource == "/api/v2.0/companies(c0)/customers"
    assert by_entity["salesOrders"].mappings == ("sales-orders", "sales-order-status")  # one per entity set
    assert "salespeoplePurchasers" not in by_entity  # salespeople flow CRM → BC only
    assert len(wanted) == len(by_entity)


def test_a_pack_without_business_central_needs_none_and_a_bad_url_is_refused() -> None:
    fo = load_pack(ROOT / "templates" / "fo-dataverse.yaml")
    assert wanted_subscriptions(fo, company_id="c0", public_base_url=PUBLIC) == []
    with pytest.raises(ValueError, match="absolute http"):
        wanted_subscriptions(load_pack(ROOT / "templates" / "bc-sales.yaml"), company_id="c0",
                             public_base_url="dualsync.example.net")


def _sub(entity: str, expires: dt.datetime, secret: str = SECRET) -> Subscription:
    return Subscription(SYSTEM, f"id-{entity}", f"/api/v2.0/companies(c0)/{entity}",
                        f"{PUBLIC}/api/webhooks/business_central/{entity}", client_state_digest(secret), expires)


def _want(entity: str) -> WantedSubscription:
    return WantedSubscription(entity, f"/api/v2.0/companies(c0)/{entity}",
                              f"{PUBLIC}/api/webhooks/business_central/{entity}", (entity,))


@given(minutes_left=st.integers(min_value=-6000, max_value=6000))
def test_plan_renews_within_the_window_recreates_the_expired_and_keeps_the_rest(minutes_left: int) -> None:
    hours_left = minutes_left / 60
    stored = [_sub("customers", NOW + dt.timedelta(minutes=minutes_left))]
    plan = plan_subscriptions([_want("customers")], stored, client_state=SECRET, now=NOW,
                              renew_within=dt.timedelta(hours=24))
    if hours_left <= 0:
        assert plan.expired == stored and [w.entity for w in plan.create] == ["customers"] and not plan.renew
    elif hours_left <= 24:
        assert [s for _, s in plan.renew] == stored and not plan.create and not plan.keep
    else:
        assert plan.keep == stored and not plan.create and not plan.renew


def test_plan_creates_the_missing_drops_the_unwanted_and_renews_on_a_rotated_secret() -> None:
    far = NOW + dt.timedelta(days=2)
    stored = [_sub("customers", far, secret="old-secret"), _sub("vendors", far), _sub("items", far)]
    # BC accepts the resource without its /api/v2.0/ prefix: still the same subscription.
    stored[2] = dataclasses.replace(stored[2], resource="companies(C0)/items")
    plan = plan_subscriptions([_want("customers"), _want("contacts"), _want("items")], stored, client_state=SECRET,
                              now=NOW, renew_within=dt.timedelta(hours=24))
    assert [w.entity for w in plan.create] == ["contacts"]
    assert [s.subscription_id for _, s in plan.renew] == ["id-customers"]
    assert [s.subscription_id for s in plan.stale] == ["id-vendors"]
    assert [s.subscription_id for s in plan.keep] == ["id-items"]


# ----- against the BC emulator, with the handshake
async def test_subscriptions_are_created_with_the_handshake_and_recorded(world: World,
                                                                         receiver: HandshakeReceiver) -> None:
    wanted = _wanted(world, "customers", "contacts")
    report = await _ensure(world, wanted)
    assert report.ok and sorted(report.created) == ["contacts", "customers"]
    assert sorted(receiver.handshakes) == ["/api/webhooks/business_central/contacts",
                                           "/api/webhooks/business_central/customers"]
    stored = {s.resource: s async for s in world.state.subscriptions.list_subscriptions(SYSTEM)}
    remote = {s["subscriptionId"]: s for s in world.bc.app.state.emulator.store.table("subscriptions").all()}
    assert set(stored) == {w.resource for w in wanted}
    for sub in stored.values():
        at_bc = remote[sub.subscription_id]
        assert at_bc["clientState"] == SECRET and at_bc["notificationUrl"] == sub.notification_url
        assert dt.timedelta(days=2.9) < sub.expires_at - dt.datetime.now(dt.UTC) <= dt.timedelta(days=3)
        assert sub.remote_etag and sub.client_state_hash == client_state_digest(SECRET)

    again = await _ensure(world, wanted)  # nothing due: no request reaches BC's subscriptions
    assert (again.created, again.renewed, sorted(again.kept)) == ([], [], sorted(remote))
    assert len(receiver.handshakes) == 2


@pytest.mark.parametrize("bc_lifetime_days", [0.5])
async def test_a_subscription_expiring_within_a_day_is_renewed_with_if_match(world: World,
                                                                             receiver: HandshakeReceiver) -> None:
    wanted = _wanted(world, "customers")
    await _ensure(world, wanted)
    before = await anext(world.state.subscriptions.list_subscriptions(SYSTEM))
    mark = world.traffic.mark()
    report = await _ensure(world, wanted)  # a 12-hour lifetime is inside the 1-day renewal window
    assert report.renewed == ["customers"] and not report.created
    patches = [r for r in world.traffic.requests[mark:] if r.method == "PATCH"]
    assert len(patches) == 1 and "subscriptions('" in str(patches[0].url)
    assert patches[0].headers["If-Match"] == before.remote_etag
    after = await world.state.subscriptions.get_subscription(SYSTEM, before.subscription_id)
    assert after.expires_at > before.expires_at and after.remote_etag != before.remote_etag
    assert len(receiver.handshakes) == 2  # BC validates the URL again on renewal


async def test_a_subscription_bc_deleted_is_created_again_and_a_refused_handshake_is_reported(
        world: World, receiver: HandshakeReceiver) -> None:
    wanted = _wanted(world, "customers")
    await _ensure(world, wanted)
    old = await anext(world.state.subscriptions.list_subscriptions(SYSTEM))
    await BusinessCentralSubscriptions(world.erp).delete(old.subscription_id, old.remote_etag)  # as BC does
    report = await _ensure(world, wanted, now=old.expires_at - dt.timedelta(hours=1))
    assert report.created == ["customers"] and not report.failed
    ids = [s.subscription_id async for s in world.state.subscriptions.list_subscriptions(SYSTEM)]
    assert len(ids) == 1 and ids[0] != old.subscription_id

    receiver.refuse = True
    failed = await _ensure(world, _wanted(world, "contacts"))
    assert failed.failed and failed.failed[0][0] == "contacts" and "could not be validated" in failed.failed[0][1]
    assert SECRET not in repr(failed)
    # contacts was not created; customers, no longer wanted, was removed at BC and here
    assert failed.removed == ids
    assert [s async for s in world.state.subscriptions.list_subscriptions(SYSTEM)] == []
    assert list(world.bc.app.state.emulator.store.table("subscriptions").all()) == []


async def test_without_a_client_state_nothing_is_subscribed(world: World) -> None:
    with pytest.raises(ValueError, match="clientState"):
        await _ensure(world, _wanted(world, "customers"), client_state="")


# ----- retry of failed records, purge, modified sync
async def test_retry_takes_failed_records_not_skipped_ones(world: World) -> None:
    people = await world.bc.rows("salespeoplePurchasers")
    first = await bc_customer(world, salespersonCode=people[0]["code"])
    second = await bc_customer(world, number="C8001", salespersonCode=people[0]["code"])
    for customer in (first, second):
        failed = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
        assert failed.outcome is Outcome.FAILED
    await world.state.errors.skip_error("customers", "to_crm", second["id"])
    await world.couple_salespeople()  # the missing dependency is there now

    report = await retry_failed(world.engine)
    assert [(r.source_id, r.outcome) for r in report.results] == [(first["id"], "inserted")]
    assert await world.state.errors.find_error("customers", "to_crm", first["id"]) is None
    assert (await world.coupling("customers", Side.ERP, first["id"])).crm_id
    skipped = await world.state.errors.get_error("customers", "to_crm", second["id"])
    assert skipped.skipped and await world.coupling("customers", Side.ERP, second["id"]) is None

    forced = await retry_failed(world.engine, include_skipped=True, force=True, direction="to-crm")
    assert [(r.source_id, r.outcome) for r in forced.results] == [(second["id"], "inserted")]
    assert forced.still_failing == 0


async def test_retry_reports_errors_of_a_mapping_the_pack_no_longer_has(world: World) -> None:
    await world.state.errors.record_failure("retired", direction="to_crm", source_id="x1", message="boom")
    report = await retry_failed(world.engine)
    assert [(r.mapping, r.outcome) for r in report.results] == [("retired", "not retried")]
    assert report.still_failing == 1


async def test_purge_removes_only_history_older_than_the_retention(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    old = await world.state.jobs.start_job("customers", direction="to_crm", trigger="schedule",
                                           started_at=now - dt.timedelta(days=40))
    new = await world.state.jobs.start_job("customers", direction="to_crm", trigger="schedule", started_at=now)
    await world.state.errors.record_failure("customers", direction="to_crm", source_id="a", message="old",
                                            now=now - dt.timedelta(days=31))
    await world.state.errors.record_failure("customers", direction="to_crm", source_id="b", message="new", now=now)
    minutes = ActivityRecorder(world.state, flush_s=60)
    minutes.add("customers", "to_crm", at=now - dt.timedelta(days=31), changes=3)
    minutes.add("customers", "to_crm", at=now, changes=1)
    await minutes.aclose()
    report = await purge_history(world.state, retention=dt.timedelta(days=30), now=now)
    assert (report.jobs, report.errors, report.activity) == (1, 1, 1)
    kept = await recent(world.state, mapping="customers", since=now - dt.timedelta(days=60))
    assert [m.changes for m in kept] == [1]
    assert [j.job_id async for j in world.state.jobs.list_jobs("customers")] == [new.job_id]
    assert [e.source_id async for e in world.state.errors.list_errors("customers")] == ["b"]
    assert old.job_id != new.job_id
    with pytest.raises(ValueError, match="positive"):
        await purge_history(world.state, retention=dt.timedelta(0))


async def test_modified_sync_runs_every_enabled_mapping_dependencies_first(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Luleå"})
    report = await sync_modified_all(world.engine)
    order = [r.mapping for r in report.runs]
    assert order.index("currencies") < order.index("customers") < order.index("contacts")
    assert {m.name for m in world.pack.mappings if m.enabled and m.kind == "table"} == set(order)
    assert all(r.error is None for r in report.runs) and not report.failed
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "Luleå"
    customers = [r for r in report.runs if r.mapping == "customers"]
    assert [r.direction.value for r in customers] == ["to_crm", "to_erp"] and customers[0].counts.get("modified") == 1


# ----- the timer functions themselves, called as the host calls them
def test_the_timers_are_indexed_with_their_schedules_and_a_schedule_is_settable() -> None:
    from functions.schedules import FUNCTION_NAMES, schedules_blueprint
    from shared.settings import SettingsError, load_schedules

    indexed = _indexed()
    timers = {name: next(b for b in indexed[name].get_bindings() if b.type == "timerTrigger")
              for name in FUNCTION_NAMES}
    assert timers["timer_modified_sync"].schedule == "0 */30 * * * *"  # BC's 30-minute default
    custom = schedules_blueprint(load_schedules({"DUALSYNC_SCHEDULES__MODIFIED": "0 */5 * * * *"}))
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(custom)
    schedules = {f.get_function_name(): f.get_bindings()[0].schedule for f in app.get_functions()}
    assert schedules["timer_modified_sync"] == "0 */5 * * * *"
    with pytest.raises(SettingsError, match="DUALSYNC_SCHEDULES__PURGE: must be an NCRONTAB expression"):
        load_schedules({"DUALSYNC_SCHEDULES__PURGE": "*/5 * * * *"})


@functools.cache
def _indexed() -> dict[str, Any]:
    """The app's functions as the host indexes them (an app of our own: `get_functions` runs once per app)."""
    from function_app import build_app

    app = build_app(load_pack(ROOT / "templates" / "bc-sales.yaml"))
    return {f.get_function_name(): f for f in app.get_functions()}


def _timer(name: str) -> Any:
    return _indexed()[name].get_user_function()


async def test_the_subscription_timer_subscribes_every_bc_entity_of_the_pack(
        world: World, receiver: HandshakeReceiver, caplog: pytest.LogCaptureFixture) -> None:
    settings = app_settings(public_url=PUBLIC, webhooks={"bc_client_state": SECRET})
    with installed(world.engine, settings):
        await _timer("timer_bc_subscriptions")(TimerRequest())
        stored = [s async for s in world.state.subscriptions.list_subscriptions(SYSTEM)]
        entities = {s.resource.rsplit("/", 1)[1] for s in stored}
        assert {"customers", "contacts", "items", "currencies", "salesOrders"} <= entities
        # BC offers no webhooks on document lines (a sub-entity): not asked for, so nothing fails.
        assert "salesInvoiceLines" not in entities
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
        assert SECRET not in caplog.text
        handshakes = len(receiver.handshakes)
        await _timer("timer_bc_subscriptions")(TimerRequest(past_due=True))  # nothing due: nothing sent
        assert len(receiver.handshakes) == handshakes

    caplog.clear()
    with installed(world.engine, app_settings(webhooks={"bc_client_state": SECRET})):  # no public URL
        await _timer("timer_bc_subscriptions")(TimerRequest())
    assert "DUALSYNC_PUBLIC_URL" in caplog.text


async def test_the_retry_purge_and_modified_timers_do_their_work(world: World) -> None:
    people = await world.bc.rows("salespeoplePurchasers")
    customer = await bc_customer(world, salespersonCode=people[0]["code"])
    assert (await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)).outcome == "failed"
    await world.couple_salespeople()
    now = dt.datetime.now(dt.UTC)
    await world.state.jobs.start_job("customers", direction="to_crm", trigger="schedule",
                                     started_at=now - dt.timedelta(days=6))
    with installed(world.engine, app_settings(schedules={"retention_days": 5})):
        await _timer("timer_retry_failed")(TimerRequest())
        assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is None
        assert (await world.coupling("customers", Side.ERP, customer["id"])).crm_id
        await _timer("timer_purge")(TimerRequest())
        jobs = [j async for j in world.state.jobs.list_jobs("customers")]
        assert jobs and all(now - j.started_at < dt.timedelta(days=5) for j in jobs)
        await _timer("timer_modified_sync")(TimerRequest())
        triggers = {j.trigger async for j in world.state.jobs.list_jobs()}
        assert {"retry", "schedule"} <= triggers
