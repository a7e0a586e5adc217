"""`Sandbox`: start the whole local stack, register the webhooks, act as people, drive the admin API, and stop
everything it started (also when the body raises or is interrupted).

Started, in order: Azurite (Table storage, a child process), the ERP emulator the pack was written for
(Business Central, or Finance and Operations), the Dataverse emulator and the local Functions host (each a
uvicorn server on 127.0.0.1 in a thread of its own). The host serves the Function App built from the pack
(`function_app.build_app`), with settings pointing at the emulators and webhook secrets generated for this
run. Then the webhooks are registered: Dataverse service endpoints and steps through the Web API; BC
subscriptions by firing the app's own subscription timer (BC runs the validation handshake against the
running webhook function), or F&O data events activated for each entity, sent to its webhook function.

The serving loop of the host is not the caller's: `fire` and `settle` hop onto it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Coroutine
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from emulators.business_central import BusinessCentralSettings
from emulators.business_central import create_app as create_bc
from emulators.common.server import BackgroundServer, free_port
from emulators.common.tls import trust_local_ca
from emulators.dataverse import DataverseSettings
from emulators.dataverse import create_app as create_dv
from emulators.finance_operations import FinanceOperationsSettings
from emulators.finance_operations import create_app as create_fo
from emulators.functions_host import InProcessQueue, LocalHost
from emulators.sandbox.azurite import Azurite
from emulators.sandbox.register import (
    DataEventHook,
    DataverseHook,
    bc_subscriptions,
    register_dataverse,
    register_fo_events,
)
from emulators.sandbox.settings import INTEGRATION_CLIENT, INTEGRATION_SECRET, stack_settings
from function_app import ROOT, build_app
from shared.app_runtime import AppRuntime
from shared.http.auth import BearerAuth, make_credential
from shared.mapping import Pack, System, load_pack
from shared.settings import Settings

T = TypeVar("T")
BC_PERSON = "bc-user-annie"    # a Business Central user (not the integration user)
DV_PERSON = "dv-sales-anna"    # a Dataverse salesperson
FO_PERSON = "fo-user-ava"      # a Finance and Operations user
SUBSCRIPTION_TIMER = "timer_bc_subscriptions"
LOGGERS = ("shared", "functions", "dualsync")  # where the app's processor, intake and engine log


class SandboxError(RuntimeError):
    """The stack did not come up as asked (the message says which part and why)."""


@dataclass(frozen=True)
class Event:
    """One log record of the app (processor outcomes, dropped echoes, settled conflicts), for evidence."""

    at: float  # time.monotonic()
    logger: str
    level: str
    message: str


class _Recorder(logging.Handler):
    def __init__(self, events: list[Event]) -> None:
        super().__init__(logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(Event(time.monotonic(), record.name, record.levelname, record.getMessage()))


class Sandbox:
    """`async with Sandbox(...) as sb:` — the stack, running and wired; see the module docstring.

    `notification_delay_ms`: how long BC batches changes before notifying (a tenant waits 30 s);
    `dataverse_delay_ms`: how long Dataverse's asynchronous service waits before calling a webhook;
    `latency_ms`: added by both emulators to every API request; `register_webhooks=False`: start without
    webhooks (call `register_webhooks()` later, e.g. after setting up records nobody should be notified of)."""

    def __init__(self, *, records: int = 10, seed: int = 1, notification_delay_ms: float = 1000.0,
                 dataverse_delay_ms: float = 200.0, latency_ms: float = 0.0,
                 pack: str | Path = "templates/bc-sales.yaml", run_timers: bool = False,
                 register_webhooks: bool = True, event_delay_ms: float = 100.0) -> None:
        self.pack_path = Path(pack) if Path(pack).is_absolute() else ROOT / pack
        self.pack = load_pack(self.pack_path)
        faults = {"latency_ms": latency_ms}
        # Everything serves HTTPS with the local CA, trusted before any client (the emulators' own webhook
        # clients among them) is made.
        self.tls = trust_local_ca()
        # The ERP the pack was written for: Business Central, or Finance and Operations (data events).
        self.bc_app: Any = None
        self.fo_app: Any = None
        if self.pack.systems.erp is System.FINANCE_OPERATIONS:
            self.fo_app = create_fo(FinanceOperationsSettings(records=records, seed=seed, faults=faults,
                                                              event_delay_ms=event_delay_ms))
        else:
            self.bc_app = create_bc(BusinessCentralSettings(records=records, seed=seed, faults=faults,
                                                            notification_delay_ms=notification_delay_ms))
        self.dv_app = create_dv(DataverseSettings(records=records, seed=seed, faults=faults,
                                                  webhook_delay_ms=dataverse_delay_ms,
                                                  alternate_keys=dataverse_keys(self.pack)))
        self.run_timers = run_timers
        self._register_at_start = register_webhooks
        # Per-run secrets: nothing fixed to leak, and two sandboxes never accept each other's webhooks.
        self.bc_client_state = secrets.token_urlsafe(24)
        self.dataverse_key = secrets.token_urlsafe(24)
        self.fo_key = secrets.token_urlsafe(24)
        self.fo_hooks: list[DataEventHook] = []
        self.function_key = secrets.token_urlsafe(24)
        self.table_prefix = "sb" + uuid.uuid4().hex[:10]
        self.events: list[Event] = []
        self.dataverse_hooks: list[DataverseHook] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.unsubscribed: set[str] = set()  # BC's refusals, as the subscription timer logged them
        self._stack = ExitStack()
        self._host_loop: asyncio.AbstractEventLoop | None = None
        self._levels: dict[str, int] = {}
        self._recorder = _Recorder(self.events)

    # ----- lifecycle
    async def __aenter__(self) -> Sandbox:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stop()

    async def _start(self) -> None:
        self._capture_logs()
        azurite = self._stack.enter_context(Azurite())
        erp_app = self.fo_app if self.fo_app is not None else self.bc_app
        erp = self._stack.enter_context(BackgroundServer(erp_app, tls=self.tls))
        dv = self._stack.enter_context(BackgroundServer(self.dv_app, tls=self.tls))
        self.erp_url, self.dv_url = erp.url, dv.url
        self.bc_url = erp.url if self.bc_app is not None else None
        self.fo_url = erp.url if self.fo_app is not None else None
        port = free_port()
        self.functions_url = f"https://127.0.0.1:{port}"
        self.settings: Settings = stack_settings(
            erp.url, dv.url, erp_app, self.dv_app, azurite.connection_string, self.table_prefix,
            bc_client_state=self.bc_client_state, dataverse_key=self.dataverse_key, fo_key=self.fo_key,
            public_url=self.functions_url, pack_path=self.pack_path)
        self.host = LocalHost(build_app(self.pack), runtime=self._runtime, run_timers=self.run_timers,
                              function_key=self.function_key)
        self._stack.enter_context(BackgroundServer(self.host.asgi(), port=port, tls=self.tls))
        self.http = httpx.AsyncClient(timeout=60)
        self.erp_api, self.dv_api = self._api_clients()
        if self._register_at_start:
            await self.register_webhooks()

    async def register_webhooks(self) -> None:
        """Dataverse endpoints + steps, then BC subscriptions through the app's timer (real handshake), or F&O's
        data events activated for every entity the pack syncs from."""
        self.dataverse_hooks = await register_dataverse(self.dv_api, self.pack, self.functions_url,
                                                        self.dataverse_key)
        if self.fo_url is not None:
            self.fo_hooks = await register_fo_events(self.http, self.fo_url, self.pack, self.functions_url,
                                                     self.fo_key)
            return
        await self.fire(SUBSCRIPTION_TIMER)
        self.subscriptions = await bc_subscriptions(self.erp_api)
        wanted = {s.entity for s in _bc_sources(self)}
        held = {s["resource"].rsplit("/", 1)[-1] for s in self.subscriptions}
        # BC refuses some entity sets (document lines, for one); the app's timer logs those and carries on,
        # and the modified-records timer covers them. Only no subscription at all means the stack is broken.
        self.unsubscribed = {e.message for e in self.events
                             if e.logger.endswith("schedules") and e.level == "ERROR"} if wanted - held else set()
        if wanted and not wanted & held:
            raise SandboxError(f"no BC subscription was created: {'; '.join(sorted(self.unsubscribed)) or 'see log'}")

    def _runtime(self, host: LocalHost) -> AppRuntime:
        # Called by the host on its serving loop at start-up: remember that loop for `fire` and `settle`.
        self._host_loop = asyncio.get_running_loop()
        return AppRuntime(settings=self.settings, pack=self.pack, sender=host.sender())

    def _api_clients(self) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        """Clients of both APIs as the integration client (the operator registering webhooks uses it too): the
        ERP's API root (BC API v2.0, or F&O's `/data/`) and Dataverse's Web API root."""
        erp, crm = self.settings.erp, self.settings.crm
        secret = SecretStr(INTEGRATION_SECRET)
        erp_cred = make_credential(tenant_id=erp.tenant_id, client_id=INTEGRATION_CLIENT, client_secret=secret,
                                   authority=self.erp_url)
        dv_cred = make_credential(tenant_id=crm.tenant_id, client_id=INTEGRATION_CLIENT, client_secret=secret,
                                  authority=self.dv_url)
        self._credentials = [erp_cred, dv_cred]
        root = (f"{self.fo_url}/data/" if self.fo_url is not None
                else f"{self.bc_url}/v2.0/{erp.tenant_id}/{erp.environment}/api/v2.0/")
        erp_api = httpx.AsyncClient(base_url=root, timeout=60, auth=BearerAuth(erp_cred, erp.effective_scope))
        dv = httpx.AsyncClient(base_url=f"{self.dv_url}/api/data/v9.2/", timeout=60,
                               headers={"OData-MaxVersion": "4.0", "OData-Version": "4.0"},
                               auth=BearerAuth(dv_cred, f"{self.dv_url}/.default"))
        return erp_api, dv

    async def _stop(self) -> None:
        for client in ("erp_api", "dv_api", "http"):
            if (c := getattr(self, client, None)) is not None:
                await c.aclose()
        for credential in getattr(self, "_credentials", []):
            await credential.close()
        # Off the loop: stopping a server joins its thread, which must not block the caller's loop forever.
        await asyncio.to_thread(self._stack.close)
        self._release_logs()

    def _capture_logs(self) -> None:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.INFO)
            logger.addHandler(self._recorder)

    def _release_logs(self) -> None:
        for name, level in self._levels.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self._recorder)
            logger.setLevel(level)
        self._levels.clear()

    # ----- the host's loop
    async def _on_host(self, work: Coroutine[Any, Any, T]) -> T:
        if self._host_loop is None:
            work.close()
            raise SandboxError("the local Functions host is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._host_loop))

    async def fire(self, timer: str) -> None:
        """Run one of the app's timer functions now, on the host (e.g. `timer_modified_sync`)."""
        await self._on_host(self.host.fire(timer))

    @property
    def queue(self) -> InProcessQueue:
        return self.host.queue()

    async def settle(self, timeout: float = 20.0) -> None:
        """Wait until the queue has nothing queued, in flight or scheduled."""
        await self._on_host(self.queue.wait_idle(timeout, scheduled=True))

    def events_since(self, at: float, contains: str = "") -> list[Event]:
        return [e for e in list(self.events) if e.at >= at and contains in e.message]

    # ----- the admin API (function key in the header, as an operator's client sends it)
    async def manage(self, method: str, route: str, *, params: dict[str, Any] | None = None,
                     json: Any = None) -> Any:
        """Call `/api/manage/<route>`; a non-2xx answer raises `SandboxError` with the API's error document."""
        r = await self.http.request(method, f"{self.functions_url}/api/manage/{route}", params=params, json=json,
                                    headers={"x-functions-key": self.function_key})
        if r.status_code >= 300:
            raise SandboxError(f"admin API {method} manage/{route} answered {r.status_code}: {r.text[:500]}")
        return r.json()

    # ----- the emulators' admin routes: read rows, write as a person (webhooks fire as for their edit)
    async def _admin(self, method: str, url: str, who: str | None = None, body: Any = None) -> Any:
        r = await self.http.request(method, url, params={"as": who} if who else None, json=body)
        if r.status_code >= 300:
            raise SandboxError(f"{method} {url} answered {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    async def bc_rows(self, table: str) -> list[dict[str, Any]]:
        return (await self._admin("GET", f"{self.bc_url}/_admin/tables/{table}"))["value"]

    async def dv_rows(self, table: str) -> list[dict[str, Any]]:
        return (await self._admin("GET", f"{self.dv_url}/_admin/tables/{table}"))["value"]

    async def bc_row(self, table: str, row_id: str) -> dict[str, Any]:
        return await self._admin("GET", f"{self.bc_url}/_admin/tables/{table}/{row_id}")

    async def dv_row(self, table: str, row_id: str) -> dict[str, Any]:
        return await self._admin("GET", f"{self.dv_url}/_admin/tables/{table}/{row_id}")

    async def bc_edit(self, table: str, row_id: str, values: dict[str, Any], *, who: str = BC_PERSON) -> dict[str, Any]:
        return await self._admin("PATCH", f"{self.bc_url}/_admin/tables/{table}/{row_id}", who, values)

    async def dv_edit(self, table: str, row_id: str, values: dict[str, Any], *, who: str = DV_PERSON) -> dict[str, Any]:
        return await self._admin("PATCH", f"{self.dv_url}/_admin/tables/{table}/{row_id}", who, values)

    async def bc_create(self, table: str, values: dict[str, Any], *, who: str = BC_PERSON) -> dict[str, Any]:
        if "_companyId" not in values:
            values = {"_companyId": self.settings.erp.company_id, **values}
        return await self._admin("POST", f"{self.bc_url}/_admin/tables/{table}", who, values)

    async def dv_create(self, table: str, values: dict[str, Any], *, who: str = DV_PERSON) -> dict[str, Any]:
        return await self._admin("POST", f"{self.dv_url}/_admin/tables/{table}", who, values)

    # F&O rows are addressed by their key predicate, e.g. `dataAreaId='usmf',CustomerAccount='US-001'`.
    async def fo_rows(self, table: str) -> list[dict[str, Any]]:
        return (await self._admin("GET", f"{self.fo_url}/_admin/tables/{table}"))["value"]

    async def fo_row(self, table: str, key: str) -> dict[str, Any]:
        return await self._admin("GET", f"{self.fo_url}/_admin/tables/{table}/{quote(key, safe='')}")

    async def fo_edit(self, table: str, key: str, values: dict[str, Any], *, who: str = FO_PERSON) -> dict[str, Any]:
        return await self._admin("PATCH", f"{self.fo_url}/_admin/tables/{table}/{quote(key, safe='')}", who, values)

    async def fo_create(self, table: str, values: dict[str, Any], *, who: str = FO_PERSON) -> dict[str, Any]:
        return await self._admin("POST", f"{self.fo_url}/_admin/tables/{table}", who, values)

    async def fo_delete(self, table: str, key: str, *, who: str = FO_PERSON) -> None:
        await self._admin("DELETE", f"{self.fo_url}/_admin/tables/{table}/{quote(key, safe='')}", who)


def dataverse_keys(pack: Pack) -> dict[str, list[list[str]]]:
    """Dataverse's alternate keys as an operator sets the environment up for `pack`: every CRM natural key of
    the pack is defined (dual-write's "integration keys"; upserts need them), and a company-specific table
    keeps only the keys that start with the company, so one customer number may exist in two legal entities.
    Other tables keep the emulator's defaults."""
    keys = DataverseSettings().alternate_keys
    striped = pack.companies.crm_field if pack.companies is not None else None
    for m in pack.mappings:
        entity, natural = m.crm.entity, list(m.crm.natural_key)
        if not natural:
            continue
        defined = keys.setdefault(entity, [])
        if striped and m.company is not None:
            defined[:] = [k for k in defined if striped in k]
        if natural not in defined:
            defined.append(natural)
    return keys


def _bc_sources(sb: Sandbox) -> list[Any]:
    from shared.subscriptions import wanted_subscriptions  # the same rule the timer applies
    return wanted_subscriptions(sb.pack, company_id=sb.settings.erp.company_id or "", public_base_url=sb.functions_url)
