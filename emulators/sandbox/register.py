"""Webhook registration as an operator does it against a tenant, over the services' own APIs:

- Dataverse: one service endpoint (contract 8 = Webhook, auth type 5 = HttpHeader carrying the shared key)
  per CRM entity set the pack syncs from, pointing at `<functions>/api/webhooks/dataverse/<entity set>`,
  and asynchronous post-operation steps (stage 40, mode 1) for Create, Update and Delete of its table.
- Business Central: the Function App's own subscription timer creates the subscriptions (with the
  validation handshake answered by the running webhook functions); `bc_subscriptions` lists what BC holds.
- Finance and Operations: an endpoint per data entity the pack syncs from, with its Create / Update / Delete
  data events activated in every legal entity (`register_fo_events`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx

from shared.mapping import Pack, System
from shared.notices.routing import logical_name, webhook_sources

MESSAGES = ("Create", "Update", "Delete")
DATAVERSE_KEY_HEADER = "x-api-key"


@dataclass(frozen=True)
class DataverseHook:
    entity: str           # entity set, e.g. accounts
    logical_name: str     # table, e.g. account
    url: str
    endpoint_id: str
    step_ids: tuple[str, ...]


def dataverse_entities(pack: Pack) -> list[tuple[str, str]]:
    """(entity set, logical name) of every Dataverse table the pack syncs from."""
    found = []
    for source in webhook_sources(pack):
        if source.system is System.DATAVERSE:
            name = logical_name(pack, source.entity)
            if name is None:
                raise ValueError(f"the pack does not name the logical name of Dataverse entity set {source.entity!r}"
                                 " (crm.logical_name): a webhook step needs it")
            found.append((source.entity, name))
    return found


async def register_dataverse(dv: httpx.AsyncClient, pack: Pack, functions_url: str, key: str) -> list[DataverseHook]:
    """Register endpoints and steps with `dv` (an authenticated client whose base URL is the Web API root)."""
    hooks = []
    auth = f"<settings><setting name={quoteattr(DATAVERSE_KEY_HEADER)} value={quoteattr(key)} /></settings>"
    for entity, table in dataverse_entities(pack):
        url = f"{functions_url}/api/webhooks/dataverse/{entity}"
        endpoint = await _created(dv, "serviceendpoints", {
            "name": f"dualsync {entity}", "url": url, "contract": 8, "authtype": 5, "authvalue": auth})
        steps = []
        for message in MESSAGES:
            step = await _created(dv, "sdkmessageprocessingsteps", {
                "name": f"dualsync: {message} of {table}", "messagename": message, "primaryobjecttypecode": table,
                "stage": 40, "mode": 1, "rank": 1,
                "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint['serviceendpointid']})"})
            steps.append(str(step["sdkmessageprocessingstepid"]))
        hooks.append(DataverseHook(entity, table, url, str(endpoint["serviceendpointid"]), tuple(steps)))
    return hooks


async def _created(dv: httpx.AsyncClient, entity_set: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await dv.post(entity_set, json=body, headers={"Prefer": "return=representation"})
    if r.status_code != 201:
        raise RuntimeError(f"Dataverse refused to create a {entity_set} row: {r.status_code} {r.text[:300]}")
    return r.json()


async def bc_subscriptions(bc: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The subscriptions BC holds (`bc`: an authenticated client whose base URL is the API v2.0 root)."""
    r = await bc.get("subscriptions")
    r.raise_for_status()
    return list(r.json().get("value") or [])


@dataclass(frozen=True)
class DataEventHook:
    """One F&O endpoint (the URL carries the key as `?code=`, as F&O keeps it in Key Vault) and its activation."""

    entity: str
    url: str
    endpoint_id: str
    activation_id: str


async def register_fo_events(http: httpx.AsyncClient, fo_url: str, pack: Pack, functions_url: str,
                             key: str) -> list[DataEventHook]:
    """Activate Create/Update/Delete data events for every F&O entity the pack syncs from, each sent to its own
    endpoint `<functions>/api/webhooks/finance_operations/<entity set>?code=<key>`. The data event catalog is
    configured in F&O's UI (System administration > Business events); the emulator offers it under `/_admin`."""
    hooks = []
    for source in webhook_sources(pack):
        if source.system is not System.FINANCE_OPERATIONS:
            continue
        url = f"{functions_url}/api/webhooks/finance_operations/{source.entity}"
        r = await http.post(f"{fo_url}/_admin/dataevents/endpoints",
                            json={"name": f"dualsync {source.entity}", "url": f"{url}?code={key}"})
        r.raise_for_status()
        endpoint = r.json()["id"]
        r = await http.post(f"{fo_url}/_admin/dataevents/activations",
                            json={"entity": source.entity, "events": list(MESSAGES), "legal_entity": None,
                                  "endpoint": endpoint})
        if r.status_code != 201:
            raise RuntimeError(f"F&O refused to activate data events of {source.entity}: {r.status_code} {r.text}")
        hooks.append(DataEventHook(source.entity, url, endpoint, r.json()["id"]))
    return hooks
