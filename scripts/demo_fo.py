"""The Finance and Operations half of `make demo`: dual-write (fo-dataverse) and Prospect to cash, each on a
sandbox of its own (the two packs write the same tables and never run side by side).

Dual-write: the reference data and masters of three legal entities reach Dataverse in dependency order (full
sync); a customer Ava creates in F&O (USMF) appears as an account of company USMF; Anna's edit in Sales flows
back to the right legal entity and F&O's data event of our own write is dropped; the same customer number in
USMF and DEMF stays two accounts; a vendor and a product flow; reconcile: zero drift.
Prospect to cash: Sales accounts and contacts become F&O customers (with the template's defaults) or contact
persons by the IsActiveCustomer / IsCompanyAnAccount rule; a sales order Ava enters in F&O reaches Sales;
reconcile: zero drift.
"""

from __future__ import annotations

import time
from typing import Any

from emulators.sandbox import Sandbox
from scripts.demo_kit import DemoFailed, console, full_sync, is_, now, reconcile, table, until

EVENT_DELAY_MS = 100  # F&O sends data events from a batch job a moment after the commit


async def run() -> None:
    console.rule("[bold]dual-write: Finance and Operations ⇄ Dataverse (fo-dataverse)")
    async with Sandbox(pack="templates/fo-dataverse.yaml", records=4, dataverse_delay_ms=200,
                       event_delay_ms=EVENT_DELAY_MS) as sb:
        console.print(f"Azurite, Finance and Operations {sb.fo_url}, Dataverse {sb.dv_url}, Functions host "
                      f"{sb.functions_url}; data events activated for {len(sb.fo_hooks)} entities "
                      f"({', '.join(h.entity for h in sb.fo_hooks)})")
        await dual_write(sb)
    console.rule("[bold]Prospect to cash: Sales ⇄ Finance and Operations (prospect-to-cash)")
    async with Sandbox(pack="templates/prospect-to-cash.yaml", records=0, dataverse_delay_ms=200,
                       event_delay_ms=EVENT_DELAY_MS, register_webhooks=False) as sb:
        await prospect_to_cash(sb)


async def company_of(sb: Sandbox, account: dict[str, Any]) -> str:
    """The legal entity an account belongs to (its msdyn_company lookup's company code)."""
    company = account.get("_msdyn_company_value")
    if not company:
        return "—"
    return (await sb.dv_row("cdm_companies", company))["cdm_companycode"]


async def dual_write(sb: Sandbox) -> None:
    companies = await sb.fo_rows("LegalEntities")
    customers = await sb.fo_rows("CustomersV3")
    per = {c["LegalEntityId"]: sum(1 for r in customers if r["dataAreaId"] == c["LegalEntityId"].lower())
           for c in companies}
    console.print(table("F&O · legal entities", ["LegalEntityId", "Name", "customers"],
                        [{**c, "customers": per[c["LegalEntityId"]]} for c in companies]))
    await full_sync(sb, echo_wait_s=EVENT_DELAY_MS / 1000 + 0.3)

    # The same customer number in two legal entities: two accounts, one per company.
    shared = [a for a in await sb.dv_rows("accounts") if a.get("accountnumber") == "C-1001"]
    rows = [{"accountnumber": a["accountnumber"], "name": a["name"], "company": await company_of(sb, a)}
            for a in shared]
    if sorted(r["company"] for r in rows) != ["DEMF", "USMF"]:
        raise DemoFailed(f"C-1001 should be one account in USMF and one in DEMF, found {rows}")
    console.print(table("Dataverse · accounts numbered C-1001 (one per legal entity)",
                        ["accountnumber", "name", "company"], rows))

    # Live, F&O → Sales: Ava creates a customer in USMF; F&O's number sequence names it.
    edited = time.monotonic()
    created = await sb.fo_create("CustomersV3", {
        "dataAreaId": "usmf", "PartyType": "Organization", "OrganizationName": "Lamna Healthcare",
        "CustomerGroupId": "20", "SalesCurrencyCode": "USD", "AddressCity": "Seattle", "PaymentTerms": "Net30"})
    number = created["CustomerAccount"]

    async def arrived() -> bool:
        return any(a.get("accountnumber") == number for a in await sb.dv_rows("accounts"))

    delay = await until(arrived, f"customer {number} → Sales")
    account = next(a for a in await sb.dv_rows("accounts") if a.get("accountnumber") == number)
    console.print(f"[green]⇒ Sales[/]  Ava created customer [bold]{number}[/] in USMF; account of company "
                  f"[bold]{await company_of(sb, account)}[/] after [bold]{delay * 1000:.0f} ms[/] "
                  f"(data event + queue + processor)")

    # Live, Sales → F&O, and F&O's data event of our own write dropped as an echo.
    edited = time.monotonic()
    await sb.dv_edit("accounts", account["accountid"], {"telephone1": "+1 206 555 0142"})
    key = created["@key"]
    delay = await until(lambda: is_(sb.fo_row("CustomersV3", key), "PrimaryContactPhone", "+1 206 555 0142"),
                        "Sales phone → F&O")
    console.print(f"[green]⇒ F&O[/]    Anna set the phone in Sales; customer {number} in USMF had it after "
                  f"[bold]{delay * 1000:.0f} ms[/]")
    await until(lambda: now(bool(_echoes(sb, edited))), "the F&O data event of our write")
    console.print(f"  [cyan]echo suppressed[/]: F&O raised a data event for our write (as F&O does for the "
                  f"integration user too); the webhook said: “{_echoes(sb, edited)[-1].message}”")

    # A vendor in DEMF and a product released in USMF flow too.
    vendor = await sb.fo_create("VendorsV2", {"dataAreaId": "demf", "VendorOrganizationName": "Fabrikam Möbel",
                                              "VendorGroupId": "10", "CurrencyCode": "EUR"})
    product = await sb.fo_create("CDSReleasedDistinctProducts", {"dataAreaId": "usmf", "ProductNumber": "D0900",
                                                                 "ProductName": "Standing desk", "SalesPrice": 499})

    async def vendor_and_product() -> bool:
        vendors = {v.get("msdyn_vendoraccountnumber") for v in await sb.dv_rows("msdyn_vendors")}
        products = {p.get("productnumber") for p in await sb.dv_rows("products")}
        return vendor["VendorAccountNumber"] in vendors and product["ProductNumber"] in products

    await until(vendor_and_product, "the vendor and the product → Dataverse")
    console.print(f"[green]⇒ Dataverse[/] vendor {vendor['VendorAccountNumber']} (DEMF) and product "
                  f"{product['ProductNumber']} arrived")
    await sb.settle()
    await reconcile(sb)


