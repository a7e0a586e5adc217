"""What one live change costs in Table storage, and the coupling as the index of a record's error record
(`record.may_have_error`): a coupled record whose last result is SUCCESS has no error record to look up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.http.retry import RetryPolicy
from shared.mapping import DeletionPolicy, Side
from shared.state import StateStore, TableNames, TableRequestCounter
from shared.sync import Outcome, SyncEngine
from shared.sync.record import RETRY, SUCCESS
from tests.sync.conftest import World, coupled_customer, crm_account

ONCE = RetryPolicy(max_attempts=1, max_elapsed=1.0, base_delay=0.01, max_delay=0.01, rate_limit_base=0.01)


@pytest.fixture
async def counted(world: World, table_connection_string: str,
                  table_prefix: str) -> AsyncIterator[tuple[SyncEngine, TableRequestCounter]]:
    """The world's engine on the same tables, through a Table client that counts its requests."""
    counter = TableRequestCounter()
    async with TableServiceClient.from_connection_string(table_connection_string,
                                                         raw_request_hook=counter) as service:
        state = StateStore(service, TableNames.with_prefix(table_prefix))
        yield SyncEngine(world.pack, erp=world.erp, crm=world.crm, state=state,
                         options=world.engine.options), counter


async def test_a_live_change_of_a_clean_pair_costs_the_coupling_read_its_hold_and_settlement(
        world: World, counted: tuple[SyncEngine, TableRequestCounter]) -> None:
    engine, counter = counted
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"phoneNumber": "+46 8 1"})
    counter.reset()
    result = await engine.sync_record("customers", "to_crm", customer["id"], trigger="webhook")
    assert result.ok and result.writes == 1, result.message
    assert not [line for line in counter.log if "errors" in line], counter.log  # no error lookup
    # The coupling read, the hold and the settlement; the live job's row is written once (the sandbox's
    # flush-at-once setting) and, in production, every few seconds for all changes together.
    assert len([line for line in counter.log if "jobs" not in line]) == 3, counter.log
    assert (await world.dv.row("accounts", account_id) or {}).get("telephone1") == "+46 8 1"


async def test_a_transient_failure_marks_the_coupling_so_the_next_success_clears_its_error(world: World) -> None:
    customer, _ = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"phoneNumber": "+46 8 2"})
    await world.dv.configure(faults={"error_ratio": 1.0, "error_status": 503, "seed": 3})
    impatient = world.engine_with(ONCE)
    failed = await impatient.sync_record("customers", "to_crm", customer["id"], trigger="webhook")
    assert not failed.ok and failed.retryable, failed.message
    assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is not None
    coupling = await world.coupling("customers", Side.ERP, customer["id"])
    assert coupling is not None and coupling.result_to_crm == RETRY
    await world.dv.configure(faults={"error_ratio": 0.0})
    again = await world.engine.sync_record("customers", "to_crm", customer["id"], trigger="webhook")
    assert again.ok, again.message
    assert await world.state.errors.find_error("customers", "to_crm", customer["id"]) is None
    coupling = await world.coupling("customers", Side.ERP, customer["id"])
    assert coupling is not None and coupling.result_to_crm == SUCCESS


async def test_the_next_change_takes_the_coupling_this_process_last_wrote(
        world: World, counted: tuple[SyncEngine, TableRequestCounter]) -> None:
    engine, counter = counted
    customer, _ = await coupled_customer(world)
    for n, phone in enumerate(("+46 8 3", "+46 8 4")):
        await world.bc.edit("customers", customer["id"], {"phoneNumber": phone})
        counter.reset()
        assert (await engine.sync_record("customers", "to_crm", customer["id"], trigger="webhook")).ok
        # The first change reads the coupling; the next one has it from the settlement this process wrote.
        assert len([line for line in counter.log if "jobs" not in line]) == (3 if n == 0 else 2), counter.log


