"""Process-wide pieces the Function App's triggers use, built lazily on first use and shared by every
invocation: settings, the mapping pack, the `SyncEngine` (HTTP client, connectors, state), the queue sender,
the webhook `Intake` and the processor's retry schedule.

Triggers ask `current()`:

    runtime = current()
    engine = await runtime.engine()

The local host and tests install their own (dependency injection, not monkeypatching):

    previous = install(AppRuntime(pack=pack, engine=engine, sender=queue_sender, webhooks=secrets))
    ...
    install(previous)

Async pieces bind to the event loop they are first used on (the Functions worker runs every async invocation
on one loop), so build a runtime on the loop that will use it, and `await runtime.aclose()` on that loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from contextlib import AsyncExitStack

from shared.connectors import Connector
from shared.connectors.finance_operations import pack_keys, synced_companies
from shared.mapping import Pack, Side, load_pack
from shared.notices import Intake
from shared.queue import QueueSender, RetrySchedule, open_sender
from shared.runtime import build_engine
from shared.settings import Settings, WebhookSettings, load_settings
from shared.sync import SyncEngine
from shared.telemetry.activity import ActivityRecorder
from shared.telemetry.setup import activity_flush_seconds
from shared.telemetry.tracing import instrument_engine


class AppRuntime:
    """Lazily built singletons; any piece passed in is used as is (and not closed by `aclose`)."""

    def __init__(self, *, settings: Settings | None = None, pack: Pack | None = None,
                 engine: SyncEngine | None = None, sender: QueueSender | None = None,
                 retry: RetrySchedule | None = None, webhooks: WebhookSettings | None = None) -> None:
        self._settings, self._pack, self._engine, self._sender = settings, pack, engine, sender
        self._retry, self._webhooks = retry, webhooks
        self._intake: Intake | None = None
        self._activity: ActivityRecorder | None = None
        self._stack = AsyncExitStack()
        self._lock: asyncio.Lock | None = None

    def settings(self) -> Settings:
        """The validated settings (`SettingsError` names every missing or invalid variable)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def pack(self) -> Pack:
        if self._pack is None:
            self._pack = self._engine.pack if self._engine is not None else load_pack(self.settings().pack_path)
        return self._pack

    def retry_schedule(self) -> RetrySchedule:
        if self._retry is None:
            self._retry = RetrySchedule.from_settings(self.settings().queue)
        return self._retry

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def engine(self) -> SyncEngine:
        """The engine, wired from the settings on first use (its clients live until `aclose`)."""
        if self._engine is None:
            async with self._guard():
                if self._engine is None:
                    # Its connectors' reads and writes become spans of the change being processed.
                    self._engine = instrument_engine(await self._stack.enter_async_context(
                        build_engine(self.settings(), pack=self.pack())))
        return self._engine

    async def activity(self) -> ActivityRecorder:
        """The per-minute activity the processor records for the console (written in the background to the
        engine's state store, flushed by `aclose`)."""
        if self._activity is None:
            state = (await self.engine()).state
            if self._activity is None:
                self._activity = ActivityRecorder(state, flush_s=activity_flush_seconds())
        return self._activity

    async def sender(self) -> QueueSender:
        """The queue sender: Azure Service Bus from `DUALSYNC_QUEUE__*` unless one was installed."""
        if self._sender is None:
            async with self._guard():
                if self._sender is None:
                    self._sender = await self._stack.enter_async_context(open_sender(self.settings().queue))
        return self._sender

    async def connector(self, side: Side) -> Connector:
        return (await self.engine()).connector(side)

    async def intake(self) -> Intake:
        """What the webhooks need. Builds no engine: a connector is fetched only to page a BC collection."""
        if self._intake is None:
            webhooks = self._webhooks or self.settings().webhooks
            pack = self.pack()
            self._intake = Intake(pack, webhooks, await self.sender(), self._integration_users(),
                                  self._company_id(), company_ids=tuple(self.settings().erp.company_ids),
                                  connector=self.connector, erp_keys=pack_keys(pack),
                                  companies=synced_companies(pack))
        return self._intake

    def _integration_users(self) -> Mapping[Side, frozenset[str]]:
        if self._engine is not None:
            return self._engine.options.integration_users
        settings = self.settings()
        return {Side.ERP: frozenset(settings.erp.integration_user_ids),
                Side.CRM: frozenset(settings.crm.integration_user_ids)}

    def _company_id(self) -> str | None:
        if self._engine is not None:
            return getattr(self._engine.connector(Side.ERP), "company_id", None)
        return self.settings().erp.company_id

    async def aclose(self) -> None:
        """Close what this runtime opened (HTTP clients, table and Service Bus clients), after writing the
        activity still in memory."""
        if self._activity is not None:
            await self._activity.aclose()
        await self._stack.aclose()


_current: AppRuntime | None = None
_install_lock = threading.Lock()


def current() -> AppRuntime:
    """The process's runtime (a settings-driven one is created on first use)."""
    global _current
    with _install_lock:
        if _current is None:
            _current = AppRuntime()
        return _current


def install(runtime: AppRuntime | None) -> AppRuntime | None:
    """Make `runtime` the process's runtime (None: back to lazily settings-driven); returns the previous one."""
    global _current
    with _install_lock:
        previous, _current = _current, runtime
        return previous
