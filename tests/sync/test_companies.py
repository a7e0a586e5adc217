"""Company striping in the engine, against the Dataverse emulator (dual-write tables, company keys), the Finance
and Operations emulator (legal entities, `dataAreaId` keys) through the real connectors, and Azurite:
natural-key search, match coupling and reconcile stay within a company; records of companies outside
`companies.only` are IGNORED with a message naming the company."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette

from emulators.common.store import Actor
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from emulators.dataverse.settings import _default_keys
from emulators.finance_operations import FinanceOperationsSettings
from emulators.finance_operations import create_app as create_fo
from shared.http.retry import RetryExecutor
from shared.mapping import Direction, Pack, Side, loads_pack
from shared.state import StateStore
from shared.sync import EngineOptions, SyncEngine
from shared.sync.outcome import Outcome
from shared.sync.reconcile import reconcile
from tests.support.connectors import FO_URL, Sent, make_dv, make_fo

from .conftest import PATIENT, System

PACK = """
name: striped
version: "1"
systems: {erp: finance_operations, crm: dataverse}
companies: {mapping: companies, erp_field: dataAreaId, erp_by: LegalEntityId, crm_field: msdyn_company%s}
mappings:
  - name: companies
    erp: {entity: LegalEntities, key: LegalEntityId, natural_key: [LegalEntityId]}
    crm: {entity: cdm_companies, logical_name: cdm_company, key: cdm_companyid, natural_key: [cdm_companycode]}
    direction: to_crm
    only_coupled: false
    fields:
      - {erp: LegalEntityId, crm: cdm_companycode, match: {priority: 1}, transforms: [{type: uppercase}]}
      - {erp: Name, crm: cdm_name}
  - name: customers
    erp: {entity: CustomersV3, key: CustomerAccount, natural_key: [CustomerAccount]}
    crm: {entity: accounts, logical_name: account, key: accountid, natural_key: [accountnumber]}
    direction: bidirectional
    company_specific: true
    only_coupled: false
    on_create:
      erp: {CustomerGroupId: "10"}  # mandatory in F&O; not what these tests are about
    fields:
      - {erp: CustomerAccount, crm: accountnumber, not_null: true, match: {priority: 1}}
      - {erp: OrganizationName, crm: name, not_null: true}