async def test_a_coupling_another_instance_changed_since_is_read_again_and_nothing_is_lost(
        world: World, counted: tuple[SyncEngine, TableRequestCounter]) -> None:
    """This process remembers the coupling; another instance (the world's engine, its own store object) syncs
    the pair twice meanwhile; a person edits both sides. The stale copy's hold fails, the sync reads fresh."""
    engine, _ = counted
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Lund"})
    assert (await engine.sync_record("customers", "to_crm", customer["id"], trigger="webhook")).ok
    await world.dv.edit("accounts", account_id, {"telephone1": "+33 1 2"})
    assert (await world.engine.sync_record("customers", "to_erp", account_id, trigger="webhook")).ok
    await world.bc.edit("customers", customer["id"], {"city": "Uppsala"})
    await world.dv.edit("accounts", account_id, {"telephone1": "+33 1 3"})
    result = await engine.sync_record("customers", "to_crm", customer["id"], trigger="webhook")
    assert result.ok, result.message
    erp = await world.bc.row("customers", customer["id"])
    crm = await world.dv.row("accounts", account_id)
    assert erp is not None and crm is not None
    assert (erp["city"], crm["address1_city"]) == ("Uppsala", "Uppsala")
    assert (erp["phoneNumber"], crm["telephone1"]) == ("+33 1 3", "+33 1 3")


async def test_the_notice_of_our_own_business_central_write_costs_no_read(world: World) -> None:
    """BC's notices do not say who changed a record, but they name its version (`lastModifiedDateTime`): the
    notice of the version our write made — the coupling recorded it — is dropped without a read; the notice
    of a person's later edit is not."""
    customer, account_id = await coupled_customer(world)
    await world.dv.edit("accounts", account_id, {"telephone1": "+33 1 9"})
    assert (await world.engine.sync_record("customers", "to_erp", account_id, trigger="webhook")).writes == 1
    ours = await world.bc.row("customers", customer["id"])
    assert ours is not None and ours["phoneNumber"] == "+33 1 9"
    world.traffic.requests.clear()
    echo = await world.engine.sync_record("customers", "to_crm", customer["id"], trigger="webhook",
                                          marker=ours["lastModifiedDateTime"])
    assert echo.outcome is Outcome.UNCHANGED and world.traffic.requests == [], echo.message
    await world.bc.edit("customers", customer["id"], {"phoneNumber": "+46 8 5"})
    edited = await world.bc.row("customers", customer["id"])
    assert edited is not None and edited["lastModifiedDateTime"] != ours["lastModifiedDateTime"]
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], trigger="webhook",
                                            marker=edited["lastModifiedDateTime"])
    assert result.writes == 1, result.message
    assert (await world.dv.row("accounts", account_id) or {}).get("telephone1") == "+46 8 5"


async def test_a_recent_copy_never_applies_a_deletion_rule(world: World,
                                                          counted: tuple[SyncEngine, TableRequestCounter]) -> None:
    """This process remembers customer ⇄ account A. Meanwhile an operator re-couples the customer to account B
    and account A is deleted. The next notice must not take A's deletion for its counterpart's (under
    `propagate` that would delete the customer): the rule acts on a fresh read only, which finds B."""
    engine, _ = counted
    customer, first = await coupled_customer(world)
    mapping = world.pack.mapping("customers").model_copy(update={"deletion": DeletionPolicy.PROPAGATE})
    await world.bc.edit("customers", customer["id"], {"phoneNumber": "+46 8 6"})
    assert (await engine.sync_record(mapping, "to_crm", customer["id"], trigger="webhook")).ok  # remembered
    await world.state.couplings.uncouple("customers", Side.ERP, customer["id"])
    second = await crm_account(world, name="Fabrikam Nord AB", accountnumber="A-RECOUPLED")
    await world.couple("customers", customer["id"], second["accountid"])
    await world.dv.delete("accounts", first)
    await world.bc.edit("customers", customer["id"], {"phoneNumber": "+46 8 7"})
    result = await engine.sync_record(mapping, "to_crm", customer["id"], trigger="webhook")
    assert result.ok and result.destination_id == second["accountid"], result.message
    assert await world.bc.row("customers", customer["id"]) is not None
    assert (await world.dv.row("accounts", second["accountid"]) or {}).get("telephone1") == "+46 8 7"
