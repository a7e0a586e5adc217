"""The same field edited on both sides since the last sync: each conflict policy, the error → skipped path, and
the entries settled conflicts leave (listed, reversed once, refused when the pair changed, purged)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest
from azure.data.tables import TableEntity
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.http.redact import Redactor
from shared.maintenance import purge_history
from shared.mapping import Conflict, ConflictPolicy, Side
from shared.state import ConflictEntry, ConflictStore, NotFound
from shared.state.conflicts import _from_entity, _to_entity, new_entry_id
from shared.sync import Outcome
from shared.sync.conflicts import Refused, reverse
from tests.sync.conftest import World, coupled_customer


async def edit_both(world: World, customer_id: str, account_id: str, *, crm_last: bool = True) -> None:
    edits = [world.bc.edit("customers", customer_id, {"city": "ERP-city", "email": "new@erp.example.com"}),
             world.dv.edit("accounts", account_id, {"address1_city": "CRM-city", "telephone1": "+1 555"})]
    first, second = edits if crm_last else edits[::-1]
    await first
    await asyncio.sleep(1.05)  # Dataverse stamps modifiedon in whole seconds
    await second


@pytest.mark.parametrize(("policy", "winner"), [(ConflictPolicy.ERP_WINS, "ERP-city"),
                                                (ConflictPolicy.CRM_WINS, "CRM-city")])
async def test_a_policy_picks_the_winner_and_other_fields_still_travel(world: World, policy: ConflictPolicy,
                                                                      winner: str) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "ERP-city", "email": "new@erp.example.com"})
    await world.dv.edit("accounts", account_id, {"address1_city": "CRM-city", "telephone1": "+1 555"})
    result = await world.engine.sync_record("customers", "to_erp", account_id, conflict=policy)
    assert result.outcome is Outcome.MODIFIED, result.message
    [conflict] = result.conflicts
    assert (conflict.field, conflict.erp, conflict.crm) == ("city ⇄ address1_city", "ERP-city", "CRM-city")
    bc, dv = await world.bc.row("customers", customer["id"]), await world.dv.row("accounts", account_id)
    assert bc["city"] == dv["address1_city"] == winner
    assert (bc["phoneNumber"], dv["emailaddress1"]) == ("+1 555", "new@erp.example.com")
    assert (await world.engine.sync_record("customers", "to_crm", customer["id"], force=True)).writes == 0


async def test_the_mappings_own_policy_applies_by_default(world: World) -> None:
    customer, account_id = await coupled_customer(world)  # customers: conflict erp_wins
    await edit_both(world, customer["id"], account_id, crm_last=True)
    result = await world.engine.sync_record("customers", "to_erp", account_id)
    assert [c.winner for c in result.conflicts] == [Side.ERP]
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "ERP-city"


@pytest.mark.parametrize(("crm_last", "winner"), [(True, "CRM-city"), (False, "ERP-city")])
async def test_newest_wins_compares_the_modified_on_of_both_sides(world: World, crm_last: bool, winner: str) -> None:
    customer, account_id = await coupled_customer(world)
    await edit_both(world, customer["id"], account_id, crm_last=crm_last)
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], conflict=ConflictPolicy.NEWEST_WINS)
    assert result.outcome is Outcome.MODIFIED, result.message
    assert (await world.bc.row("customers", customer["id"]))["city"] == winner
    assert (await world.dv.row("accounts", account_id))["address1_city"] == winner


async def test_policy_error_writes_nothing_and_the_same_error_twice_skips_until_restored(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "ERP-city"})
    await world.dv.edit("accounts", account_id, {"address1_city": "CRM-city", "telephone1": "+1 555"})
    mark = world.traffic.mark()
    first = await world.engine.sync_record("customers", "to_crm", customer["id"], conflict=ConflictPolicy.ERROR)
    assert first.outcome is Outcome.FAILED and not first.retryable
    assert "update conflict" in first.message and "city ⇄ address1_city" in first.message
    assert world.traffic.writes_since(mark) == []  # not even the unconflicted phone number
    error = await world.state.errors.get_error("customers", "to_crm", customer["id"])
    assert (error.destination_id, error.skipped, error.attempts) == (account_id, False, 1)
    coupling = await world.coupling("customers", Side.ERP, customer["id"])
    assert coupling.result_to_crm == "failure"

    second = await world.engine.sync_record("customers", "to_crm", customer["id"], conflict=ConflictPolicy.ERROR)
    assert second.outcome is Outcome.FAILED
    assert (await world.state.errors.get_error("customers", "to_crm", customer["id"])).skipped
    third = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert third.outcome is Outcome.SKIPPED and "update conflict" in third.message
    assert world.traffic.writes_since(mark) == []

    # An operator settles it in the CRM and restores the record: it syncs, and its error is gone.
    await world.dv.edit("accounts", account_id, {"address1_city": "ERP-city"})
    await world.state.errors.restore_error("customers", "to_crm", customer["id"])
    done = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert done.outcome is Outcome.MODIFIED, done.message
    assert (await world.bc.row("customers", customer["id"]))["phoneNumber"] == "+1 555"
    assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is None
    jobs = [j async for j in world.state.jobs.list_jobs("customers")]
    assert sum(j.counts["failed"] for j in jobs) == 2 and sum(j.counts["skipped"] for j in jobs) == 1


# ----- settled conflicts are entries an operator can list and reverse
async def settle_city(world: World,
                      policy: ConflictPolicy = ConflictPolicy.CRM_WINS) -> tuple[dict, str, ConflictEntry]:
    """Both sides change the city; `policy` settles it. Returns the customer, the account id and the entry."""
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "ERP-city"})
    await world.dv.edit("accounts", account_id, {"address1_city": "CRM-city"})
    result = await world.engine.sync_record("customers", "to_erp", account_id, conflict=policy)
    assert result.outcome is Outcome.MODIFIED, result.message
    [entry] = [e async for e in world.state.conflicts.list_conflicts("customers")]
    return customer, account_id, entry


async def cities(world: World, customer_id: str, account_id: str) -> tuple[str, str]:
    bc, dv = await world.bc.row("customers", customer_id), await world.dv.row("accounts", account_id)
    assert bc is not None and dv is not None
    return bc["city"], dv["address1_city"]


async def test_a_settled_conflict_keeps_both_values_the_base_and_the_policy_not_in_the_log(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    customer, account_id, entry = await settle_city(world, ConflictPolicy.CRM_WINS)
    assert (entry.mapping, entry.kind, entry.erp_id, entry.crm_id) == ("customers", "update", customer["id"],
                                                                         account_id)
    assert (entry.field, entry.erp_value, entry.crm_value, entry.base_value) == (
        "city ⇄ address1_city", "ERP-city", "CRM-city", "Malmö")
    assert (entry.winner, entry.policy, entry.exact, entry.reversed) == (Side.CRM, "crm_wins", True, False)
    jobs = {j.job_id async for j in world.state.jobs.list_jobs("customers")}
    assert entry.job_id in jobs
    assert entry.entry_id in caplog.text and "city ⇄ address1_city" in caplog.text
    assert "ERP-city" not in caplog.text and "CRM-city" not in caplog.text  # values are state, never logged


async def test_an_unresolved_conflict_is_an_error_record_not_an_entry(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await edit_both(world, customer["id"], account_id)
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], conflict=ConflictPolicy.ERROR)
    assert result.outcome is Outcome.FAILED
    assert [e async for e in world.state.conflicts.list_conflicts()] == []


async def test_reverse_gives_both_sides_the_losing_value_once(world: World) -> None:
    customer, account_id, entry = await settle_city(world, ConflictPolicy.CRM_WINS)
    assert await cities(world, customer["id"], account_id) == ("CRM-city", "CRM-city")
    done = await reverse(world.engine, entry.entry_id)
    assert done.sync.ok, done.sync.message
    assert await cities(world, customer["id"], account_id) == ("ERP-city", "ERP-city")
    stored = await world.state.conflicts.get_conflict(entry.entry_id)
    assert stored.reversed and stored.reversed_at is not None
    # The coupling's snapshot holds the reversed value: a sync from either side finds nothing to do.
    coupling = await world.coupling("customers", Side.ERP, customer["id"])
    assert coupling is not None and coupling.snapshot is not None
    assert coupling.snapshot["erp"]["city ⇄ address1_city"] == "ERP-city"
    mark = world.traffic.mark()
    for flow, source in (("to_crm", customer["id"]), ("to_erp", account_id)):
        assert (await world.engine.sync_record("customers", flow, source, force=True)).writes == 0
    with pytest.raises(Refused) as twice:
        await reverse(world.engine, entry.entry_id)
    assert twice.value.code == "AlreadyReversed"
    assert world.traffic.writes_since(mark) == []


async def test_reverse_works_for_the_erp_winning_too(world: World) -> None:
    customer, account_id, entry = await settle_city(world, ConflictPolicy.ERP_WINS)
    assert entry.winner is Side.ERP
    assert (await reverse(world.engine, entry.entry_id)).sync.ok
    assert await cities(world, customer["id"], account_id) == ("CRM-city", "CRM-city")


async def test_reverse_is_refused_when_the_winning_value_changed_since(world: World) -> None:
    _, account_id, entry = await settle_city(world, ConflictPolicy.CRM_WINS)
    await world.dv.edit("accounts", account_id, {"address1_city": "Later-city"})
    mark = world.traffic.mark()
    with pytest.raises(Refused) as refused:
        await reverse(world.engine, entry.entry_id)
    assert refused.value.code == "PairChanged" and "changed since" in refused.value.message
    assert world.traffic.writes_since(mark) == []
    assert not (await world.state.conflicts.get_conflict(entry.entry_id)).reversed


async def test_reverse_is_refused_for_an_uncoupled_pair_and_an_unknown_entry(world: World) -> None:
    customer, _, entry = await settle_city(world)
    await world.state.couplings.uncouple("customers", Side.ERP, customer["id"])
    with pytest.raises(Refused, match="no longer coupled"):
        await reverse(world.engine, entry.entry_id)
    with pytest.raises(NotFound):
        await reverse(world.engine, "20200101T000000-0000000000")


async def test_a_value_the_redactor_changed_is_kept_redacted_and_cannot_be_reversed(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "password=hunter22"})
    await world.dv.edit("accounts", account_id, {"address1_city": "CRM-city"})
    await world.engine.sync_record("customers", "to_erp", account_id, conflict=ConflictPolicy.CRM_WINS)
    [entry] = [e async for e in world.state.conflicts.list_conflicts("customers")]
    assert (entry.erp_value, entry.exact) == ("password=***", False)
    with pytest.raises(Refused) as refused:
        await reverse(world.engine, entry.entry_id)
    assert refused.value.code == "NotReversible" and "redacted" in refused.value.message


async def test_purge_removes_entries_older_than_the_retention(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    settled = [Conflict("f", 1, 2, 3, Side.ERP)]
    await world.state.conflicts.record_conflicts("customers", erp_id="e", crm_id="c", conflicts=settled,
                                                 policy="erp_wins", now=now - dt.timedelta(days=31))
    [kept] = await world.state.conflicts.record_conflicts("customers", erp_id="e", crm_id="c", conflicts=settled,
                                                          policy="erp_wins", now=now)
    report = await purge_history(world.state, retention=dt.timedelta(days=30), now=now)
    assert report.conflicts == 1
    assert [e.entry_id async for e in world.state.conflicts.list_conflicts()] == [kept.entry_id]


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=4), max_leaves=8)


@given(erp=JSON, crm=JSON, base=JSON)
@settings(max_examples=200, deadline=None)
def test_stored_values_round_trip_exactly_unless_redaction_changed_them(erp: object, crm: object,
                                                                         base: object) -> None:
    redactor = Redactor(["s3cr3t-value"])
    store = ConflictStore(None, redactor=redactor)  # type: ignore[arg-type]  # no table: _stored is pure
    stored = {name: store._stored(v) for name, v in (("erp", erp), ("crm", crm), ("base", base))}
    for name, original in (("erp", erp), ("crm", crm), ("base", base)):
        kept, exact = stored[name]
        assert exact == (redactor.value(original) == original)
        if exact:
            assert kept == original
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    entry = ConflictEntry("m", new_entry_id(moment), "update", "e", "c", "erp_wins", moment, Side.ERP, field="f",
                          erp_value=stored["erp"][0], crm_value=stored["crm"][0], base_value=stored["base"][0])
    again = _from_entity(TableEntity(_to_entity(entry)))
    assert (again.erp_value, again.crm_value, again.base_value) == (entry.erp_value, entry.crm_value,
                                                                    entry.base_value)
    assert (again.winner, again.at, again.field, again.exact) == (Side.ERP, moment, "f", True)
