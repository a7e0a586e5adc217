"""The bc-sales pack's other mappings end to end: contacts, currencies, salespeople, items ⇄ products, and
dependencies synced first (bounded depth) or reported."""

from __future__ import annotations

from typing import Any

import pytest

from shared.mapping import Side
from shared.sync import Outcome
from tests.sync.conftest import World, bc_customer, coupled_customer


async def bc_contact(world: World, company_number: str, **values: Any) -> dict[str, Any]:
    fields = {"number": f"CT9{len(await world.bc.rows('contacts')):04d}", "type": "Person",
              "displayName": "Ann Marie Smith", "companyNumber": company_number, "jobTitle": "Buyer",
              "email": "ann.smith@fabrikam.example.com", "city": "Malmö"}
    return await world.bc.insert("contacts", {**fields, **values})


async def test_a_contact_of_an_uncoupled_customer_syncs_the_customer_first(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    contact = await bc_contact(world, customer["number"])
    result = await world.engine.sync_record("contacts", "to_crm", contact["id"], create=True)
    assert result.outcome is Outcome.INSERTED, result.message
    [dependency] = result.dependencies
    assert (dependency.mapping, dependency.outcome) == ("customers", Outcome.INSERTED)
    crm = await world.dv.row("contacts", result.destination_id)
    assert (crm["firstname"], crm["lastname"], crm["jobtitle"]) == ("Ann Marie", "Smith", "Buyer")
    assert crm["_parentcustomerid_value"] == dependency.destination_id
    # and back: a phone number entered in Sales reaches BC; the echo writes nothing
    await world.dv.edit("contacts", result.destination_id, {"telephone1": "+46 40 777"})
    back = await world.engine.sync_record("contacts", "to_erp", result.destination_id)
    assert (back.outcome, back.writes) == (Outcome.MODIFIED, 1)
    assert (await world.bc.row("contacts", contact["id"]))["phoneNumber"] == "+46 40 777"
    assert (await world.engine.sync_record("contacts", "to_crm", contact["id"], force=True)).writes == 0


async def test_a_sales_contact_of_a_coupled_account_creates_a_bc_contact(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    contact = await world.dv.insert("contacts", {"firstname": "Per", "lastname": "Holm", "fullname": "Per Holm",
                                                 "_parentcustomerid_value": account_id,
                                                 "parentcustomeridtype": "account", "jobtitle": "CFO"})
    result = await world.engine.sync_record("contacts", "to_erp", contact["contactid"], create=True)
    assert result.outcome is Outcome.INSERTED, result.message
    row = await world.bc.row("contacts", result.destination_id)
    assert (row["displayName"], row["companyNumber"], row["jobTitle"]) == ("Per Holm", customer["number"], "CFO")


@pytest.fixture
def engine_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"max_dependency_depth": getattr(request, "param", 3)}


@pytest.mark.parametrize("engine_options", [0], indirect=True)
async def test_without_dependency_depth_an_uncoupled_dependency_is_reported(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    contact = await bc_contact(world, customer["number"])
    mark = world.traffic.mark()
    result = await world.engine.sync_record("contacts", "to_crm", contact["id"], create=True)
    assert result.outcome is Outcome.FAILED
    assert result.message.startswith("dependency not coupled") and "customers" in result.message
    assert "depth limit 0" in result.message
    assert world.traffic.writes_since(mark) == []
    assert await world.coupling("contacts", Side.ERP, contact["id"]) is None  # no reservation left behind


async def test_a_dependency_that_cannot_flow_this_way_is_reported(world: World) -> None:
    customer = await bc_customer(world, salespersonCode=(await world.bc.rows("salespeoplePurchasers"))[0]["code"])
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
    assert result.outcome is Outcome.FAILED
    assert "dependency not coupled" in result.message and "salespeople" in result.message
    assert "does not sync to_crm" in result.message
    assert (await world.state.errors.get_error("customers", "to_crm", customer["id"])).message == result.message


async def test_currencies_create_and_update_one_way(world: World) -> None:
    currency = await world.bc.insert("currencies", {"code": " xts ", "displayName": "Testing code", "symbol": "¤"})
    created = await world.engine.sync_record("currencies", "to_crm", currency["id"], create=True)
    assert created.outcome is Outcome.INSERTED, created.message
    row = await world.dv.row("transactioncurrencies", created.destination_id)
    assert (row["isocurrencycode"], row["currencyname"], row["exchangerate"]) == ("XTS", "Testing code", 1.0)
    # A Sales user renames it: the one-way mapping puts the ERP's name back on the next ERP change.
    await world.dv.edit("transactioncurrencies", created.destination_id, {"currencyname": "Renamed in Sales"})
    await world.bc.edit("currencies", currency["id"], {"symbol": "X"})
    updated = await world.engine.sync_record("currencies", "to_crm", currency["id"])
    assert updated.outcome is Outcome.MODIFIED
    row = await world.dv.row("transactioncurrencies", created.destination_id)
    assert (row["currencyname"], row["currencysymbol"]) == ("Testing code", "X")
    with pytest.raises(ValueError, match="does not sync to_erp"):
        await world.engine.sync_record("currencies", "to_erp", created.destination_id)


async def test_a_currency_code_that_does_not_map_fails_with_the_field_named(world: World) -> None:
    currency = await world.bc.insert("currencies", {"code": "EURO", "displayName": "bad"})
    result = await world.engine.sync_record("currencies", "to_crm", currency["id"], create=True)
    assert result.outcome is Outcome.FAILED and "code ⇄ isocurrencycode" in result.message


async def test_a_sales_user_becomes_a_bc_salesperson(world: World) -> None:
    user = await world.dv.insert("systemusers", {"firstname": "Eva", "lastname": "Lind-Berg",
                                                 "fullname": "Eva Lind-Berg",
                                                 "internalemailaddress": "eva@contoso.example.com",
                                                 "isdisabled": False, "islicensed": True, "isintegrationuser": False,
                                                 "title": "Account Manager"})
    result = await world.engine.sync_record("salespeople", "to_erp", user["systemuserid"], create=True)
    assert result.outcome is Outcome.INSERTED, result.message
    person = await world.bc.row("salespeoplePurchasers", result.destination_id)
    assert (person["code"], person["displayName"], person["jobTitle"]) == ("EVALINDBERG", "Eva Lind-Berg",
                                                                          "Account Manager")
    await world.dv.edit("systemusers", user["systemuserid"], {"title": "Sales Director"})
    assert (await world.engine.sync_record("salespeople", "to_erp", user["systemuserid"])).outcome is Outcome.MODIFIED
    assert (await world.bc.row("salespeoplePurchasers", result.destination_id))["jobTitle"] == "Sales Director"


async def test_items_and_products_both_ways(world: World) -> None:
    unit = (await world.bc.rows("unitsOfMeasure"))[0]
    item = await world.bc.insert("items", {"number": "9001", "displayName": "OSLO Desk", "type": "Inventory",
                                           "unitPrice": 199.999, "unitCost": 120.0, "blocked": False,
                                           "baseUnitOfMeasureId": unit["id"], "baseUnitOfMeasureCode": unit["code"]})
    created = await world.engine.sync_record("items", "to_crm", item["id"], create=True)
    assert created.outcome is Outcome.INSERTED, created.message
    assert [d.mapping for d in created.dependencies] == ["units-of-measure"]
    product = await world.dv.row("products", created.destination_id)
    assert (product["productnumber"], product["name"], product["price"], product["statecode"]) == \
        ("9001", "OSLO Desk", 200.0, 0)
    await world.dv.edit("products", created.destination_id, {"standardcost": 110.5, "statecode": 1})
    back = await world.engine.sync_record("items", "to_erp", created.destination_id)
    assert back.outcome is Outcome.MODIFIED, back.message
    row = await world.bc.row("items", item["id"])
    assert (row["unitCost"], row["blocked"]) == (110.5, True)
    assert (await world.engine.sync_record("items", "to_crm", item["id"], force=True)).writes == 0

    product = await world.dv.insert("products", {"productnumber": "P-77", "name": "Chair", "producttypecode": 1,
                                                 "price": 10.0, "standardcost": 4.0, "statecode": 0})
    made = await world.engine.sync_record("items", "to_erp", product["productid"], create=True)
    assert made.outcome is Outcome.INSERTED, made.message
    row = await world.bc.row("items", made.destination_id)
    assert (row["number"], row["displayName"], row["unitPrice"], row["blocked"]) == ("P-77", "Chair", 10.0, False)


async def test_a_pair_coupled_by_hand_syncs_one_way_from_the_triggering_record(world: World) -> None:
    """No snapshot yet: every field counts as changed on both sides, so the first sync goes one way — and a
    lookup only the other side holds (an uncoupled CRM currency) does not stand in its way."""
    await world.couple_salespeople()
    customer = await bc_customer(world, city="Falun")
    usd = next(c for c in await world.dv.rows("transactioncurrencies") if c["isocurrencycode"] == "USD")
    account = await world.dv.insert("accounts", {"name": "Hand-made", "accountnumber": "HM-1", "customertypecode": 3,
                                                 "statecode": 0, "address1_city": "Mora", "telephone1": "+46 250 1",
                                                 "_transactioncurrencyid_value": usd["transactioncurrencyid"]})
    await world.couple("customers", customer["id"], account["accountid"])
    result = await world.engine.sync_record("customers", "to_crm", customer["id"])
    assert (result.outcome, result.writes, result.conflicts) == (Outcome.MODIFIED, 1, []), result.message
    row = await world.dv.row("accounts", account["accountid"])
    assert (row["name"], row["accountnumber"]) == ("Fabrikam Nord AB", customer["number"])
    assert row["address1_city"] == "Falun"
    assert (await world.bc.row("customers", customer["id"]))["city"] == "Falun"  # nothing went the other way
    assert (await world.engine.sync_record("customers", "to_erp", account["accountid"], force=True)).writes == 0
