"""Fixtures for engine tests: both emulators in-process (httpx.ASGITransport), connectors built on them as in
production, the state store on Azurite, and a `World` that acts as people working in either system (admin
routes, as a named user) and counts the writes our connectors send.

Reusable by later tests (full sync, convergence, the Function App): `world` gives everything."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.data.tables.aio import TableServiceClient
from starlette.applications import Starlette

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from shared.connectors import Connector
from shared.http.retry import RetryExecutor, RetryPolicy
from shared.mapping import Pack, Side, load_pack
from shared.state import Coupling, StateStore, TableNames
from shared.sync import EngineOptions, SyncEngine
from tests.support.connectors import make_bc, make_dv

ROOT = Path(__file__).resolve().parents[2]
BC_URL, DV_URL = "http://bc.test", "http://dv.test"
WRITES = {"POST", "PATCH", "PUT", "DELETE"}
# Short steps (tests stay fast) but a budget that outlasts the fault storms the tests inject.
PATIENT = RetryPolicy(max_attempts=25, max_elapsed=30.0, base_delay=0.01, max_delay=0.15, rate_limit_base=0.05)


@dataclass
class Traffic:
    """Requests our connectors sent (token requests excluded)."""

    requests: list[httpx.Request]
    statuses: list[int] = field(default_factory=list)  # of every answer (retried ones included)

    async def __call__(self, request: httpx.Request) -> None:
        if "/oauth2/" not in request.url.path and "/token" not in request.url.path:
            self.requests.append(request)

    async def answered(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)

    def writes(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method in WRITES]

    def mark(self) -> int:
        return len(self.requests)

    def writes_since(self, mark: int) -> list[httpx.Request]:
        return [r for r in self.requests[mark:] if r.method in WRITES]


class System:
    """One emulator seen from outside: read rows as they are, and edit them as a person would."""

    def __init__(self, app: Starlette, admin: httpx.AsyncClient, person: str,
                 defaults: dict[str, Any] | None = None) -> None:
        self.app, self.admin, self.person = app, admin, person
        self.defaults = defaults or {}  # added to inserted rows (BC: the company a record belongs to)

    async def row(self, table: str, record_id: str) -> dict[str, Any] | None:
        response = await self.admin.get(f"/_admin/tables/{table}/{record_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()

    async def rows(self, table: str) -> list[dict[str, Any]]:
        response = await self.admin.get(f"/_admin/tables/{table}")
        assert response.status_code == 200, response.text
        return response.json()["value"]

    async def edit(self, table: str, record_id: str, changes: dict[str, Any], *, as_: str | None = None) -> dict:
        response = await self.admin.patch(f"/_admin/tables/{table}/{record_id}", params={"as": as_ or self.person},
                                          json=changes)
        assert response.status_code == 200, response.text
        return response.json()

    async def insert(self, table: str, values: dict[str, Any], *, as_: str | None = None) -> dict:
        response = await self.admin.post(f"/_admin/tables/{table}", params={"as": as_ or self.person},
                                         json={**self.defaults, **values})
        assert response.status_code == 201, response.text
        return response.json()

    async def delete(self, table: str, record_id: str) -> None:
        response = await self.admin.delete(f"/_admin/tables/{table}/{record_id}", params={"as": self.person})
        assert response.status_code == 204, response.text

    async def configure(self, **config: Any) -> None:
        response = await self.admin.patch("/_admin/config", json=config)
        assert response.status_code == 200, response.text


@dataclass
class World:
    pack: Pack
    engine: SyncEngine
    state: StateStore
    bc: System
    dv: System
    erp: Connector
    crm: Connector
    traffic: Traffic
    integration_user: str  # the Dataverse systemuserid our writes appear as
    http: dict[Side, httpx.AsyncClient]  # the clients our connectors use (with the traffic hooks)

    def engine_with(self, retry: RetryPolicy, **options: Any) -> SyncEngine:
        """Another engine on the same emulators and state, with connectors using `retry` (e.g. one that gives
        up quickly, to see transient failures) and the given EngineOptions changes."""
        erp = make_bc(self.http[Side.ERP], self.bc.app, retry=RetryExecutor(retry))
        crm = make_dv(self.http[Side.CRM], self.dv.app, retry=RetryExecutor(retry))
        return SyncEngine(self.pack, erp=erp, crm=crm, state=self.state,
                          options=dataclasses.replace(self.engine.options, **options))

    async def couple(self, mapping: str, erp_id: str, crm_id: str) -> Coupling:
        """Couple two existing records by hand (as `dualsync couple` will), without a snapshot."""
        return await self.state.couplings.create_coupling(Coupling(mapping=mapping, erp_id=erp_id, crm_id=crm_id))

    async def couple_salespeople(self) -> dict[str, str]:
        """Couple BC salespeople with CRM users, in order (salespeople flow CRM → BC only, so
        customers' salesperson lookups need these couplings). Returns BC code → CRM systemuserid."""
        people = await self.bc.rows("salespeoplePurchasers")
        users = [u for u in await self.dv.rows("systemusers")
                 if u["systemuserid"] != self.integration_user and not u.get("isdisabled")
                 and u.get("fullname") != "SYSTEM"]
        codes = {}
        for person, user in zip(people, users, strict=False):
            await self.couple("salespeople", person["id"], user["systemuserid"])
            codes[person["code"]] = user["systemuserid"]
        return codes

    async def coupling(self, mapping: str, side: Side, record_id: str) -> Coupling | None:
        return await self.state.couplings.find_coupling(mapping, side, record_id)


@pytest.fixture
def pack() -> Pack:
    return load_pack(ROOT / "templates" / "bc-sales.yaml")


@pytest.fixture
async def bc_app() -> AsyncIterator[Starlette]:
    app = create_bc(BusinessCentralSettings(records=4, seed=7))
    yield app
    await app.state.emulator.webhooks.aclose()


@pytest.fixture
async def dv_app() -> AsyncIterator[Starlette]:
    app = create_dv(DataverseSettings(records=4, seed=7, webhook_delay_ms=0))
    yield app
    await app.state.emulator.webhooks.aclose()


@pytest.fixture
async def state(table_connection_string: str, table_prefix: str) -> AsyncIterator[StateStore]:
    async with TableServiceClient.from_connection_string(table_connection_string) as service:
        store = StateStore(service, TableNames.with_prefix(table_prefix))
        await store.ensure_tables()
        yield store


@pytest.fixture
def engine_options() -> dict[str, Any]:
    """Override in a test module to tune the engine (e.g. `max_dependency_depth`)."""
    return {}


@pytest.fixture
async def world(pack: Pack, bc_app: Starlette, dv_app: Starlette, state: StateStore,
                engine_options: dict[str, Any]) -> AsyncIterator[World]:
    traffic = Traffic([])
    hooks = {"request": [traffic], "response": [traffic.answered]}
    async with (httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app), event_hooks=hooks) as bc_http,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app), event_hooks=hooks) as dv_http,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=bc_app), base_url=BC_URL) as bc_admin,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=dv_app), base_url=DV_URL) as dv_admin):
        erp = make_bc(bc_http, bc_app, retry=RetryExecutor(PATIENT))
        crm = make_dv(dv_http, dv_app, retry=RetryExecutor(PATIENT))
        integration = dv_app.state.emulator.integration.user_id
        person = next(u for u, actor in dv_app.state.emulator.users().items()
                      if u != integration and actor.name not in ("SYSTEM",))
        options = EngineOptions(integration_users={Side.CRM: frozenset({integration})}, reservation_wait=5.0,
                                **engine_options)
        engine = SyncEngine(pack, erp=erp, crm=crm, state=state, options=options)
        bc = System(bc_app, bc_admin, "bc-user-annie", {"_companyId": erp.company_id})
        yield World(pack, engine, state, bc, System(dv_app, dv_admin, person),
                    erp, crm, traffic, integration, {Side.ERP: bc_http, Side.CRM: dv_http})


