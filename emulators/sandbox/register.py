"""Webhook registration as an operator does it against a tenant, over the services' own APIs:

- Dataverse: one service endpoint (contract 8 = Webhook, auth type 5 = HttpHeader carrying the shared key)
  per CRM entity set the pack syncs from, pointing at `<functions>/api/webhooks/dataverse/<entity set>`,
  and asynchronous post-operation steps (stage 40, mode 1) for Create, Update and Delete of its table.
- Business Central: the Function App's own subscription timer creates the subscriptions (with the
  validation handshake answered by the running webhook functions); `bc_subscriptions` lists what BC holds.
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
