"""`make demo`: the local sandbox end to end.

Starts the Business Central and Dataverse emulators with seeded data on real ports, reads records from
each through their APIs (with OAuth2 client-credential tokens, as against a tenant), registers webhooks
the way an operator would (a BC subscription with the validation handshake; a Dataverse service endpoint
and step), makes a change on each side as a person would, and shows each change arriving at a local
receiver with the measured delay. Stops everything it started.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from emulators.business_central.app import create_app as create_bc
from emulators.business_central.settings import BusinessCentralSettings
from emulators.common.server import BackgroundServer
from emulators.dataverse.app import create_app as create_dv
from emulators.dataverse.settings import DataverseSettings
from shared.http.auth import BearerAuth, ClientSecretCredential

console = Console()
# Demo-only secrets: they guard a receiver on 127.0.0.1 for the few seconds the demo runs.
BC_CLIENT_STATE = "demo-client-state"
DV_WEBHOOK_KEY = "demo-webhook-key"


@dataclass
class Receiver:
    """What our webhook functions will do, in miniature: answer BC's handshake, check the shared secret."""

    arrivals: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    event: asyncio.Event | None = None

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bc", self._bc, methods=["POST"]),
                                 Route("/dataverse", self._dv, methods=["POST"])])

    async def _bc(self, request: Request) -> Response:
        if (token := request.query_params.get("validationToken")) is not None:
            return PlainTextResponse(token)  # the subscription handshake
        body = await request.json()
        for notice in body.get("value", []):
            if not hmac.compare_digest(str(notice.get("clientState", "")), BC_CLIENT_STATE):
                return Response(status_code=401)
            self.arrivals.append((time.monotonic(), "Business Central", notice))
        return Response(status_code=202)

    async def _dv(self, request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get("x-api-key", ""), DV_WEBHOOK_KEY):
            return Response(status_code=401)
        self.arrivals.append((time.monotonic(), "Dataverse", await request.json()))
        return Response(status_code=202)


def _table(title: str, columns: list[str], rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(str(r.get(c, "")) for c in columns))
    return table


