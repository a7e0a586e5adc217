"""End to end through HTTP for both Finance and Operations packs: people's edits on the emulators (their
`/_admin` routes, `?as=<person>`), F&O data events and Dataverse webhooks into the local Functions host, the
queue and processor, the admin API. What is asserted is what each system holds afterwards, plus the error
records and jobs the admin API lists (and, where only they can show it, the queue's deliveries and the app's
log lines).

fo-dataverse (dual-write): initial sync striped by legal entity, live changes both ways with echo suppression,
vendors and products, deletions, the modified-records timer after missed data events, conflicts.
prospect-to-cash: Sales accounts and contacts → F&O customers and contact persons (the routing rule),
F&O orders and invoices → Sales, Sales quotes → F&O, an F&O refusal and its retry, webhook refusals."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from emulators.sandbox import Sandbox, SandboxError
from tests.e2e.fo_support import (
    CUSTOMER_CHAIN,
    FO_PACK,
    P2C_PACK,
    companies,
    data_event,
    data_fields,
    dv_where,
    eventually,
    fo_sent,
    fo_where,
    full_sync,
    notes_about,
    quiet,
    sessions_of,
)

REPO = Path(__file__).resolve().parents[2]
USMF_C1001 = "dataAreaId='usmf',CustomerAccount='C-1001'"
DEMF_C1001 = "dataAreaId='demf',CustomerAccount='C-1001'"


async def _has(sb: Sandbox, table: str, **values: object) -> bool:
    return bool(await dv_where(sb, table, **values))


async def _one(sb: Sandbox, table: str, **values: object) -> dict:
    rows = await dv_where(sb, table, **values)
    assert len(rows) == 1, f"{table} {values}: {len(rows)} rows"
    return rows[0]


async def _fo_has(sb: Sandbox, table: str, key: str, **values: object) -> bool:
    try:
        row = await sb.fo_row(table, key)
    except SandboxError:
        return False
    return all(row.get(k) == v for k, v in values.items())


async def _errors(sb: Sandbox, mapping: str | None = None) -> list[dict]:
    return (await sb.manage("GET", "errors", params={"mapping": mapping} if mapping else None))["errors"]


# ----------------------------------------------------------------------------------------------- fo-dataverse

async def test_dual_write_initial_sync_then_live_changes_both_ways() -> None:
    async with Sandbox(pack=FO_PACK, records=4, dataverse_delay_ms=100) as sb:
        # 1. Full sync, one mapping at a time in the order the admin API lists them: reference data first.
        order = [m["name"] for m in (await sb.manage("GET", "mappings"))["mappings"]]
        for reference in ("companies", "currencies", "customer-groups", "payment-terms"):
            for dependent in ("customers", "person-customers", "vendors", "contact-persons"):
                assert order.index(reference) < order.index(dependent), order
        assert order.index("customers") < order.index("contact-persons")
        runs = await full_sync(sb)
        assert [r["mapping"] for r in runs if r["direction"] == "to_crm"] == order
        assert await _errors(sb) == []

        company = await companies(sb)
        code_of = {v: k for k, v in company.items()}
        assert set(company) == {e["LegalEntityId"] for e in await sb.fo_rows("LegalEntities")} == {
            "USMF", "DEMF", "GBSI"}
        customers = await sb.fo_rows("CustomersV3")
        organisations = [c for c in customers if c["PartyType"] == "Organization"]
        persons = [c for c in customers if c["PartyType"] == "Person"]
        assert {c["dataAreaId"] for c in organisations} == {"usmf", "demf", "gbsi"} and persons
        # Every organisation customer of every legal entity: exactly one account, in the company of its entity.
        accounts = [a for a in await sb.dv_rows("accounts") if a["_msdyn_company_value"]]
        assert sorted((code_of[a["_msdyn_company_value"]], a["accountnumber"]) for a in accounts) == sorted(
            (c["dataAreaId"].upper(), c["CustomerAccount"]) for c in organisations)
        account_of = {(code_of[a["_msdyn_company_value"]], a["accountnumber"]): a for a in accounts}
        groups = {g["msdyn_customergroupid"]: g for g in await sb.dv_rows("msdyn_customergroups")}
        for c in organisations:
            a = account_of[(c["dataAreaId"].upper(), c["CustomerAccount"])]
            assert (a["name"], a["address1_city"], a["customertypecode"]) == (
                c["OrganizationName"], c["AddressCity"], 3)
            group = groups[a["_msdyn_customergroupid_value"]]  # a lookup stays inside the legal entity
            assert (group["msdyn_groupid"], group["_msdyn_company_value"]) == (
                c["CustomerGroupId"], a["_msdyn_company_value"])
        # C-1001 lives in USMF and DEMF: two accounts, one per company, each with its own entity's data.
        us, de = account_of[("USMF", "C-1001")], account_of[("DEMF", "C-1001")]
        assert us["accountid"] != de["accountid"]
        assert us["name"] == (await sb.fo_row("CustomersV3", USMF_C1001))["OrganizationName"]
        assert de["name"] == (await sb.fo_row("CustomersV3", DEMF_C1001))["OrganizationName"]
        # Person customers → contacts of their company; contact persons → contacts under the right account.
        person_contacts = [c for c in await sb.dv_rows("contacts") if c.get("msdyn_customeraccount")]
        assert sorted((code_of[c["_msdyn_company_value"]], c["msdyn_customeraccount"], c["lastname"])
                      for c in person_contacts) == sorted(
            (p["dataAreaId"].upper(), p["CustomerAccount"], p["PersonLastName"]) for p in persons)
        contact_persons = await sb.fo_rows("ContactPersonsV2")
        assert contact_persons
        for cp in contact_persons:
            contact = await _one(sb, "contacts", msdyn_contactpersonid=cp["ContactPersonId"])
            parent = account_of[(cp["dataAreaId"].upper(), cp["CustomerAccount"])]
            assert (contact["_msdyn_company_value"], contact["_parentcustomerid_value"], contact["lastname"]) == (
                company[cp["dataAreaId"].upper()], parent["accountid"], cp["LastName"])
        vendors = await sb.dv_rows("msdyn_vendors")
        assert sorted((code_of[v["_msdyn_company_value"]], v["msdyn_vendoraccountnumber"]) for v in vendors) == \
            sorted((v["dataAreaId"].upper(), v["VendorAccountNumber"]) for v in await sb.fo_rows("VendorsV2"))
        # Products: one per number, released in USMF (the product master's company).
        usmf_products = {p["ProductNumber"] for p in await fo_where(sb, "CDSReleasedDistinctProducts",
                                                                    dataAreaId="usmf")}
        assert {p["productnumber"] for p in await sb.dv_rows("products") if p["productnumber"].startswith("D")} \
            == usmf_products
        report = await sb.manage("GET", "reconcile")
        assert report["clean"] is True and all(r["clean"] for r in report["reports"]), report
        checked = {r["mapping"]: r["checked"] for r in report["reports"]}
        assert checked["customers"]["erp"] == len(organisations)
        assert checked["companies"] == {"erp": 3, "crm": 3}

        # 2. F&O → Dataverse, live: Ava creates a USMF customer; F&O numbers it (blank CustomerAccount).
        groups_by = {(g["_msdyn_company_value"], g["msdyn_groupid"]): g["msdyn_customergroupid"]
                     for g in groups.values()}
        terms = {(t["_msdyn_company_value"], t["msdyn_name"]): t["msdyn_paymenttermid"]
                 for t in await sb.dv_rows("msdyn_paymentterms")}
        usd = (await _one(sb, "transactioncurrencies", isocurrencycode="USD"))["transactioncurrencyid"]
        new = await sb.fo_create("CustomersV3", {
            "dataAreaId": "usmf", "CustomerAccount": "", "OrganizationName": "Fabrikam Tools",
            "CustomerGroupId": "20", "SalesCurrencyCode": "USD", "PaymentTerms": "Net10", "AddressCity": "Dallas"})
        number = new["CustomerAccount"]
        assert re.fullmatch(r"US-\d{6}", number) and number not in {c["CustomerAccount"] for c in customers}
        await eventually(lambda: _has(sb, "accounts", accountnumber=number), "Ava's new customer in Dataverse")
        account = await _one(sb, "accounts", accountnumber=number)
        assert (account["_msdyn_company_value"], account["name"], account["address1_city"]) == (
            company["USMF"], "Fabrikam Tools", "Dallas")
        assert (account["_msdyn_customergroupid_value"], account["_msdyn_paymentterm_value"],
                account["_transactioncurrencyid_value"]) == (
            groups_by[(company["USMF"], "20")], terms[(company["USMF"], "Net10")], usd)
        # She edits the city: the account follows; the Dataverse echo of our write writes nothing back to F&O.
        edited = await sb.fo_edit("CustomersV3", new["@key"], {"AddressCity": "Austin"})
        await eventually(lambda: _has(sb, "accounts", accountid=account["accountid"], address1_city="Austin"),
                         "Ava's city edit in Dataverse")
        await quiet(sb)
        assert (await sb.fo_row("CustomersV3", new["@key"]))["@odata.etag"] == edited["@odata.etag"]

        # 3. Dataverse → F&O, live: Anna edits the USMF account of C-1001; only USMF's C-1001 changes.
        de_customer = await sb.fo_row("CustomersV3", DEMF_C1001)
        de_account = await sb.dv_row("accounts", de["accountid"])
        sent, since = await fo_sent(sb), time.monotonic()
        anna = await sb.dv_edit("accounts", us["accountid"], {"telephone1": "+1 425 555 0142",
                                                                "name": "Contoso Shared (US)"})
        await eventually(lambda: _fo_has(sb, "CustomersV3", USMF_C1001, PrimaryContactPhone="+1 425 555 0142",
                                         OrganizationName="Contoso Shared (US)"), "Anna's edit in F&O USMF")
        await quiet(sb)
        # Our write raised its own data event (one more delivered); the webhook dropped it as an echo, and
        # Dataverse still holds Anna's version of the account: nothing came back.
        assert await fo_sent(sb) == sent + 1
        assert any("erp/CustomersV3: 1 notice(s), 1 echo(es) dropped" in e.message for e in sb.events_since(since))
        after = await sb.dv_row("accounts", us["accountid"])
        assert (after["versionnumber"], after["_modifiedby_value"]) == (anna["versionnumber"],
                                                                         anna["_modifiedby_value"])
        assert await sb.fo_row("CustomersV3", DEMF_C1001) == de_customer
        assert await sb.dv_row("accounts", de["accountid"]) == de_account

        # 5. A vendor created in F&O, a product released in USMF (and one released only in DEMF: not synced).
        vendor = await sb.fo_create("VendorsV2", {"dataAreaId": "usmf", "VendorOrganizationName": "Litware Parts",
                                                  "VendorGroupId": "10", "CurrencyCode": "USD",
                                                  "AddressCity": "Tulsa"})
        await sb.fo_create("CDSReleasedDistinctProducts", {
            "dataAreaId": "usmf", "ProductNumber": "D0100", "ItemNumber": "D0100", "ProductName": "Site survey",
            "ProductType": "Service", "SalesPrice": 12.345})
        await sb.fo_create("CDSReleasedDistinctProducts", {
            "dataAreaId": "demf", "ProductNumber": "D0200", "ItemNumber": "D0200", "ProductName": "Kabeltrommel",
            "SalesPrice": 30.0})
        number = vendor["VendorAccountNumber"]
        await eventually(lambda: _has(sb, "msdyn_vendors", msdyn_vendoraccountnumber=number), "the vendor")
        await eventually(lambda: _has(sb, "products", productnumber="D0100"), "the released product")
        row = await _one(sb, "msdyn_vendors", msdyn_vendoraccountnumber=number)
        assert (row["_msdyn_company_value"], row["msdyn_vendorname"], row["msdyn_addresscity"],
                row["_transactioncurrencyid_value"]) == (company["USMF"], "Litware Parts", "Tulsa", usd)
        product = await _one(sb, "products", productnumber="D0100")
        assert (product["name"], product["price"], product["producttypecode"]) == ("Site survey", 12.35, 3)
        await quiet(sb)
        assert not await _has(sb, "products", productnumber="D0200")
        assert await _errors(sb) == []


async def test_dual_write_conflict_the_later_edit_wins_on_both_sides() -> None:
    # Both notifications are held longer than the gap between the two edits, so neither is synced before the
    # other side changes too. Dataverse stamps whole seconds: a gap over 1 s makes Anna's edit the later one.
    async with Sandbox(pack=FO_PACK, records=0, dataverse_delay_ms=1300, event_delay_ms=1300) as sb:
        await full_sync(sb, CUSTOMER_CHAIN)
        company = await companies(sb)
        account = await _one(sb, "accounts", accountnumber="C-1001", _msdyn_company_value=company["USMF"])
        await sb.fo_edit("CustomersV3", USMF_C1001, {"AddressCity": "Fargo"})  # Ava, first
        await asyncio.sleep(1.05)
        await sb.dv_edit("accounts", account["accountid"], {"address1_city": "Boise"})  # Anna, later
        await quiet(sb)
        assert (await sb.fo_row("CustomersV3", USMF_C1001))["AddressCity"] == "Boise"
        assert (await sb.dv_row("accounts", account["accountid"]))["address1_city"] == "Boise"
        assert await _errors(sb, "customers") == []


async def test_dual_write_deletions_and_missed_data_events_are_never_silent() -> None:
    async with Sandbox(pack=FO_PACK, records=4, dataverse_delay_ms=100) as sb:
        await full_sync(sb, CUSTOMER_CHAIN)
        company = await companies(sb)

        # 6. Ava deletes a USMF customer. Customers have `deletion: error`: the account stays, and an error
        # record names both records and the policy.
        key = "dataAreaId='usmf',CustomerAccount='US-000002'"
        deleted = await sb.fo_row("CustomersV3", key)
        assert deleted["PartyType"] == "Organization"
        account = await _one(sb, "accounts", accountnumber="US-000002", _msdyn_company_value=company["USMF"])
        await sb.fo_delete("CustomersV3", key)
        await eventually(lambda: _has_error(sb, "customers", key), "the deletion's error record")
        await quiet(sb)
        [error] = await _errors(sb)
        assert (error["mapping"], error["direction"], error["source_id"], error["destination_id"]) == (
            "customers", "to_crm", key, account["accountid"])
        assert "deletion conflict" in error["message"] and "deletion policy error" in error["message"]
        assert error["skipped"] is False
        assert await sb.dv_row("accounts", account["accountid"]) == account
        assert (await sb.manage("GET", "mappings/customers"))["errors"] == 1
        # The operator restores it in F&O (same number, same data): the pair is in step again, the error goes,
        # and the coupling still carries changes.
        await sb.fo_create("CustomersV3", data_fields(deleted))
        await eventually(lambda: _no_errors(sb), "the error record cleared by the restore")
        await sb.fo_edit("CustomersV3", key, {"AddressCity": "Denver"})
        await eventually(lambda: _has(sb, "accounts", accountid=account["accountid"], address1_city="Denver"),
                         "a change of the restored customer in Dataverse")

        # 7. Changes F&O never announced: the entity's data events are deactivated, then Ava edits the DEMF
        # C-1001 and deletes another USMF customer. Nothing arrives; the modified-records timer finds both by
        # comparing content with the couplings' snapshots (F&O has no modified-on).
        hook = next(h for h in sb.fo_hooks if h.entity == "CustomersV3")
        r = await sb.http.delete(f"{sb.fo_url}/_admin/dataevents/activations/{hook.activation_id}")
        assert r.status_code == 204
        await quiet(sb)
        de = await _one(sb, "accounts", accountnumber="C-1001", _msdyn_company_value=company["DEMF"])
        us = await _one(sb, "accounts", accountnumber="C-1001", _msdyn_company_value=company["USMF"])
        doomed_key = "dataAreaId='usmf',CustomerAccount='US-000003'"
        doomed = await _one(sb, "accounts", accountnumber="US-000003", _msdyn_company_value=company["USMF"])
        sent = await fo_sent(sb)
        await sb.fo_edit("CustomersV3", DEMF_C1001, {"AddressCity": "Bremen", "PrimaryContactPhone": "+49 421 5550"})
        await sb.fo_delete("CustomersV3", doomed_key)
        await quiet(sb)
        assert await fo_sent(sb) == sent  # no data event went out
        assert await sb.dv_row("accounts", de["accountid"]) == de
        assert await _errors(sb) == []
        await sb.fire("timer_modified_sync")
        await quiet(sb)
        after = await sb.dv_row("accounts", de["accountid"])
        assert (after["address1_city"], after["telephone1"]) == ("Bremen", "+49 421 5550")
        assert await sb.dv_row("accounts", us["accountid"]) == us  # the USMF C-1001 is not touched
        [error] = await _errors(sb)
        assert (error["source_id"], error["destination_id"]) == (doomed_key, doomed["accountid"])
        assert "deletion conflict" in error["message"]
        assert await sb.dv_row("accounts", doomed["accountid"]) == doomed
        jobs = (await sb.manage("GET", "jobs", params={"mapping": "customers", "limit": 10}))["jobs"]
        timer_job = next(j for j in jobs if j["trigger"] == "schedule" and j["direction"] == "to_crm")
        assert timer_job["counts"].get("modified") == 1 and timer_job["counts"].get("failed") == 1, timer_job


async def test_dual_write_deletion_conflict_cleared_by_removing_the_coupling() -> None:
    async with Sandbox(pack=FO_PACK, records=0, dataverse_delay_ms=100) as sb:
        await full_sync(sb, CUSTOMER_CHAIN)
        await sb.fo_delete("CustomersV3", DEMF_C1001)
        await eventually(lambda: _has_error(sb, "customers", DEMF_C1001), "the deletion's error record")
        [error] = await _errors(sb)
        assert "remove the coupling" in error["message"]
        done = await sb.manage("POST", "mappings/customers/uncouple", json={"crm_id": error["destination_id"]})
        assert done["uncoupled"] is True
        retried = await sb.manage("POST", "errors/retry", json={k: error[k] for k in ("mapping", "direction",
                                                                                      "source_id")})
        assert retried["ok"] is True
        assert await _errors(sb) == []


async def test_dual_write_with_only_some_legal_entities_refuses_the_others_data_events(tmp_path: Path) -> None:
    # The pack's own advice: `only: [USMF, DEMF]` under `companies` limits the deployment to those entities.
    text = (REPO / FO_PACK).read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("  crm_field: msdyn_company"))
    pack = tmp_path / "fo-usmf-demf.yaml"
    pack.write_text(text.replace(line, f"{line}\n  only: [USMF, DEMF]", 1))
    async with Sandbox(pack=pack, records=4, dataverse_delay_ms=100) as sb:
        url = f"{sb.functions_url}/api/webhooks/finance_operations/CustomersV3"
        gbsi = (await fo_where(sb, "CustomersV3", dataAreaId="gbsi"))[0]
        delivered = len(sb.queue.deliveries)
        r = await sb.http.post(url, params={"code": sb.fo_key},
                               json=data_event("CustomersV3", "CustomerV3", gbsi, control=7_000_000_011))
        assert r.status_code == 400 and "legal entity 'gbsi' is not synced" in r.text, r.text
        accepted = await sb.http.post(url, params={"code": sb.fo_key}, json=data_event(
            "CustomersV3", "CustomerV3", await sb.fo_row("CustomersV3", USMF_C1001), control=7_000_000_012))
        assert accepted.status_code == 202
        await quiet(sb)
        assert sessions_of(sb, "customers", gbsi["@key"]) == []
        assert len(sessions_of(sb, "customers", USMF_C1001)) == 1
        assert len(sb.queue.deliveries) == delivered + 1  # USMF's C-1001 is an organisation: customers only
        # The accepted event went all the way (its company and lookups synced first); GBSI's did not.
        usmf = (await companies(sb))["USMF"]
        assert (await _one(sb, "accounts", accountnumber="C-1001"))["_msdyn_company_value"] == usmf
        assert not await _has(sb, "accounts", accountnumber=gbsi["CustomerAccount"])


# ------------------------------------------------------------------------------------------- prospect to cash

async def test_p2c_sales_accounts_and_contacts_become_fo_customers_and_contact_persons() -> None:
    async with Sandbox(pack=P2C_PACK, records=0, dataverse_delay_ms=100) as sb:
        # 8. Anna creates an account: an F&O customer in USMF with the template's defaults.
        account = await sb.dv_create("accounts", {
            "accountnumber": "ACC-2001", "name": "Northwind Traders", "address1_city": "  seattle ",
            "address1_country": "United States", "telephone1": "+1 206 555 0101"})
        key = "dataAreaId='usmf',CustomerAccount='ACC-2001'"
        await eventually(lambda: _fo_has(sb, "CustomersV3", key), "the account as an F&O customer")
        customer = await sb.fo_row("CustomersV3", key)
        assert {k: customer[k] for k in ("OrganizationName", "PartyType", "CustomerGroupId", "LanguageId", "SiteId",
                                         "WarehouseId", "AddressCity", "AddressCountryRegionId",
                                         "PrimaryContactPhone")} == {
            "OrganizationName": "Northwind Traders", "PartyType": "Organization", "CustomerGroupId": "10",
            "LanguageId": "en-us", "SiteId": "", "WarehouseId": "", "AddressCity": "Seattle",
            "AddressCountryRegionId": "USA", "PrimaryContactPhone": "+1 206 555 0101"}
        assert [c["dataAreaId"] for c in await fo_where(sb, "CustomersV3", CustomerAccount="ACC-2001")] == ["usmf"]
        await sb.dv_edit("accounts", account["accountid"], {"name": "Northwind Traders Inc."})
        await eventually(lambda: _fo_has(sb, "CustomersV3", key, OrganizationName="Northwind Traders Inc."),
                         "Anna's rename in F&O")

        # 9. The routing rule: an active customer → an F&O (person) customer; an inactive one whose company is
        # an account → a contact person of that customer; neither → nothing in F&O, and no error.
        since = time.monotonic()
        buyer = await sb.dv_create("contacts", {
            "firstname": "Jo", "lastname": "Berry", "msdyn_contactnumber": "CON-01000-BVRCPS",
            "msdyn_isactivecustomer": True, "emailaddress1": "jo.berry@example.com"})
        colleague = await sb.dv_create("contacts", {
            "firstname": "Kim", "lastname": "Akers", "msdyn_contactnumber": "CON-01001-KAKERS", "jobtitle": "Buyer",
            "msdyn_isactivecustomer": False, "msdyn_iscompanyanaccount": True,
            "_parentcustomerid_value": account["accountid"]})
        nobody = await sb.dv_create("contacts", {
            "firstname": "Lee", "lastname": "Noone", "msdyn_contactnumber": "CON-01002-LNOONE",
            "msdyn_isactivecustomer": False, "msdyn_iscompanyanaccount": False})
        person_key = "dataAreaId='usmf',CustomerAccount='CON-01000-BVRCPS'"
        contact_key = "dataAreaId='usmf',ContactPersonId='CON-01001-KAKERS'"
        await eventually(lambda: _fo_has(sb, "CustomersV3", person_key), "the active contact as a customer")
        await eventually(lambda: _fo_has(sb, "ContactPersonsV2", contact_key), "the contact person")
        await quiet(sb)
        person = await sb.fo_row("CustomersV3", person_key)
        assert {k: person[k] for k in ("PartyType", "PersonFirstName", "PersonLastName", "CustomerGroupId",
                                       "PrimaryContactEmail")} == {
            "PartyType": "Person", "PersonFirstName": "Jo", "PersonLastName": "Berry", "CustomerGroupId": "10",
            "PrimaryContactEmail": "jo.berry@example.com"}
        contact = await sb.fo_row("ContactPersonsV2", contact_key)
        assert {k: contact[k] for k in ("ContactForParty", "IsContactPersonExternallyMaintained", "FirstName",
                                        "LastName", "JobTitle")} == {
            "ContactForParty": "ACC-2001", "IsContactPersonExternallyMaintained": "Yes", "FirstName": "Kim",
            "LastName": "Akers", "JobTitle": "Buyer"}
        # Each contact became exactly one F&O record, of the kind its rule says.
        assert not await fo_where(sb, "ContactPersonsV2", ContactPersonId="CON-01000-BVRCPS")
        assert not await fo_where(sb, "CustomersV3", CustomerAccount="CON-01001-KAKERS")
        assert not await fo_where(sb, "CustomersV3", CustomerAccount="CON-01002-LNOONE")
        assert not await fo_where(sb, "ContactPersonsV2", ContactPersonId="CON-01002-LNOONE")
        # The unrouted contact was looked at by both candidate mappings and left alone: no error, no job run.
        assert [d.completed for d in sessions_of(sb, "contacts-to-customers", nobody["contactid"])] == [True]
        assert [d.completed for d in sessions_of(sb, "contacts-to-contact-persons", nobody["contactid"])] == [True]
        assert await _errors(sb) == []
        for mapping in ("contacts-to-customers", "contacts-to-contact-persons"):
            jobs = (await sb.manage("GET", "jobs", params={"mapping": mapping}))["jobs"]
            assert [(j["trigger"], j["counts"]) for j in jobs] == [("webhook", {"inserted": 1})], jobs
        assert notes_about(sb, since, buyer["contactid"]) and notes_about(sb, since, colleague["contactid"])

        # 12. F&O refuses a record: customer group 10 is gone from USMF, so the template's default points
        # nowhere. The refusal is an error record with F&O's own infolog; after the operator re-creates the
        # group, a retry creates the customer.
        group = await sb.fo_row("CustomerGroups", "dataAreaId='usmf',CustomerGroupId='10'")
        await sb.fo_delete("CustomerGroups", group["@key"])
        refused = await sb.dv_create("accounts", {"accountnumber": "ACC-3001", "name": "Blue Yonder Airlines"})
        await eventually(lambda: _has_error(sb, "accounts-to-customers", refused["accountid"]), "the refusal")
        [error] = await _errors(sb)
        assert (error["direction"], error["destination_id"], error["skipped"]) == ("to_erp", None, False)
        assert ("The value '10' in field 'Customer group' is not found in the related table 'Customer groups'."
                in error["message"]), error
        assert "AxODataWriteException" in (error["detail"] or ""), error
        assert not await fo_where(sb, "CustomersV3", CustomerAccount="ACC-3001")
        await sb.fo_create("CustomerGroups", data_fields(group))
        retried = await sb.manage("POST", "errors/retry", json={k: error[k] for k in ("mapping", "direction",
                                                                                      "source_id")})
        new_key = "dataAreaId='usmf',CustomerAccount='ACC-3001'"
        assert retried["ok"] is True and retried["result"]["outcome"] == "inserted", retried
        assert retried["result"]["destination_id"] == new_key
        assert (await sb.fo_row("CustomersV3", new_key))["CustomerGroupId"] == "10"
        assert await _errors(sb) == []


async def test_p2c_orders_and_invoices_reach_sales_and_quotes_reach_fo() -> None:
    async with Sandbox(pack=P2C_PACK, records=0, register_webhooks=False, dataverse_delay_ms=100) as sb:
        # Sales already knows C-1001 (by number): the full sync couples it rather than creating anything.
        shared = await sb.dv_create("accounts", {"accountnumber": "C-1001", "name": "Contoso Shared"})
        await sb.register_webhooks()
        runs = {(r["mapping"], r["direction"]): r["counts"] for r in await full_sync(sb)}
        assert runs[("accounts-to-customers", "to_erp")] == {"coupled": 1}
        assert runs[("sales-orders", "to_crm")] == {"inserted": 1}
        assert runs[("sales-invoice-lines", "to_crm")] == {"inserted": 2}
        assert len(await fo_where(sb, "CustomersV3", CustomerAccount="C-1001")) == 2  # USMF and DEMF, as before
        order = await _one(sb, "salesorders", ordernumber="USSO-000001")
        assert order["_customerid_value"] == shared["accountid"]
        invoice = await _one(sb, "invoices", invoicenumber="USINV-000001")
        assert (invoice["_customerid_value"], invoice["_salesorderid_value"]) == (shared["accountid"],
                                                                                  order["salesorderid"])
        assert not await _has(sb, "salesorders", ordernumber="DESO-000001")  # one legal entity: USMF
        assert await _errors(sb) == []
        assert (await sb.manage("GET", "reconcile"))["clean"] is True
        products = {p["productnumber"]: p["productid"] for p in await sb.dv_rows("products")}

        # 10. A Sales-born customer orders: Ava enters the order and a line in F&O → Sales.
        account = await sb.dv_create("accounts", {"accountnumber": "ACC-2001", "name": "Northwind Traders"})
        await eventually(lambda: _fo_has(sb, "CustomersV3", "dataAreaId='usmf',CustomerAccount='ACC-2001'"),
                         "the account as an F&O customer")
        so = await sb.fo_create("SalesOrderHeadersV2", {
            "dataAreaId": "usmf", "OrderingCustomerAccountNumber": "ACC-2001", "CurrencyCode": "USD",
            "SalesOrderName": "Chairs for Northwind"})
        await sb.fo_create("SalesOrderLines", {
            "dataAreaId": "usmf", "SalesOrderNumber": so["SalesOrderNumber"], "LineNumber": 1, "ItemNumber": "D0002",
            "OrderedSalesQuantity": 4, "SalesPrice": 100})
        number = so["SalesOrderNumber"]
        await eventually(lambda: _has(sb, "salesorders", ordernumber=number), "the order in Sales")
        order = await _one(sb, "salesorders", ordernumber=number)
        assert (order["_customerid_value"], order["name"]) == (account["accountid"], "Chairs for Northwind")
        await eventually(lambda: _has(sb, "salesorderdetails", _salesorderid_value=order["salesorderid"]),
                         "the order line in Sales")
        line = await _one(sb, "salesorderdetails", _salesorderid_value=order["salesorderid"])
        assert (line["_productid_value"], line["lineitemnumber"], line["quantity"], line["priceperunit"],
                line["extendedamount"]) == (products["D0002"], 1, 4.0, 100.0, 400.0)
        # Invoices are read-only over OData: F&O posts them; here the admin route stands in for the posting.
        inv = await sb.fo_create("SalesInvoiceHeadersV2", {
            "dataAreaId": "usmf", "SalesOrderNumber": number, "InvoiceCustomerAccountNumber": "ACC-2001",
            "CurrencyCode": "USD", "InvoiceDate": "2025-04-01", "TotalInvoiceAmount": 400.0})
        await sb.fo_create("SalesInvoiceLines", {
            "dataAreaId": "usmf", "InvoiceNumber": inv["InvoiceNumber"], "LineNumber": 1, "ItemNumber": "D0002",
            "InvoicedQuantity": 4, "SalesPrice": 100, "ProductName": "Office chair"})
        await eventually(lambda: _has(sb, "invoices", invoicenumber=inv["InvoiceNumber"]), "the invoice in Sales")
        invoice = await _one(sb, "invoices", invoicenumber=inv["InvoiceNumber"])
        assert (invoice["_customerid_value"], invoice["_salesorderid_value"], invoice["totalamount"]) == (
            account["accountid"], order["salesorderid"], 400.0)
        await eventually(lambda: _has(sb, "invoicedetails", _invoiceid_value=invoice["invoiceid"]),
                         "the invoice line in Sales")
        inv_line = await _one(sb, "invoicedetails", _invoiceid_value=invoice["invoiceid"])
        assert (inv_line["_productid_value"], inv_line["quantity"], inv_line["productdescription"]) == (
            products["D0002"], 4.0, "Office chair")

        # 11. Anna quotes a product that came from F&O: the quotation and its line in USMF.
        quote = await sb.dv_create("quotes", {"quotenumber": "QUO-0001", "name": "Desks for Northwind",
                                              "_customerid_value": account["accountid"]})
        await sb.dv_create("quotedetails", {"_quoteid_value": quote["quoteid"], "lineitemnumber": 1,
                                            "_productid_value": products["D0003"], "quantity": 2,
                                            "priceperunit": 250})
        q_key = "dataAreaId='usmf',SalesQuotationNumber='QUO-0001'"
        await eventually(lambda: _fo_has(sb, "SalesQuotationHeadersV2", q_key), "the quotation in F&O")
        await eventually(lambda: _fo_lines(sb, "QUO-0001"), "the quotation line in F&O")
        header = await sb.fo_row("SalesQuotationHeadersV2", q_key)
        assert (header["QuotationCustomerAccount"], header["CurrencyCode"], header["SalesQuotationName"]) == (
            "ACC-2001", "USD", "Desks for Northwind")
        [q_line] = await fo_where(sb, "SalesQuotationLines", SalesQuotationNumber="QUO-0001")
        assert (q_line["dataAreaId"], q_line["LineNumber"], q_line["ItemNumber"], q_line["RequestedSalesQuantity"],
                q_line["SalesPrice"], q_line["LineAmount"]) == ("usmf", 1.0, "D0003", 2.0, 250.0, 500.0)
        await quiet(sb)
        assert await _errors(sb) == []


async def test_p2c_webhook_refuses_what_it_should_and_queues_a_repeated_event_once() -> None:
    async with Sandbox(pack=P2C_PACK, records=0, register_webhooks=False, dataverse_delay_ms=100) as sb:
        await sb.dv_create("accounts", {"accountnumber": "C-1001", "name": "Contoso Shared"})
        await sb.register_webhooks()
        await full_sync(sb)
        assert "webhook_finance_operations_SalesOrderHeadersV2" in sb.host.functions
        assert "webhook_finance_operations_CustomersV3" not in sb.host.functions  # P2C reads no F&O customers
        url = f"{sb.functions_url}/api/webhooks/finance_operations/SalesOrderHeadersV2"
        order_key = "dataAreaId='usmf',SalesOrderNumber='USSO-000001'"
        order = await sb.fo_row("SalesOrderHeadersV2", order_key)
        salesorder = await _one(sb, "salesorders", ordernumber="USSO-000001")
        delivered, dropped = len(sb.queue.deliveries), sb.queue.duplicates_dropped

        # 13. Another entity's event at this endpoint (right key) → 400; the right event with a wrong or no
        # key → 401; an echo of the integration user → accepted, nothing queued. Nothing reaches the queue.
        customer = await sb.fo_row("CustomersV3", USMF_C1001)
        r = await sb.http.post(url, params={"code": sb.fo_key},
                               json=data_event("CustomersV3", "CustomerV3", customer, control=7_000_000_001))
        assert r.status_code == 400 and "'CustomerV3', not SalesOrderHeadersV2" in r.text, r.text
        event = data_event("SalesOrderHeadersV2", "SalesOrderHeaderV2", order, control=7_000_000_002)
        for params in ({"code": "not-the-key"}, {}):
            r = await sb.http.post(url, params=params, json=event)
            assert r.status_code == 401, r.text
        echo = data_event("SalesOrderHeadersV2", "SalesOrderHeaderV2", order, control=7_000_000_003,
                          user=sb.fo_app.state.emulator.integration.user_id)
        assert (await sb.http.post(url, params={"code": sb.fo_key}, json=echo)).status_code == 202
        await quiet(sb)
        assert (len(sb.queue.deliveries), sb.queue.duplicates_dropped) == (delivered, dropped)

        # The same data event delivered twice (same ControlNumber): one queue message, the second dropped by
        # duplicate detection.
        for _ in range(2):
            r = await sb.http.post(url, params={"code": sb.fo_key}, json=event)
            assert r.status_code == 202, r.text
        await quiet(sb)
        assert len(sessions_of(sb, "sales-orders", order_key)) == 1
        assert sb.queue.duplicates_dropped == dropped + 1

        # A well-formed event of a legal entity P2C does not sync (DEMF) is accepted and dropped on arrival: the
        # event carries the whole record, which no mapping's filter takes. Nothing is queued, nothing reaches Sales.
        since = time.monotonic()
        de_order = await sb.fo_row("SalesOrderHeadersV2", "dataAreaId='demf',SalesOrderNumber='DESO-000001'")
        r = await sb.http.post(url, params={"code": sb.fo_key},
                               json=data_event("SalesOrderHeadersV2", "SalesOrderHeaderV2", de_order,
                                               control=7_000_000_004))
        assert r.status_code == 202
        await quiet(sb)
        assert not await _has(sb, "salesorders", ordernumber="DESO-000001")
        assert sessions_of(sb, "sales-orders", de_order["@key"]) == []
        assert notes_about(sb, since, de_order["@key"]) == []  # the processor never saw it
        assert any("outside every mapping's filter" in e.message for e in sb.events_since(since))
        assert await sb.dv_row("salesorders", salesorder["salesorderid"]) == salesorder
        assert await _errors(sb) == []


async def test_p2c_data_events_of_other_legal_entities_are_not_queued() -> None:
    async with Sandbox(pack=P2C_PACK, records=0, dataverse_delay_ms=100) as sb:
        url = f"{sb.functions_url}/api/webhooks/finance_operations/SalesOrderHeadersV2"
        de_order = await sb.fo_row("SalesOrderHeadersV2", "dataAreaId='demf',SalesOrderNumber='DESO-000001'")
        await sb.http.post(url, params={"code": sb.fo_key}, json=data_event(
            "SalesOrderHeadersV2", "SalesOrderHeaderV2", de_order, control=7_000_000_021))
        await quiet(sb)
        assert sessions_of(sb, "sales-orders", de_order["@key"]) == []


async def test_p2c_contact_no_rule_takes_is_reported_as_skipped_with_its_reason() -> None:
    async with Sandbox(pack=P2C_PACK, records=0, dataverse_delay_ms=100) as sb:
        since = time.monotonic()
        nobody = await sb.dv_create("contacts", {
            "firstname": "Lee", "lastname": "Noone", "msdyn_contactnumber": "CON-01002-LNOONE",
            "msdyn_isactivecustomer": False, "msdyn_iscompanyanaccount": False})
        await quiet(sb)
        notes = notes_about(sb, since, nobody["contactid"])
        assert len(notes) == 2, notes  # one per candidate mapping of the route
        assert not any("another mapping of the route takes this record" in n for n in notes), notes
        assert any("sales-contacts" in n for n in notes), notes


async def _has_error(sb: Sandbox, mapping: str, source_id: str) -> bool:
    return any(e["source_id"] == source_id for e in await _errors(sb, mapping))


async def _no_errors(sb: Sandbox) -> bool:
    return not await _errors(sb)


async def _fo_lines(sb: Sandbox, quotation: str) -> bool:
    return bool(await fo_where(sb, "SalesQuotationLines", SalesQuotationNumber=quotation))