def _echoes(sb: Sandbox, since: float) -> list[Any]:
    """The intake's log lines for F&O customer data events of which at least one was our own write."""
    return [e for e in sb.events_since(since, "erp/CustomersV3:") if ", 0 echo" not in e.message]


SALES_ACCOUNTS = [  # what Anna enters in Sales: Coho Group is a customer in F&O already (same number)
    {"accountnumber": "C-1001", "name": "Coho Group", "statecode": 0, "customertypecode": 3},
    {"accountnumber": "C30001", "name": "Litware, Inc.", "address1_city": " oslo ", "address1_country": "Norway",
     "statecode": 0, "customertypecode": 3},
]


async def prospect_to_cash(sb: Sandbox) -> None:
    coho, litware = [await sb.dv_create("accounts", a) for a in SALES_ACCOUNTS]
    await sb.dv_create("contacts", {"firstname": "Nina", "lastname": "Holm", "msdyn_contactnumber":
                                    "CON-01000-BVRCPS", "msdyn_isactivecustomer": True,
                                    "msdyn_iscompanyanaccount": False})
    await sb.dv_create("contacts", {"firstname": "Per", "lastname": "Lie", "msdyn_contactnumber": "CON-01001-QX7K2M",
                                    "msdyn_isactivecustomer": False, "msdyn_iscompanyanaccount": True,
                                    "_parentcustomerid_value": litware["accountid"]})
    await sb.register_webhooks()
    await full_sync(sb, echo_wait_s=EVENT_DELAY_MS / 1000 + 0.3)
    wanted = {"C-1001", "C30001", "CON-01000-BVRCPS"}
    customers = [c for c in await sb.fo_rows("CustomersV3") if c["CustomerAccount"] in wanted
                 and c["dataAreaId"] == "usmf"]
    if {c["CustomerAccount"] for c in customers} != wanted:
        raise DemoFailed(f"expected F&O customers {sorted(wanted)} in USMF, found "
                         f"{sorted(c['CustomerAccount'] for c in customers)}")
    console.print(table("F&O · customers from Sales (USMF; template defaults fill the blanks)",
                        ["CustomerAccount", "PartyType", "OrganizationName", "CustomerGroupId", "LanguageId"],
                        customers))
    persons = [p for p in await sb.fo_rows("ContactPersonsV2") if p["ContactPersonId"] == "CON-01001-QX7K2M"]
    if not persons or persons[0]["ContactForParty"] != "C30001":
        raise DemoFailed(f"Per Lie should be a contact person of C30001, found {persons}")
    console.print(f"[green]✓[/] Nina (Is Active Customer) became a customer; Per (not active, company is an "
                  f"account) became a contact person of {persons[0]['ContactForParty']}; Coho Group was coupled "
                  f"to F&O's C-1001 by number")

    # F&O → Sales: Ava enters a sales order with a line for Litware.
    order = await sb.fo_create("SalesOrderHeadersV2", {"dataAreaId": "usmf", "OrderingCustomerAccountNumber": "C30001",
                                                       "CurrencyCode": "USD", "SalesOrderName": "Spring order"})
    item = next(p for p in await sb.fo_rows("CDSReleasedDistinctProducts") if p["dataAreaId"] == "usmf")
    await sb.fo_create("SalesOrderLines", {"dataAreaId": "usmf", "SalesOrderNumber": order["SalesOrderNumber"],
                                           "LineNumber": 1, "ItemNumber": item["ProductNumber"],
                                           "OrderedSalesQuantity": 3, "SalesPrice": 120.0, "LineAmount": 360.0})

    async def order_in_sales() -> bool:
        orders = [o for o in await sb.dv_rows("salesorders") if o.get("ordernumber") == order["SalesOrderNumber"]]
        lines = [d for d in await sb.dv_rows("salesorderdetails")
                 if orders and d.get("_salesorderid_value") == orders[0]["salesorderid"]]
        return bool(orders and lines and orders[0].get("_customerid_value") == litware["accountid"])

    delay = await until(order_in_sales, "the sales order → Sales")
    console.print(f"[green]⇒ Sales[/]  Ava's order {order['SalesOrderNumber']} with its line reached Sales as an "
                  f"order of Litware after [bold]{delay * 1000:.0f} ms[/]")
    await sb.settle()
    if not any(o.get("_customerid_value") == coho["accountid"] for o in await sb.dv_rows("salesorders")):
        raise DemoFailed("F&O's order of C-1001 did not reach Sales as an order of the coupled account")
    await reconcile(sb)
