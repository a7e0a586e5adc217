"""Several Business Central companies in one Dataverse environment: the BC emulator's two companies (CRONUS USA
and CRONUS International), a pack striped by `companyId`, the real connectors over HTTP and Azurite. Each
account belongs to its company; the same customer number in both companies is two accounts; writes go to
the right company; notices and subscriptions name each company."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from emulators.sandbox.stack import dataverse_keys
from shared.http.retry import RetryExecutor
from shared.mapping import Side, loads_pack
from shared.notices.business_central import parse_notifications
from shared.state import StateStore
from shared.subscriptions import wanted_subscriptions
from shared.sync import EngineOptions, SyncEngine
from shared.sync.outcome import Outcome
from shared.sync.reconcile import reconcile
from tests.support.connectors import BC_URL, make_bc, make_dv

from .conftest import PATIENT

PACK = loads_pack("""
name: bc-companies
version: "1"
systems: {erp: business_central, crm: dataverse}
companies: {mapping: companies, erp_field: companyId, crm_field: msdyn_company}
mappings:
  - name: companies
    erp: {entity: companies, key: id, natural_key: [name]}
    crm: {entity: cdm_companies, logical_name: cdm_company, key: cdm_companyid, natural_key: [cdm_companycode]}
    direction: to_crm
    only_coupled: false
    fields:
      - {erp: name, crm: cdm_companycode}
      - {erp: displayName, crm: cdm_name}
  - name: customers
    erp: {entity: customers, key: id, natural_key: [number]}
    crm: {entity: accounts, logical_name: account, key: accountid, natural_key: [accountnumber]}
    direction: bidirectional
    company_specific: true
    only_coupled: false
    fields:
      - {erp: number, crm: accountnumber, not_null: true, match: {priority: 1}}
      - {erp: displayName, crm: name, not_null: true}
      - {erp: city, crm: address1_city}