async def _wait_for(receiver: Receiver, system: str, after: float, timeout: float = 30.0) -> tuple[float, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for at, who, body in receiver.arrivals:
            if who == system and at >= after:
                return at, body
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no webhook from {system} within {timeout:.0f} s")


async def run() -> None:
    bc_settings = BusinessCentralSettings(records=25, notification_delay_ms=1000)  # BC waits 30 s; 1 s here
    dv_settings = DataverseSettings(records=25, webhook_delay_ms=200)
    receiver = Receiver()
    console.rule("[bold]dualsync sandbox")
    with BackgroundServer(create_bc(bc_settings)) as bc, BackgroundServer(create_dv(dv_settings)) as dv, \
            BackgroundServer(receiver.app()) as rx:
        console.print(f"emulators up: Business Central {bc.url}, Dataverse {dv.url}; webhook receiver {rx.url}")
        await story(bc.url, dv.url, rx.url, bc_settings, dv_settings, receiver)
    console.rule("[bold green]done: every process the demo started has stopped")


async def story(bc_url: str, dv_url: str, rx_url: str, bc_settings: BusinessCentralSettings,
                dv_settings: DataverseSettings, receiver: Receiver) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        bc_cred = ClientSecretCredential(bc_settings.tenant_id, "dualsync-integration", "dualsync-integration-secret",
                                         http=http, authority=bc_url)
        dv_cred = ClientSecretCredential(dv_settings.tenant_id, "dualsync-integration", "dualsync-integration-secret",
                                         http=http, authority=dv_url)
        api = f"{bc_url}/v2.0/{bc_settings.tenant_id}/{bc_settings.environment}/api/v2.0/"
        bc = httpx.AsyncClient(base_url=api, timeout=30, headers={"Accept": "application/json"},
                               auth=BearerAuth(bc_cred, "https://api.businesscentral.dynamics.com/.default"))
        odata = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
        dv = httpx.AsyncClient(base_url=f"{dv_url}/api/data/v9.2/", timeout=30, headers=odata,
                               auth=BearerAuth(dv_cred, f"{dv_url}/.default"))
        async with bc, dv:
            company = (await bc.get("companies")).raise_for_status().json()["value"][0]
            customers = (await bc.get(f"companies({company['id']})/customers", params={
                "$top": "5", "$select": "number,displayName,city,phoneNumber,lastModifiedDateTime"})).raise_for_status()
            console.print(_table(f"Business Central · {company['name']} · customers (first 5)",
                                 ["number", "displayName", "city", "phoneNumber", "lastModifiedDateTime"],
                                 customers.json()["value"]))
            accounts = (await dv.get("accounts", params={
                "$top": "5", "$select": "accountnumber,name,address1_city,telephone1,modifiedon"})).raise_for_status()
            console.print(_table("Dataverse · accounts (first 5)",
                                 ["accountnumber", "name", "address1_city", "telephone1", "modifiedon"],
                                 accounts.json()["value"]))

            # Register the webhooks, as an operator (or dualsync's timer) does.
            sub = (await bc.post("subscriptions", json={
                "notificationUrl": f"{rx_url}/bc", "clientState": BC_CLIENT_STATE,
                "resource": f"/api/v2.0/companies({company['id']})/customers"})).raise_for_status().json()
            console.print(f"BC subscription [bold]{sub['subscriptionId']}[/] created after the validationToken "
                          f"handshake; expires {sub['expirationDateTime']}")
            endpoint = (await dv.post("serviceendpoints", headers={"Prefer": "return=representation"}, json={
                "name": "dualsync demo", "url": f"{rx_url}/dataverse", "contract": 8, "authtype": 5,
                "authvalue": f'<settings><setting name="x-api-key" value="{DV_WEBHOOK_KEY}" /></settings>',
            })).raise_for_status().json()
            (await dv.post("sdkmessageprocessingsteps", json={
                "name": "dualsync: Update of account", "messagename": "Update", "primaryobjecttypecode": "account",
                "stage": 40, "mode": 1, "filteringattributes": "name,telephone1",
                "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint['serviceendpointid']})",
            })).raise_for_status()
            console.print("Dataverse service endpoint (HttpHeader auth) and an Update step on account registered")

            # A person edits a customer in BC and an account in Sales.
            first = customers.json()["value"][0]
            cust_id = (await bc.get(f"companies({company['id']})/customers", params={
                "$filter": f"number eq '{first['number']}'", "$select": "id"})).json()["value"][0]["id"]
            started = time.monotonic()
            await http.patch(f"{bc_url}/_admin/tables/customers/{cust_id}", params={"as": "bc-user-annie"},
                             json={"phoneNumber": "+1 425 555 0100"})
            at, notice = await _wait_for(receiver, "Business Central", started)
            console.print(f"[green]⇐ Business Central[/] {notice['changeType']} {notice['resource']} "
                          f"after [bold]{(at - started) * 1000:.0f} ms[/] (BC batches changes for "
                          f"{bc_settings.notification_delay_ms / 1000:.0f} s here, 30 s in a tenant)")

            account_id = accounts.json()["value"][0]["accountid"]
            started = time.monotonic()
            await http.patch(f"{dv_url}/_admin/tables/accounts/{account_id}", params={"as": "dv-sales-anna"},
                             json={"telephone1": "+47 22 00 00 00"})
            at, context = await _wait_for(receiver, "Dataverse", started)
            changed = [a["key"] for a in context["InputParameters"][0]["value"]["Attributes"]]
            console.print(f"[green]⇐ Dataverse[/] {context['MessageName']} of {context['PrimaryEntityName']} "
                          f"{context['PrimaryEntityId']} by user {context['UserId']} after "
                          f"[bold]{(at - started) * 1000:.0f} ms[/]; attributes: {', '.join(changed)}")
            console.print_json(json.dumps({k: context[k] for k in ("MessageName", "PrimaryEntityName",
                                                                   "InitiatingUserId", "Depth", "Stage", "Mode")}))


def main() -> int:
    try:
        asyncio.run(run())
    except Exception as exc:  # the demo is a script: say what failed, exit non-zero
        console.print(f"[bold red]demo failed:[/] {exc!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
