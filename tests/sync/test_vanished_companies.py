"""Deletions no notice reported, with companies: a Finance and Operations customer deleted (its catch-up by content
counts it), and coupled records of companies outside what a run reads are never taken for deleted (F&O legal
entities outside `companies.only`; Business Central companies outside `only`, for the key-set comparison)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from emulators.sandbox.stack import dataverse_keys
from shared.http.retry import RetryExecutor
from shared.mapping import DeletionPolicy, Direction, Pack, Side, loads_pack
from shared.state import Coupling, StateStore
from shared.sync import EngineOptions, SyncEngine
from shared.sync.vanished import CONTENT, KEYSET
from tests.support.connectors import BC_URL, make_bc, make_dv
from tests.sync.conftest import PATIENT
from tests.sync.test_companies import Striped, only, striped  # noqa: F401  (fixtures)


async def test_a_deleted_fo_customer_is_caught_up_and_counted(striped: Striped) -> None:  # noqa: F811
    source = await striped.customer("USMF", "V-100", "Contoso USA")
    created = await striped.engine.sync_record("customers", "to_crm", source, create=True)
    assert created.destination_id is not None, created.message
    await striped.fo.delete("CustomersV3", quote(source, safe=""))  # no data event reaches us
    mapping = striped.pack.mapping("customers").model_copy(update={"deletion": DeletionPolicy.PROPAGATE})
    runs = {r.direction: r for r in await striped.engine.sync_modified(mapping)}
    run = runs[Direction.TO_CRM]
    assert run.deletions is not None and (run.deletions.how, run.deletions.found) == (CONTENT, [source])
    assert run.counts.get("vanished") == 1 and run.counts.get("deleted") == 1, run.counts
    assert await striped.dv.row("accounts", created.destination_id) is None


@pytest.mark.parametrize("only", [["USMF"]])
async def test_an_fo_customer_of_a_company_not_synced_is_not_taken_for_deleted(striped: Striped) -> None:  # noqa: F811
    # Coupled while DEMF was still synced; the pack now syncs USMF only, so no listing returns it.
    source = await striped.customer("DEMF", "V-200", "Contoso Germany")
    account = await striped.account("DEMF", "V-200", "Contoso Germany")
    await striped.engine.state.couplings.create_coupling(Coupling(mapping="customers", erp_id=source,
                                                                  crm_id=account["accountid"]))
    mapping = striped.pack.mapping("customers").model_copy(update={"deletion": DeletionPolicy.PROPAGATE})
    runs = {r.direction: r for r in await striped.engine.sync_modified(mapping)}
    assert all("vanished" not in r.counts and "deleted" not in r.counts for r in runs.values()), runs
    assert await striped.fo_customer(source) is not None
    assert await striped.dv.row("accounts", account["accountid"]) is not None
    assert await striped.engine.state.couplings.find_coupling("customers", Side.ERP, source) is not None


BC_PACK = """
name: bc-companies
version: "1"
systems: {erp: business_central, crm: dataverse}
companies: {mapping: companies, erp_field: companyId, crm_field: msdyn_company, only: [%s]}
mappings:
  - name: companies
    erp: {entity: companies, key: id, natural_key: [name]}
    crm: {entity: cdm_companies, logical_name: cdm_company, key: cdm_companyid, natural_key: [cdm_companycode]}
    direction: to_crm
    only_coupled: false
    fields:
      - {erp: name, crm: cdm_companycode}
  - name: customers
    erp: {entity: customers, key: id, natural_key: [number]}
    crm: {entity: accounts, logical_name: account, key: accountid, natural_key: [accountnumber]}
    direction: to_crm
    company_specific: true
    deletion: propagate
    fields:
      - {erp: number, crm: accountnumber, not_null: true, match: {priority: 1}}
      - {erp: displayName, crm: name, not_null: true}
"""


class BcWorld:
    def __init__(self, engine: SyncEngine, pack: Pack, bc: httpx.AsyncClient, dv: httpx.AsyncClient,
                 companies: dict[str, str], sent: list[httpx.Request]) -> None:
        self.engine, self.pack, self.bc, self.dv, self.companies, self.sent = engine, pack, bc, dv, companies, sent

    async def customer(self, company: str, number: str) -> str:
        response = await self.bc.post("/_admin/tables/customers", params={"as": "bc-user-annie"}, json={
            "_companyId": self.companies[company], "number": number, "displayName": number, "type": "Company",
            "blocked": " ", "creditLimit": 0})
        assert response.status_code == 201, response.text
        return f"{self.companies[company]}/{response.json()['id']}"

    async def account(self, number: str) -> str:
        response = await self.dv.post("/_admin/tables/accounts", params={"as": "dv-sales-anna"},
                                      json={"accountnumber": number, "name": number})
        assert response.status_code == 201, response.text
        return response.json()["accountid"]


@pytest.fixture
async def bc_world(state: StateStore) -> AsyncIterator[BcWorld]:
    bc_app = create_bc(BusinessCentralSettings(records=2, seed=5, notification_delay_ms=0))
    companies = {r["name"]: r["id"] for r in bc_app.state.emulator.store.table("companies").all()}
    pack = loads_pack(BC_PACK % companies["CRONUS USA, Inc."], "bc-companies.yaml")
    dv_app = create_dv(DataverseSettings(records=0, seed=5, webhook_delay_ms=0, alternate_keys=dataverse_keys(pack)))
    sent: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        sent.append(request)

    async with (httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app), event_hooks={"request": [hook]}) as bc,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app)) as dv_http,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app), base_url=BC_URL) as bc_admin,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app), base_url="http://dv.test") as dv_admin):
        erp = make_bc(bc, bc_app, company_ids=sorted(companies.values()), retry=RetryExecutor(PATIENT))
        crm = make_dv(dv_http, dv_app, retry=RetryExecutor(PATIENT))
        engine = SyncEngine(pack, erp=erp, crm=crm, state=state, options=EngineOptions())
        yield BcWorld(engine, pack, bc_admin, dv_admin, companies, sent)
    await bc_app.state.emulator.webhooks.aclose()
    await dv_app.state.emulator.webhooks.aclose()


async def test_a_bc_record_of_a_company_outside_only_is_not_taken_for_deleted(bc_world: BcWorld) -> None:
    couplings = bc_world.engine.state.couplings
    mine = await bc_world.customer("CRONUS USA, Inc.", "K-1")
    theirs = await bc_world.customer("CRONUS International Ltd.", "K-2")
    for erp_id, number in ((mine, "K-1"), (theirs, "K-2")):
        await couplings.create_coupling(Coupling(mapping="customers", erp_id=erp_id,
                                                 crm_id=await bc_world.account(number)))
    await bc_world.bc.delete(f"/_admin/tables/customers/{mine.split('/')[1]}", params={"as": "bc-user-annie"})
    mark = len(bc_world.sent)
    [run] = await bc_world.engine.sync_modified("customers")
    assert run.deletions is not None and run.deletions.how == KEYSET
    assert (run.deletions.found, run.deletions.outside) == ([mine], 1), run.deletions
    assert run.counts.get("vanished") == 1 and run.counts.get("deleted") == 1, run.counts
    # The International company is neither listed nor asked about its customer.
    intl = bc_world.companies["CRONUS International Ltd."]
    assert not any(intl in str(r.url) for r in bc_world.sent[mark:]), [str(r.url) for r in bc_world.sent[mark:]]
    assert await couplings.find_coupling("customers", Side.ERP, theirs) is not None
