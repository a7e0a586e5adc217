"""A randomized convergence test: people create, edit and delete customers in Business Central and accounts in
Sales at random, syncs run in between (single records as webhooks would trigger them, and modified-records
runs), while both services answer some requests with 429 and 5xx. After the storm ends and a final pass, both
systems must hold the same customers: every record coupled once, the counterparts agreeing field by field,
and not one duplicate.

Deterministic: a seeded random.Random drives the people and the emulators' fault injection is seeded too;
each seed is a separate test, so a failure names the seed that reproduces it."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from shared.mapping import Direction, Side, map_record
from shared.sync import Outcome
from shared.sync.reconcile import reconcile
from tests.sync.conftest import World, bc_customer, crm_account

STEPS = 45
CITIES = ["Malmö", "Lund", "Oslo", "Bergen", "Aarhus", "Turku", ""]
NAMES = ["Fabrikam", "Contoso", "Northwind", "Litware", "Adatum", "Tailspin", "Wingtip", "Proseware"]
# Fields the people edit, per side; both sides edit `city` / `phone` so same-field conflicts occur too.
BC_EDITS = {"city": CITIES, "phoneNumber": ["+46 40 1", "+47 55 2", "+45 86 3", ""],
            "displayName": [f"{n} AB" for n in NAMES]}
DV_EDITS = {"address1_city": CITIES, "telephone1": ["+49 89 1", "+33 1 2", None],
            "emailaddress1": ["a@example.com", "b@example.com", None]}
# The customers fields compared at the end: bidirectional and free of lookups.
COMPARED = ("number", "displayName", "city", "phoneNumber", "email", "addressLine1", "postalCode", "creditLimit")


class People:
    """The random people at work, and the records they made (only those are judged at the end)."""

    def __init__(self, world: World, rng: random.Random, currency: str) -> None:
        self.world, self.rng = world, rng
        self.currency = currency  # the Sales id of EUR: Dataverse gives every new account a currency
        self.customers: list[str] = []   # BC customer ids created in the run
        self.accounts: list[str] = []    # CRM account ids created in the run
        self.serial = 0

    def _name(self) -> str:
        self.serial += 1
        return f"{self.rng.choice(NAMES)} {self.serial:03d}"

    async def live(self, side: Side) -> list[str]:
        """Records of this run that still exist on `side`, including counterparts the sync created — also those
        a modified run created, which no result named: they carry the run's numbers (CV…, AV…). Such a
        counterpart may outlive its coupling (customers are `remove_coupling`: a deleted customer leaves its
        account uncoupled), and must then be synced again like any record of the run."""
        table, key, number = (("customers", "id", "number") if side is Side.ERP
                              else ("accounts", "accountid", "accountnumber"))
        rows = await (self.world.bc if side is Side.ERP else self.world.dv).rows(table)
        return [r[key] for r in rows
                if r[key] in self.ours(side) or str(r.get(number) or "").startswith(("CV", "AV"))]

    def ours(self, side: Side) -> set[str]:
        return set(self.customers if side is Side.ERP else self.accounts)

    async def act(self) -> str:
        world, rng = self.world, self.rng
        action = rng.choices(["bc_create", "dv_create", "bc_edit", "dv_edit", "bc_delete", "dv_delete",
                              "sync_record", "sync_modified", "faults"],
                             weights=[10, 10, 20, 20, 3, 3, 18, 8, 8])[0]
        if action == "bc_create":
            row = await bc_customer(world, displayName=self._name(), number=f"CV{self.serial:04d}",
                                    city=rng.choice(CITIES))
            self.customers.append(row["id"])
        elif action == "dv_create":
            row = await crm_account(world, name=self._name(), accountnumber=f"AV{self.serial:04d}",
                                    address1_city=rng.choice(CITIES), _transactioncurrencyid_value=self.currency)
            self.accounts.append(row["accountid"])
        elif action in ("bc_edit", "dv_edit"):
            side = Side.ERP if action == "bc_edit" else Side.CRM
            ids = await self.live(side)
            if ids:
                edits = BC_EDITS if side is Side.ERP else DV_EDITS
                changes = {f: rng.choice(v) for f, v in rng.sample(sorted(edits.items()), rng.randint(1, 2))}
                system, table = (world.bc, "customers") if side is Side.ERP else (world.dv, "accounts")
                await system.edit(table, rng.choice(ids), changes)
        elif action in ("bc_delete", "dv_delete"):
            side = Side.ERP if action == "bc_delete" else Side.CRM
            ids = await self.live(side)
            if ids:
                system, table = (world.bc, "customers") if side is Side.ERP else (world.dv, "accounts")
                await system.delete(table, rng.choice(ids))
        elif action == "sync_record":  # a webhook notice for one record, maybe a duplicate of an earlier one
            side = rng.choice([Side.ERP, Side.CRM])
            if self.ours(side):
                record_id = rng.choice(sorted(self.ours(side)))
                result = await world.engine.sync_record("customers", Direction.from_source(side), record_id,
                                                        create=True)
                self.adopt(result)
        elif action == "sync_modified":
            for run in await world.engine.sync_modified("customers"):
                assert run.job_id
        else:
            calm = rng.random() < 0.4
            await world.bc.configure(
                faults={"error_ratio": 0.0 if calm else 0.2, "error_status": rng.choice([500, 502, 503, 504]),
                        "seed": rng.randrange(1000)},
                limits={"window_seconds": 0.2, "window_requests": 6000 if calm else 15})
            # Dataverse asks to wait at least 1 s (Retry-After) after a 429, 502 or 503, so its storms are 500 and
            # 504 (no Retry-After) and the 429s come from Business Central, keeping the test within seconds.
            await world.dv.configure(
                faults={"error_ratio": 0.0 if calm else 0.2, "error_status": rng.choice([500, 504]),
                        "seed": rng.randrange(1000)})
        return action

    def adopt(self, result: Any) -> None:
        """Counterparts the sync created are ours too (the people may edit or delete them)."""
        if result.destination_id and result.outcome in (Outcome.INSERTED, Outcome.COUPLED):
            target = self.accounts if result.direction is Direction.TO_CRM else self.customers
            if result.destination_id not in target:
                target.append(result.destination_id)


async def settle(world: World, people: People) -> None:
    """The storm is over: what an operator's "synchronise all" does — every record of the run, both ways,
    then modified-records runs until nothing moves."""
    await world.bc.configure(faults={"error_ratio": 0.0}, limits={"window_requests": 6000})
    await world.dv.configure(faults={"error_ratio": 0.0}, limits={"window_requests": 6000})
    for side in (Side.ERP, Side.CRM):
        for record_id in await people.live(side):
            result = await world.engine.sync_record("customers", Direction.from_source(side), record_id,
                                                    create=True, force=True)
            if result.outcome is Outcome.UNCOUPLED:
                # Its counterpart was deleted and customers are `remove_coupling`: the record stays, uncoupled;
                # synchronising it now creates a new counterpart, as "synchronise all" does.
                result = await world.engine.sync_record("customers", Direction.from_source(side), record_id,
                                                        create=True, force=True)
            assert result.ok, (record_id, result.outcome, result.message)
            people.adopt(result)
    for _ in range(3):
        runs = await world.engine.sync_modified("customers")
        assert all(not r.failures for r in runs), [f.message for r in runs for f in r.failures]
        if all(set(r.counts) <= {"unchanged"} for r in runs):
            return
    raise AssertionError(f"still moving after three modified runs: {[r.counts for r in runs]}")


def blank(value: Any) -> Any:
    # Business Central has no nulls: an empty CRM field is "" or 0 there (shared.sync.wire).
    return None if value in ("", None, 0) and value is not False else value


async def drift(world: World, people: People) -> list[str]:
    """Differences between the two systems through the customers mapping, for the records of the run."""
    problems: list[str] = []
    mapping = world.pack.mapping("customers")
    customers = {r["id"]: r for r in await world.bc.rows("customers")}
    accounts = {r["accountid"]: r for r in await world.dv.rows("accounts")}
    pairs = []
    for customer_id in await people.live(Side.ERP):
        coupling = await world.coupling("customers", Side.ERP, customer_id)
        if coupling is None or coupling.crm_id is None:
            problems.append(f"customer {customer_id} is not coupled")
            continue
        if coupling.crm_id not in accounts:
            problems.append(f"customer {customer_id} is coupled to a missing account {coupling.crm_id}")
            continue
        pairs.append((customers[customer_id], accounts[coupling.crm_id]))
    for account_id in await people.live(Side.CRM):
        coupling = await world.coupling("customers", Side.CRM, account_id)
        if coupling is None or coupling.erp_id not in customers:
            problems.append(f"account {account_id} has no coupled customer")
    for customer, account in pairs:
        expected = map_record(mapping, {k: customer.get(k) for k in COMPARED}, Direction.TO_CRM).payload
        for field, value in expected.items():
            if blank(value) != blank(account.get(field)):
                problems.append(f"customer {customer['number']}: {field} is {value!r} in BC but "
                                f"{account.get(field)!r} in Sales")
    # Duplicates: one account per customer number and one customer per account number, among ours.
    ours_bc = [customers[i] for i in await people.live(Side.ERP)]
    ours_dv = [accounts[i] for i in await people.live(Side.CRM)]
    for label, counts in (("BC customer number", Counter(c["number"] for c in ours_bc)),
                          ("Sales account number", Counter(a.get("accountnumber") for a in ours_dv))):
        problems += [f"{label} {k!r} appears {n} times" for k, n in counts.items() if n > 1]
    coupled_accounts = Counter(a["accountid"] for _, a in pairs)
    problems += [f"account {k} is the counterpart of {n} customers" for k, n in coupled_accounts.items() if n > 1]
    return problems


@pytest.fixture
def engine_options() -> dict[str, Any]:
    # One record at a time in modified runs: requests then reach the emulators in the same order on every
    # run, so the seeded fault injection hits the same requests and a failing seed reproduces.
    return {"concurrency": 1}


# A BC customer created from a Sales account holds Business Central's nil GUID in `paymentTermsId` /
# `currencyId` ("none"); this test found that the engine once treated it as a reference to a missing record.
@pytest.mark.parametrize("seed", [11, 2024])
async def test_random_edits_on_both_sides_converge(world: World, seed: int) -> None:
    rng = random.Random(seed)
    await world.couple_salespeople()
    # Start as a user would: a full sync couples or creates what both sides already hold.
    for run in await world.engine.sync_full(["currencies", "customers"]):
        assert not run.counts.get("failed"), [(f.source_id, f.message) for f in run.failures]
    eur = next(c for c in await world.bc.rows("currencies") if c["code"] == "EUR")
    currency = await world.engine.sync_record("currencies", "to_crm", eur["id"], create=True)
    assert currency.destination_id, currency.message
    people = People(world, rng, currency.destination_id)
    done = Counter([await people.act() for _ in range(STEPS)])
    # The run exercised what it claims to (a seed that never syncs or never edits proves nothing).
    assert done["sync_record"] and done["sync_modified"] and done["faults"], done
    assert people.customers and people.accounts, done

    await settle(world, people)
    # Two independent judges: the product's reconcile over both whole tables, and this test's own comparison.
    report = await reconcile(world.engine, "customers")
    assert report.clean, report.drift
    assert report.checked["erp"] and report.checked["crm"]
    assert await drift(world, people) == []
    # Settled means settled: a further modified run writes nothing (no ping-pong).
    mark = world.traffic.mark()
    await world.engine.sync_modified("customers")
    assert world.traffic.writes_since(mark) == []