""", "bc-companies.yaml")
PERSON = "bc-user-annie"


class World:
    def __init__(self, engine: SyncEngine, bc: httpx.AsyncClient, dv: httpx.AsyncClient,
                 companies: dict[str, str]) -> None:
        self.engine, self.bc, self.dv, self.companies = engine, bc, dv, companies  # company name → BC id

    async def rows(self, client: httpx.AsyncClient, table: str) -> list[dict[str, Any]]:
        response = await client.get(f"/_admin/tables/{table}")
        assert response.status_code == 200, response.text
        return response.json()["value"]

    async def customer(self, company: str, number: str, name: str) -> dict[str, Any]:
        response = await self.bc.post("/_admin/tables/customers", params={"as": PERSON}, json={
            "_companyId": self.companies[company], "number": number, "displayName": name, "type": "Company",
            "blocked": " ", "creditLimit": 0})
        assert response.status_code == 201, response.text
        return response.json()

    async def account_company(self, account: dict[str, Any]) -> str:
        rows = {r["cdm_companyid"]: r["cdm_companycode"] for r in await self.rows(self.dv, "cdm_companies")}
        return rows[account["_msdyn_company_value"]]


@pytest.fixture
async def world(state: StateStore) -> AsyncIterator[World]:
    bc_app = create_bc(BusinessCentralSettings(records=3, seed=5, notification_delay_ms=0))
    dv_app = create_dv(DataverseSettings(records=0, seed=5, webhook_delay_ms=0,
                                         alternate_keys=dataverse_keys(PACK)))
    companies = {r["name"]: r["id"] for r in bc_app.state.emulator.store.table("companies").all()}
    async with (httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app)) as bc_http,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app)) as dv_http,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app), base_url=BC_URL) as bc_admin,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app), base_url="http://dv.test") as dv_admin):
        erp = make_bc(bc_http, bc_app, company_ids=sorted(companies.values()), retry=RetryExecutor(PATIENT))
        crm = make_dv(dv_http, dv_app, retry=RetryExecutor(PATIENT))
        users = {Side.CRM: frozenset({dv_app.state.emulator.integration.user_id})}
        engine = SyncEngine(PACK, erp=erp, crm=crm, state=state, options=EngineOptions(integration_users=users))
        yield World(engine, bc_admin, dv_admin, companies)
    await bc_app.state.emulator.webhooks.aclose()
    await dv_app.state.emulator.webhooks.aclose()


async def test_each_company_s_customers_become_accounts_of_that_company(world: World) -> None:
    usa, intl = world.companies["CRONUS USA, Inc."], world.companies["CRONUS International Ltd."]
    await world.customer("CRONUS USA, Inc.", "SAME-1", "Contoso US")
    await world.customer("CRONUS International Ltd.", "SAME-1", "Contoso International")
    runs = await world.engine.sync_full(["companies", "customers"])
    assert all(not r.failures for r in runs), [f.message for r in runs for f in r.failures]
    customers = await world.rows(world.bc, "customers")
    accounts = await world.rows(world.dv, "accounts")
    assert len(accounts) == len(customers) and {c["_companyId"] for c in customers} == {usa, intl}
    by_company = {(await world.account_company(a), a["accountnumber"]): a for a in accounts}
    for c in customers:
        company = "CRONUS USA, Inc." if c["_companyId"] == usa else "CRONUS International Ltd."
        assert by_company.get((company, c["number"]), {}).get("name") == c["displayName"], (sorted(by_company), c)
    # The same number in two companies is two accounts, each with its own company's data.
    assert by_company[("CRONUS USA, Inc.", "SAME-1")]["name"] == "Contoso US"
    assert by_company[("CRONUS International Ltd.", "SAME-1")]["name"] == "Contoso International"
    report = await reconcile(world.engine, "customers")
    assert report.clean, report.drift
    # Nothing to do the second time, across both companies (keyset order over composite ids included).
    again = await world.engine.sync_full(["customers"], resume=False)
    assert all(set(r.counts) <= {"unchanged"} for r in again), [r.counts for r in again]

    # Sales → BC lands in the right company; the other company's SAME-1 is untouched.
    intl_account = by_company[("CRONUS International Ltd.", "SAME-1")]
    response = await world.dv.patch(f"/_admin/tables/accounts/{intl_account['accountid']}",
                                    params={"as": "dv-sales-anna"}, json={"address1_city": "Cork"})
    assert response.status_code == 200, response.text
    result = await world.engine.sync_record("customers", "to_erp", intl_account["accountid"])
    assert result.outcome is Outcome.MODIFIED and result.destination_id.startswith(f"{intl}/"), result
    same = {c["_companyId"]: c for c in await world.rows(world.bc, "customers") if c["number"] == "SAME-1"}
    assert same[intl].get("city") == "Cork" and same[usa].get("city") != "Cork"

    # A new account of the International company becomes a customer there.
    company_row = next(r for r in await world.rows(world.dv, "cdm_companies")
                       if r["cdm_companycode"] == "CRONUS International Ltd.")
    response = await world.dv.post("/_admin/tables/accounts", params={"as": "dv-sales-anna"}, json={
        "accountnumber": "NEW-7", "name": "Fabrikam Ireland", "_msdyn_company_value": company_row["cdm_companyid"]})
    assert response.status_code == 201, response.text
    created = await world.engine.sync_record("customers", "to_erp", response.json()["accountid"], create=True)
    assert created.outcome is Outcome.INSERTED, created.message
    [new] = [c for c in await world.rows(world.bc, "customers") if c["number"] == "NEW-7"]
    assert new["_companyId"] == intl and created.destination_id == f"{intl}/{new['id']}"


def test_notices_and_subscriptions_name_each_company() -> None:
    usa, intl = "b18a3e27-2f6b-4c5d-8e9f-0a1b2c3d4e5f", "7dbb0b2c-1111-4222-8333-444455556666"
    record = "130b2d7e-aaaa-4bbb-8ccc-0123456789ab"
    body = json.dumps({"value": [
        {"clientState": "s", "resource": f"api/v2.0/companies({intl})/customers({record})", "changeType": "updated"},
        {"clientState": "s", "resource": f"/api/v2.0/companies({intl})/customers?$filter=number%20eq%20'X'",
         "changeType": "collection"}]}).encode()
    now = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    one, many = parse_notifications(body, entity="customers", client_state="s", company_id=None,
                                    company_ids=(usa, intl), seen_at=now)
    assert one.record_id == f"{intl}/{record}"  # as the connector names records of several companies
    assert many.collection_filter == f"companyId eq '{intl}' and (number eq 'X')"
    with pytest.raises(Exception, match="not synced"):
        parse_notifications(body, entity="customers", client_state="s", company_id=None, company_ids=(usa,),
                            seen_at=now)
    wanted = wanted_subscriptions(PACK, company_id="", company_ids=(usa, intl), public_base_url="https://app")
    assert sorted(w.resource for w in wanted) == [f"/api/v2.0/companies({intl})/customers",
                                                 f"/api/v2.0/companies({usa})/customers"]


async def test_key_order_reads_resume_across_companies(world: World) -> None:
    erp = world.engine.connector(Side.ERP)
    orderby, _ = erp.keyset("customers", None)
    everything = [r async for page in erp.list("customers", orderby=orderby, page_size=2) for r in page]
    companies = [r.id.split("/")[0] for r in everything]
    assert companies == sorted(companies) and len(set(companies)) == 2  # one company after the other
    middle = everything[len(everything) // 2 - 1]
    _, after = erp.keyset("customers", middle.id)
    rest = [r async for page in erp.list("customers", orderby=orderby, filter=after) for r in page]
    assert [r.id for r in rest] == [r.id for r in everything[len(everything) // 2:]]
