"""Webhooks registered through the API: a `serviceendpoints` row (contract 8 = Webhook; authtype 4 WebhookKey,
5 HttpHeader, 6 HttpQueryString — the values of the serviceendpoint table's AuthType choice) and
`sdkmessageprocessingsteps` rows bound to it (`eventhandler_serviceendpoint@odata.bind`).

Simplification (documented in emulators/README.md): a step names its message and table directly with
`messagename` (Create / Update / Delete) and `primaryobjecttypecode` (the table's logical name) instead of
lookups to sdkmessage / sdkmessagefilter; images are `sdkmessageprocessingstepimages` rows (imagetype 0 pre,
1 post, 2 both; `attributes` a comma list, empty = all).

Delivery runs as asyncio tasks after `webhook_delay_ms`; Dataverse retries once, only on 502/503/504. Injected
misdelivery (`settings.delivery`, emulators.common.delivery) drops, duplicates or delays each call as a whole."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from emulators.common import tasks
from emulators.common.delivery import DeliveryInjector
from emulators.common.store import Change
from emulators.dataverse.context import MESSAGES, build_context, strip_oversized
from emulators.dataverse.core import Emulator

log = logging.getLogger(__name__)
WEBHOOK_CONTRACT = 8
AUTH_WEBHOOK_KEY, AUTH_HTTP_HEADER, AUTH_QUERY_STRING = 4, 5, 6
_REGISTRATION = {"serviceendpoints", "sdkmessageprocessingsteps", "sdkmessageprocessingstepimages"}
_RETRY_ON = {502, 503, 504}


@dataclass
class Delivery:
    """One webhook call as the emulator made it (for tests and the demo; secrets redacted from `url`)."""

    step_id: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    statuses: list[int | str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return bool(self.statuses) and isinstance(self.statuses[-1], int) and 200 <= self.statuses[-1] < 300


def auth_settings(authvalue: str | None) -> list[tuple[str, str]]:
    """`<settings><setting name="x-api-key" value="…" /></settings>` → [(name, value)]."""
    if not authvalue:
        return []
    try:
        root = ET.fromstring(authvalue)
    except ET.ParseError as exc:
        raise ValueError(f"authvalue is not the <settings><setting name=… value=…/></settings> XML: {exc}") from exc
    return [(s.get("name", ""), s.get("value", "")) for s in root.iter("setting") if s.get("name")]


def prepare_call(endpoint: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(url with any query-string secret, extra headers) for an endpoint's authentication type."""
    url, authtype, value = endpoint.get("url") or "", endpoint.get("authtype"), endpoint.get("authvalue")
    params: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    if authtype == AUTH_WEBHOOK_KEY:
        params = [("code", value or "")]
    elif authtype == AUTH_HTTP_HEADER:
        headers = dict(auth_settings(value))
    elif authtype == AUTH_QUERY_STRING:
        params = auth_settings(value)
    if params:
        parts = urlsplit(url)
        query = "&".join(p for p in (parts.query, urlencode(params)) if p)
        url = urlunsplit(parts._replace(query=query))
    return url, headers


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="<redacted>")) if parts.query else url