"""
FO_PERSON = "fo-user-ava"


class Striped:
    def __init__(self, pack: Pack, engine: SyncEngine, fo: System, fo_sent: Sent, dv: System, app: Starlette,
                 requests: list[httpx.Request]) -> None:
        self.pack, self.engine, self.fo, self.fo_sent = pack, engine, fo, fo_sent
        self.dv, self.app, self.requests = dv, app, requests
        self.company: dict[str, str] = {}  # code → cdm_companyid

    async def couple_companies(self) -> None:
        # The F&O emulator seeds the legal entities USMF, DEMF and GBSI (records=0 included).
        assert {e["LegalEntityId"] for e in await self.fo.rows("LegalEntities")} == {"USMF", "DEMF", "GBSI"}
        [run] = await self.engine.sync_full(["companies"])
        assert run.counts.get("inserted") == 3, run.failures
        self.company = {r["cdm_companycode"]: r["cdm_companyid"] for r in await self.dv.rows("cdm_companies")}

    async def account(self, company: str, number: str, name: str = "Contoso") -> dict[str, Any]:
        """An account a person enters in Sales, in a company (bound as the dual-write form does)."""
        response = await self.dv.admin.post("/_admin/tables/accounts", params={"as": self.dv.person}, json={
            "name": name, "accountnumber": number, "_msdyn_company_value": self.company[company],
            "_msdyn_company_value@Microsoft.Dynamics.CRM.lookuplogicalname": "cdm_company"})
        assert response.status_code == 201, response.text
        return response.json()

    async def customer(self, company: str, number: str, name: str = "Contoso") -> str:
        """A customer a person enters in F&O, in a legal entity: its record id as the connector builds it."""
        row = await self.fo.insert("CustomersV3", {"dataAreaId": company.lower(), "CustomerAccount": number,
                                                   "OrganizationName": name, "CustomerGroupId": "10"})
        return row["@key"]

    async def fo_customer(self, record_id: str) -> dict[str, Any] | None:
        return await self.fo.row("CustomersV3", quote(record_id, safe=""))

    def fo_filters_sent(self, entity: str) -> list[str | None]:
        """The `$filter` of every collection read of `entity` the connector sent to F&O (None: unfiltered)."""
        return [r.url.params.get("$filter") for r in self.fo_sent.requests
                if r.method == "GET" and r.url.path in (f"/data/{entity}", f"/data/{entity}/$count")]

    def filters_sent(self, entity: str) -> list[str]:
        return [str(r.url.params.get("$filter")) for r in self.requests
                if r.method == "GET" and f"/{entity}" in r.url.path and "$filter" in r.url.params]


@pytest.fixture
def only() -> list[str] | None:
    return None


@pytest.fixture
async def striped(only: list[str] | None, state: StateStore) -> AsyncIterator[Striped]:
    # A dual-write environment: account numbers are unique per company, not across companies.
    keys = {**_default_keys(), "accounts": [["msdyn_company", "accountnumber"]]}
    app = create_dv(DataverseSettings(records=2, seed=3, webhook_delay_ms=0, alternate_keys=keys))
    fo_app = create_fo(FinanceOperationsSettings(records=0, seed=3, event_delay_ms=0))
    pack = loads_pack(PACK % (f", only: [{', '.join(only)}]" if only else ""), "striped.yaml")
    requests: list[httpx.Request] = []
    fo_sent = Sent()

    async def hook(request: httpx.Request) -> None:
        requests.append(request)

    async with (httpx.AsyncClient(transport=httpx.ASGITransport(app=app), event_hooks={"request": [hook]}) as http,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dv.test") as admin,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=fo_app),
                                  event_hooks={"request": [fo_sent]}) as fo_http,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=fo_app), base_url=FO_URL) as fo_admin):
        crm = make_dv(http, app, retry=RetryExecutor(PATIENT))
        erp = make_fo(fo_http, fo_app, retry=RetryExecutor(PATIENT))
        integration = app.state.emulator.integration.user_id
        fo_integration = fo_app.state.emulator.integration.user_id
        person = next(u for u, actor in app.state.emulator.users().items()
                      if u != integration and actor.name not in ("SYSTEM",))
        engine = SyncEngine(pack, erp=erp, crm=crm, state=state,
                            options=EngineOptions(integration_users={Side.CRM: frozenset({integration}),
                                                                     Side.ERP: frozenset({fo_integration})},
                                                  reservation_wait=5.0))
        world = Striped(pack, engine, System(fo_app, fo_admin, FO_PERSON), fo_sent, System(app, admin, person),
                        app, requests)
        await world.couple_companies()
        yield world
    await app.state.emulator.webhooks.aclose()
    await fo_app.state.emulator.events.aclose()


async def test_natural_key_search_finds_the_account_of_the_same_company(striped: Striped) -> None:
    other = await striped.account("DEMF", "US-001", "Contoso Germany account")
    mine = await striped.account("USMF", "US-001", "Contoso USA account")
    source = await striped.customer("USMF", "US-001", "Contoso USA account")
    result = await striped.engine.sync_record("customers", "to_crm", source, create=True)
    assert result.outcome is Outcome.COUPLED, result.message
    assert result.destination_id == mine["accountid"] != other["accountid"]
    sent = [f for f in striped.filters_sent("accounts") if "accountnumber eq 'US-001'" in f]
    assert sent == [f"_msdyn_company_value eq {striped.company['USMF']} and accountnumber eq 'US-001'"]
    assert len([a for a in await striped.dv.rows("accounts") if a.get("accountnumber") == "US-001"]) == 2


async def test_a_new_customer_is_created_in_its_own_company_and_the_search_for_it_is_per_company(
        striped: Striped) -> None:
    await striped.account("USMF", "US-002")
    source = await striped.customer("GBSI", "US-002", "Contoso UK customer")
    result = await striped.engine.sync_record("customers", "to_crm", source, create=True)
    assert result.outcome is Outcome.INSERTED, result.message
    created = await striped.dv.row("accounts", result.destination_id or "")
    assert created is not None and created["_msdyn_company_value"] == striped.company["GBSI"]


async def test_match_coupling_never_couples_across_companies(striped: Striped) -> None:
    usmf = await striped.account("USMF", "C-100", "USA")
    demf = await striped.account("DEMF", "C-100", "Germany")
    await striped.account("USMF", "C-200", "only in USA")
    for company in ("USMF", "DEMF", "GBSI"):
        await striped.customer(company, "C-100", f"{company} C-100")
    gbsi_200 = await striped.customer("GBSI", "C-200", "UK C-200")
    runs = await striped.engine.sync_full(["customers"], directions=frozenset({Direction.TO_CRM}), create=False)
    assert all(f.outcome is Outcome.IGNORED for f in runs[0].failures), runs[0].failures  # creating is off
    couplings = striped.engine.state.couplings
    usmf_c = await couplings.find_coupling("customers", Side.ERP, "dataAreaId='usmf',CustomerAccount='C-100'")
    demf_c = await couplings.find_coupling("customers", Side.ERP, "dataAreaId='demf',CustomerAccount='C-100'")
    assert usmf_c is not None and usmf_c.crm_id == usmf["accountid"]
    assert demf_c is not None and demf_c.crm_id == demf["accountid"]
    # GBSI has no C-100 or C-200 account in Sales: the USA account of the same number is not its counterpart.
    assert await couplings.find_coupling("customers", Side.ERP, "dataAreaId='gbsi',CustomerAccount='C-100'") is None
    assert await couplings.find_coupling("customers", Side.ERP, gbsi_200) is None
    assert runs[0].counts.get("coupled") == 2


async def test_reconcile_does_not_call_one_number_in_two_companies_a_duplicate(striped: Striped) -> None:
    for company in ("USMF", "DEMF"):
        await striped.account(company, "D-1", f"{company} D-1")
    # A true duplicate within one company (the table's key refused it through the API; data loaded around it).
    row = {"name": "USMF D-1 again", "accountnumber": "D-1", "_msdyn_company_value": striped.company["USMF"],
           "_msdyn_company_value@Microsoft.Dynamics.CRM.lookuplogicalname": "cdm_company"}
    again = striped.app.state.emulator.store.table("accounts").insert(row, Actor("x", "loader"))
    report = await reconcile(striped.engine, "customers")
    duplicates = [d for d in report.drift if d.kind == "duplicate"]
    assert len(duplicates) == 1 and duplicates[0].side is Side.CRM
    usmf_ids = {a["accountid"] for a in await striped.dv.rows("accounts")
                if a.get("accountnumber") == "D-1" and a.get("_msdyn_company_value") == striped.company["USMF"]}
    assert set(duplicates[0].ids) == usmf_ids and again["accountid"] in usmf_ids


@pytest.mark.parametrize("only", [["USMF"]])
async def test_records_of_companies_outside_only_are_ignored_with_the_company_named(striped: Striped) -> None:
    engine = striped.engine
    demf = await striped.account("DEMF", "O-1")
    result = await engine.sync_record("customers", "to_erp", demf["accountid"], create=True)
    assert result.outcome is Outcome.IGNORED
    assert "DEMF" in (result.message or "") and "only: USMF" in (result.message or "")
    # A Sales company no legal entity is coupled to: ignored, named by its code.
    response = await striped.dv.admin.post("/_admin/tables/cdm_companies", params={"as": striped.dv.person},
                                           json={"cdm_companycode": "ZZMF", "cdm_name": "Not in F&O"})
    striped.company["ZZMF"] = response.json()["cdm_companyid"]
    stray = await striped.account("ZZMF", "O-2")
    result = await engine.sync_record("customers", "to_erp", stray["accountid"], create=True)
    assert result.outcome is Outcome.IGNORED and "'ZZMF'" in (result.message or "")
    assert "not coupled" in (result.message or "")
    # An ERP record of another legal entity: ignored too, whoever notifies about it.
    erp = await striped.customer("DEMF", "O-3")
    result = await engine.sync_record("customers", "to_crm", erp, create=True)
    assert result.outcome is Outcome.IGNORED and "DEMF" in (result.message or "")
    # Inside `only`: synced into F&O, in its legal entity.
    usmf = await striped.account("USMF", "O-4", "Contoso USA")
    result = await engine.sync_record("customers", "to_erp", usmf["accountid"], create=True)
    assert result.outcome is Outcome.INSERTED, result.message
    created = await striped.fo_customer(result.destination_id or "")
    assert created is not None and created["dataAreaId"].lower() == "usmf"
    assert not [e async for e in engine.state.errors.list_errors("customers")]  # ignored is not an error
    # The full sync reads only USMF from F&O, and creates nothing (and fails nothing) for other companies'
    # Sales records.
    striped.fo_sent.requests.clear()
    runs = await engine.sync_full(["customers"])
    erp_filters = striped.fo_filters_sent("CustomersV3")
    assert erp_filters and all(f is not None and "dataAreaId eq 'usmf'" in f for f in erp_filters)
    assert all(f.outcome is Outcome.IGNORED for r in runs for f in r.failures), [r.failures for r in runs]
    numbers = {row["CustomerAccount"] for row in await striped.fo.rows("CustomersV3")}
    assert "O-1" not in numbers and "O-2" not in numbers and "O-4" in numbers
    dry = await engine.sync_full(["customers"], dry_run=True, directions=frozenset({Direction.TO_ERP}))
    ignored = {p.source_id: p.message or "" for p in dry[0].listed if p.action == "ignored"}
    assert "DEMF" in ignored[demf["accountid"]] and "'ZZMF'" in ignored[stray["accountid"]]
    assert usmf["accountid"] not in ignored
    # The seeded accounts carry no company at all: ignored as well, saying so.
    assert all("no company" in m for i, m in ignored.items() if i not in (demf["accountid"], stray["accountid"]))
