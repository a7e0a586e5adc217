"""`LocalHost`: runs a `func.FunctionApp`'s own registered function objects (`app.get_functions()`) the way
the Functions host would, where no Functions host or Service Bus can run:

- HTTP triggers on a real port (Starlette; `asgi()` for uvicorn or `BackgroundServer`), auth levels honoured;
- timer triggers fired on their NCRONTAB schedules (`run_timers=True`), or on demand with `await fire(name)`;
- Service Bus queue triggers fed by an `InProcessQueue` per queue (sessions, duplicate detection, scheduled
  messages, max delivery count → dead letter) as `azure.functions.ServiceBusMessage`s; a trigger on
  `<queue>/$DeadLetterQueue` (any case, not session-enabled) receives that queue's dead letters, with
  `dead_letter_reason` and `dead_letter_error_description` set.

Every function, whatever its trigger, is discovered from the app, so new blueprints need no change here.
`%SETTING%` in queue names and schedules (anywhere in them, as in Azure's binding expressions) resolves from
`app_settings` (default: the environment).

    host = LocalHost(app, runtime=lambda h: AppRuntime(settings=settings, sender=h.sender()))
    with BackgroundServer(host.asgi()) as server:   # webhooks now reach server.url + "/api/webhooks/…"
        ...

The `runtime` factory runs on the serving loop at start-up; its `AppRuntime` is installed for the triggers
(`shared.app_runtime.install`) and closed and uninstalled at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest
from starlette.applications import Starlette

from emulators.functions_host.http import call_function, http_route
from emulators.functions_host.ncrontab import Schedule
from emulators.functions_host.servicebus import InProcessQueue, InProcessSender, QueuedMessage
from shared.app_runtime import AppRuntime, install
from shared.settings import QueueSettings

log = logging.getLogger(__name__)
HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
# What the Function App's settings would hold in Azure, when the environment does not say.
DEFAULT_APP_SETTINGS = {"DUALSYNC_QUEUE__NAME": QueueSettings.model_fields["name"].default}
# Service Bus addresses an entity's dead-letter sub-queue as `<entity>/$DeadLetterQueue`.
DEAD_LETTER_SUFFIX = "/$deadletterqueue"
_SETTING = re.compile(r"%([^%]+)%")


def host_json_options(path: Path | None) -> dict[str, Any]:
    """`extensions.serviceBus` of host.json (the local host honours `maxConcurrentSessions`)."""
    if path is None or not path.exists():
        return {}
    return json.loads(path.read_text()).get("extensions", {}).get("serviceBus", {})


def index_functions(app: Any) -> list[Any]:
    """`app.get_functions()`, as the Python worker indexes the app (names must be unique). azure-functions
    remembers the names of an earlier call and refuses a second indexing of the same app object, which the
    worker never does but a test process may (several tests, one module-level app): start from a clean record
    and leave one behind."""
    app.functions_bindings = {}
    try:
        return list(app.get_functions())
    finally:
        app.functions_bindings = {}


class LocalHost:
    def __init__(self, app: Any, *, runtime: Callable[[LocalHost], AppRuntime] | None = None,
                 app_settings: Mapping[str, str] | None = None, host_json: Path | None = HOST_JSON,
                 function_key: str | None = None, master_key: str | None = None, run_timers: bool = True,
                 max_delivery_count: int = 10, duplicate_window: dt.timedelta = dt.timedelta(minutes=10),
                 max_concurrent_sessions: int | None = None) -> None:
        self.functions = {f.get_function_name(): f for f in index_functions(app)}
        self.app_settings = {**DEFAULT_APP_SETTINGS, **(os.environ if app_settings is None else app_settings)}
        self.keys = {"function": function_key or secrets.token_urlsafe(24),
                     "master": master_key or secrets.token_urlsafe(24)}
        self.run_timers = run_timers
        self._runtime_factory = runtime or (lambda host: AppRuntime(sender=host.sender()))
        sessions = max_concurrent_sessions or int(host_json_options(host_json).get("maxConcurrentSessions", 8))
        self.queues: dict[str, InProcessQueue] = {}
        self._consumers: dict[str, str] = {}  # queue → function
        self._dead_letter_consumers: dict[str, str] = {}  # queue → the function receiving its dead letters
        self.schedules: dict[str, Schedule] = {}
        for name, function in self.functions.items():
            trigger = function.get_trigger()
            if trigger.type == "serviceBusTrigger":
                queue, dead_letters = self._queue_of(name, trigger)
                consumers = self._dead_letter_consumers if dead_letters else self._consumers
                if queue in consumers:
                    raise ValueError(f"functions {consumers[queue]} and {name} both receive "
                                     f"{'the dead letters of ' if dead_letters else ''}queue '{queue}'")
                consumers[queue] = name
                if queue not in self.queues:  # the DLQ is part of its queue, which exists with or without a receiver
                    self.queues[queue] = InProcessQueue(queue, max_delivery_count=max_delivery_count,
                                                        duplicate_window=duplicate_window,
                                                        max_concurrent_sessions=sessions)
            elif trigger.type == "timerTrigger":
                self.schedules[name] = Schedule.parse(self.resolve(trigger.schedule))
        self.fired: list[tuple[str, dt.datetime]] = []
        self._timer_locks = {name: asyncio.Lock() for name in self.schedules}
        self._tasks: list[asyncio.Task[None]] = []
        self._runtime: AppRuntime | None = None
        self._previous: AppRuntime | None = None

    # ----- configuration
    def resolve(self, value: str) -> str:
        """Each `%NAME%` → the app setting NAME (KeyError naming it when unset); other text as is."""
        def setting(match: re.Match[str]) -> str:
            if match[1] not in self.app_settings:
                raise KeyError(f"app setting {match[1]} is not set")
            return self.app_settings[match[1]]

        return _SETTING.sub(setting, value)

    def _queue_of(self, function: str, trigger: Any) -> tuple[str, bool]:
        """(queue, whether the trigger reads its dead-letter sub-queue)."""
        queue = self.resolve(trigger.queue_name)
        if not queue.lower().endswith(DEAD_LETTER_SUFFIX):
            return queue, False
        if getattr(trigger, "is_sessions_enabled", None):
            # A dead-letter queue has no sessions: Azure's trigger fails to receive with a session receiver.
            raise ValueError(f"function {function} reads a dead-letter queue: it must not be session-enabled")
        return queue[:-len(DEAD_LETTER_SUFFIX)], True

    def queue(self, name: str | None = None) -> InProcessQueue:
        """The queue `name`, or the only one."""
        if name is None:
            if len(self.queues) != 1:
                raise ValueError(f"the app has {len(self.queues)} queues: name one")
            return next(iter(self.queues.values()))
        return self.queues[name]

    def sender(self, name: str | None = None) -> InProcessSender:
        return self.queue(name).sender()

    @property
    def runtime(self) -> AppRuntime | None:
        return self._runtime

    # ----- serving
    def asgi(self) -> Starlette:
        """The HTTP functions as an ASGI app whose lifespan starts and stops the host."""
        routes = [http_route(f, self.keys) for f in self.functions.values()
                  if f.get_trigger().type == "httpTrigger"]

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        return Starlette(routes=routes, lifespan=lifespan)

    async def start(self) -> None:
        """Install the runtime and start receiving queues and firing timers, on the running loop."""
        self._runtime = self._runtime_factory(self)
        self._previous = install(self._runtime)
        for queue, function in self._consumers.items():
            self.queues[queue].start(self._deliverer(function))
        for queue, function in self._dead_letter_consumers.items():
            self.queues[queue].start_dead_letters(self._deliverer(function))
        if self.run_timers:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._timer(name)) for name in self.schedules]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for queue in self.queues.values():
            await queue.stop()
        if self._runtime is not None:
            await self._runtime.aclose()
            install(self._previous)
            self._runtime = None

    # ----- Service Bus
    def _deliverer(self, name: str) -> Callable[[QueuedMessage], Any]:
        function = self.functions[name]
        trigger, user_function = function.get_trigger(), function.get_user_function()

        async def deliver(m: QueuedMessage) -> None:
            message = ServiceBusMessage(
                body=m.body, message_id=m.message_id, session_id=m.session_id, delivery_count=m.delivery_count,
                enqueued_time_utc=m.enqueued_at, scheduled_enqueue_time_utc=m.scheduled_at,
                sequence_number=m.sequence_number, content_type=m.content_type, subject=m.subject, label=m.subject,
                application_properties=m.application_properties, user_properties=m.application_properties,
                dead_letter_reason=m.dead_letter_reason, dead_letter_error_description=m.dead_letter_description)
            await call_function(user_function, **{trigger.name: message})

        return deliver

    # ----- timers
    async def fire(self, name: str, *, past_due: bool = False) -> None:
        """Run timer function `name` now (one run at a time, as the Functions host's singleton timers)."""
        function = self.functions[name]
        trigger = function.get_trigger()
        if trigger.type != "timerTrigger":
            raise ValueError(f"function {name} is not timer-triggered")
        async with self._timer_locks[name]:
            self.fired.append((name, dt.datetime.now(dt.UTC)))
            await call_function(function.get_user_function(), **{trigger.name: TimerRequest(past_due=past_due)})

    async def _timer(self, name: str) -> None:
        trigger = self.functions[name].get_trigger()
        if trigger.run_on_startup:
            await self._fire_logged(name)
        while True:
            now = dt.datetime.now(dt.UTC)
            await asyncio.sleep((self.schedules[name].next_after(now) - now).total_seconds())
            await self._fire_logged(name)

    async def _fire_logged(self, name: str) -> None:
        try:
            await self.fire(name)
        except Exception:
            log.exception("timer function %s failed", name)