async def bc_customer(world: World, **values: Any) -> dict[str, Any]:
    """A customer a person enters in BC, with a salesperson whose CRM user is coupled and an existing currency."""
    people = await world.bc.rows("salespeoplePurchasers")
    coupled = [p for p in people if await world.coupling("salespeople", Side.ERP, p["id"])]
    currency = next(c for c in await world.bc.rows("currencies") if c["code"] == "EUR")
    fields = {"number": f"C9{len(await world.bc.rows('customers')):04d}", "displayName": "Fabrikam Nord AB",
              "type": "Company", "city": "Malmö", "phoneNumber": "+46 40 123", "email": "info@fabrikam.example.com",
              "blocked": " ", "creditLimit": 1000.0, "currencyId": currency["id"],
              "salespersonCode": coupled[0]["code"] if coupled else ""}
    return await world.bc.insert("customers", {**fields, **values})


async def crm_account(world: World, **values: Any) -> dict[str, Any]:
    """An account a person enters in Sales: relationship type Customer, active."""
    fields = {"name": "Contoso Süd GmbH", "accountnumber": f"A{len(await world.dv.rows('accounts')):05d}",
              "customertypecode": 3, "statecode": 0, "address1_city": "München", "telephone1": "+49 89 1"}
    return await world.dv.insert("accounts", {**fields, **values})


async def coupled_customer(world: World) -> tuple[dict[str, Any], str]:
    """A BC customer synced to a new account: (the customer row, the account id)."""
    await world.couple_salespeople()
    customer = await bc_customer(world)
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
    assert result.destination_id is not None, result.message
    return customer, result.destination_id