class WebhookDispatcher:
    def __init__(self, emu: Emulator, client: httpx.AsyncClient | None = None) -> None:
        self.emu = emu
        self._client = client
        self._owns_client = client is None
        self.tasks: set[asyncio.Task[None]] = set()
        self.deliveries: list[Delivery] = []
        self.delivery = DeliveryInjector(emu.settings.delivery.model_copy())
        emu.store.listeners.append(self.on_change)

    # ----- matching (runs synchronously inside the write, so the context reflects that moment)
    def on_change(self, change: Change) -> None:
        if change.table in _REGISTRATION or change.table not in self.emu.tables:
            return
        calls = self.match(change)
        if not calls:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("webhook for %s %s not sent: no event loop", change.kind, change.table)
            return
        for call in calls:
            # Each call is its own task, so a delayed one is overtaken by later ones (reordering).
            task = loop.create_task(self.delivery.deliver(functools.partial(self._deliver, *call)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def match(self, change: Change) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
        table = self.emu.tables[change.table]
        message = MESSAGES[change.kind]
        changed = {table.attr_name(f) for f in change.changed_fields} - {None}
        store = self.emu.store
        out = []
        for step in list(store.table("sdkmessageprocessingsteps").rows.values()):
            if step.get("statecode", 0) != 0 or (step.get("messagename") or "").lower() != message.lower():
                continue
            if (step.get("primaryobjecttypecode") or "").lower() != table.logical:
                continue
            wanted = {a.strip().lower() for a in (step.get("filteringattributes") or "").split(",") if a.strip()}
            if message == "Update" and wanted and not wanted & changed:
                continue  # an Update step fires only when one of its filtering attributes changed
            endpoint = store.table("serviceendpoints").find(step.get("_eventhandler_value") or "")
            if endpoint is None or endpoint.get("contract") != WEBHOOK_CONTRACT:
                continue
            out.append(self._call(table, change, step, endpoint))
        return out

    def _call(self, table: Any, change: Change, step: dict[str, Any],
              endpoint: dict[str, Any]) -> tuple[str, str, dict[str, str], dict[str, Any]]:
        step_id = step["sdkmessageprocessingstepid"]
        images = [i for i in self.emu.store.table("sdkmessageprocessingstepimages").rows.values()
                  if i.get("_sdkmessageprocessingstepid_value") == step_id]
        user = self.emu.store.table("systemusers").find(change.actor.user_id) or {}
        correlation = str(uuid.uuid4())
        context = build_context(table=table, change=change, step=step, images=images,
                                organization_id=self.emu.settings.organization_id,
                                organization_name=self.emu.settings.organization_name,
                                aad_object_id=user.get("azureactivedirectoryobjectid"), correlation_id=correlation)
        headers = {"Content-Type": "application/json",
                   "x-request-id": str(uuid.uuid4()),
                   "x-ms-dynamics-organization": f"{self.emu.settings.organization_name}.crm.dynamics.com",
                   "x-ms-dynamics-entity-name": table.logical,
                   "x-ms-dynamics-request-name": context["MessageName"],
                   "x-ms-correlation-request-id": correlation}
        if len(json.dumps(context).encode()) > self.emu.settings.webhook_max_bytes:
            context = strip_oversized(context)
            headers["x-ms-dynamics-msg-size-exceeded"] = "true"
        return step_id, str(endpoint.get("serviceendpointid")), headers, context

    # ----- delivery
    async def _deliver(self, step_id: str, endpoint_id: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        await asyncio.sleep(self.emu.settings.webhook_delay_ms / 1000)
        endpoint = self.emu.store.table("serviceendpoints").find(endpoint_id)
        if endpoint is None:
            return
        try:
            url, auth_headers = prepare_call(endpoint)
        except ValueError as exc:
            log.warning("webhook endpoint %s misconfigured: %s", endpoint_id, exc)
            self.deliveries.append(Delivery(step_id, _redact(endpoint.get("url") or ""), headers, body, ["bad-auth"]))
            return
        delivery = Delivery(step_id, _redact(url), headers, body)
        self.deliveries.append(delivery)
        content = json.dumps(body).encode()
        client = self._http()
        for attempt in (1, 2):
            try:
                resp = await client.post(url, content=content, headers={**headers, **auth_headers},
                                         timeout=self.emu.settings.webhook_timeout_s)
                delivery.statuses.append(resp.status_code)
            except httpx.HTTPError as exc:
                delivery.statuses.append(type(exc).__name__)
                log.warning("webhook to %s failed: %s", delivery.url, type(exc).__name__)
                return
            if resp.status_code not in _RETRY_ON or attempt == 2:
                return

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every scheduled delivery has finished (tests, demo)."""
        await tasks.drain(self.tasks, timeout)

    async def aclose(self) -> None:
        await tasks.cancel(self.tasks)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
