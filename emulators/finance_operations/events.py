"""Data events (F&O → dualsync, the live path): endpoints and activations registered through `/_admin/dataevents`,
one JSON payload per committed change to an activated entity, POSTed to the endpoint URL in commit order.

The payload is RemoteExecutionContext-shaped (PROTOCOLS.md §5): the record in `InputParameters` `Target`, the
record before an update in `PreEntityImages` `PreImage`; null date/time fields are left out. Changes that only
touch virtual fields raise nothing; the integration user's own changes raise events too (the receiver
suppresses its echoes). `ControlNumber` grows with gaps across the environment. A non-2xx answer or a
transport error is retried `event_retries` times `event_retry_interval_s` apart (F&O: 3 times, 1 s), then
the event goes to the error list — never lost silently. Rolled-back change sets raise nothing (the store
only tells listeners about committed changes). Injected misdelivery (`settings.delivery`,
emulators.common.delivery) drops, duplicates or delays each event; a delayed event leaves the endpoint's ordered
queue, so later events may overtake it."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import random
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulators.common.delivery import DeliveryInjector
from emulators.common.store import Change
from emulators.finance_operations.core import Emulator
from emulators.finance_operations.schema import EntityDef

log = logging.getLogger(__name__)
MESSAGES = {"created": "Create", "updated": "Update", "deleted": "Delete"}
FIRST_CONTROL_NUMBER = 5637144576


@dataclass
class Endpoint:
    id: str
    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        # Secrets (query string, header values) are not echoed back.
        return {"id": self.id, "name": self.name, "url": self.url.split("?", 1)[0],
                "headers": sorted(self.headers)}


@dataclass
class Activation:
    id: str
    entity: str  # entity set
    events: frozenset[str]  # Create / Update / Delete
    legal_entity: str | None
    endpoint: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "entity": self.entity, "events": sorted(self.events),
                "legal_entity": self.legal_entity, "endpoint": self.endpoint}


@dataclass
class Outgoing:
    endpoint: str
    payload: dict[str, Any]
    due: float  # loop time of the earliest send


def attributes(entity: EntityDef, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Every field of the record in wire form; null date/time fields left out (as F&O sends them)."""
    return [{"key": name, "value": row.get(name)} for name, p in entity.props.items()
            if not (p.type in ("date", "datetime") and row.get(name) is None)]


def build_payload(entity: EntityDef, change: Change, control_number: int, object_id: str) -> dict[str, Any]:
    message = MESSAGES[change.kind]
    now = change.at.astimezone(dt.UTC)
    record = change.before if change.kind == "deleted" else change.after
    pre = []
    if change.kind == "updated" and change.before is not None:
        pre = [{"key": "PreImage", "value": {"LogicalName": entity.public,
                                             "Attributes": attributes(entity, change.before)}}]
    return {
        # (unconfirmed) id scheme: <PublicEntityName>_<Create|Update|Delete>.
        "BusinessEventId": f"{entity.public}_{message}",
        # (unconfirmed) "" for global entities.
        "BusinessEventLegalEntity": (record or {}).get("dataAreaId", "") if entity.company_specific else "",
        "ControlNumber": control_number,
        "EventId": str(uuid.uuid4()).upper(),
        "EventTime": f"/Date({int(now.timestamp() * 1000)})/",
        "EventTimeIso8601": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0Z",
        "InitiatingUserAADObjectId": "{" + object_id.upper() + "}",
        "MajorVersion": 0,
        "MinorVersion": 0,
        "MessageName": message,
        "PrimaryEntityName": entity.public,
        "EntitySetName": entity.entity_set,
        "InputParameters": [{"key": "Target", "value": {"LogicalName": entity.public,
                                                        "Attributes": attributes(entity, record or {})}}],
        "PreEntityImages": pre,
        "PostEntityImages": [],
    }


class DataEvents:
    """The data event catalog's activations and the sender. `drain()` waits for every queued send (tests)."""

    def __init__(self, emu: Emulator, client: httpx.AsyncClient | None = None) -> None:
        self.emu = emu
        self._client = client
        self._owns_client = client is None
        self.endpoints: dict[str, Endpoint] = {}
        self.activations: dict[str, Activation] = {}
        self.errors: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # delivered events (endpoint, event id, control number, attempts)
        self._rng = random.Random(emu.settings.seed)
        self.control_number = FIRST_CONTROL_NUMBER
        self._queues: dict[str, asyncio.Queue[Outgoing]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.delivery = DeliveryInjector(emu.settings.delivery.model_copy())
        self._detached: set[asyncio.Task[None]] = set()  # delayed deliveries, off the ordered queues
        emu.store.listeners.append(self.on_change)

    # ----- matching: runs inside the commit, so payloads and control numbers follow commit order
    def on_change(self, change: Change) -> None:
        entity = self.emu.entities.get(change.table)
        if entity is None:
            return
        message = MESSAGES[change.kind]
        if change.kind == "updated":
            real = {f for f in change.changed_fields if f in entity.props and not entity.props[f].virtual}
            if not real:
                return  # only virtual fields changed: no table write, no event
        record = change.before if change.kind == "deleted" else change.after
        company = str((record or {}).get("dataAreaId") or "").lower()
        targets = {a.endpoint for a in self.activations.values()
                   if a.entity == entity.entity_set and message in a.events and a.endpoint in self.endpoints
                   and (a.legal_entity is None or a.legal_entity == company)}
        if not targets:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("data event for %s %s not sent: no event loop", change.kind, change.table)
            return
        self.control_number += self._rng.randint(1, 3)
        payload = build_payload(entity, change, self.control_number, change.actor.user_id)
        due = loop.time() + self.emu.settings.event_delay_ms / 1000
        for endpoint in sorted(targets):
            self._queue(endpoint, loop).put_nowait(Outgoing(endpoint, payload, due))

    def _queue(self, endpoint: str, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Outgoing]:
        if endpoint not in self._queues:
            self._queues[endpoint] = asyncio.Queue()
            self._workers[endpoint] = loop.create_task(self._worker(endpoint))
        return self._queues[endpoint]

    # ----- delivery: one worker per endpoint keeps its events in commit order
    async def _worker(self, endpoint_id: str) -> None:
        queue = self._queues[endpoint_id]
        while True:
            item = await queue.get()
            try:
                loop = asyncio.get_running_loop()
                if (wait := item.due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                delivery = self.delivery.deliver(functools.partial(self._deliver, item))
                if self.delivery.faults.delays:
                    # Off the ordered queue, so the next event does not wait for this one and may overtake it.
                    task = loop.create_task(self._logged(delivery))
                    self._detached.add(task)
                    task.add_done_callback(self._detached.discard)
                else:
                    await delivery
            except Exception:  # never let one bad event stop the endpoint's queue
                log.exception("data event delivery failed")
            finally:
                queue.task_done()

    @staticmethod
    async def _logged(delivery: Awaitable[None]) -> None:
        try:
            await delivery
        except Exception:
            log.exception("data event delivery failed")

    async def _deliver(self, item: Outgoing) -> None:
        settings = self.emu.settings
        outcome: int | str = "endpoint removed"
        attempts = 0
        for attempt in range(settings.event_retries + 1):
            endpoint = self.endpoints.get(item.endpoint)
            if endpoint is None:
                break
            if attempt:
                await asyncio.sleep(settings.event_retry_interval_s)
            attempts += 1
            try:
                resp = await self._http().post(endpoint.url, content=json.dumps(item.payload).encode(),
                                               headers={**endpoint.headers, "Content-Type": "application/json"},
                                               timeout=settings.event_timeout_s)
                outcome = resp.status_code
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            if isinstance(outcome, int) and 200 <= outcome < 300:
                self.sent.append({"endpoint": item.endpoint, "event_id": item.payload["EventId"],
                                  "control_number": item.payload["ControlNumber"], "attempts": attempts})
                return
        key = "status" if isinstance(outcome, int) else "error"
        self.errors.append({"endpoint": item.endpoint, "event_id": item.payload["EventId"], key: outcome,
                            "attempts": attempts, "at": dt.datetime.now(dt.UTC).isoformat(),
                            "payload": item.payload})

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued event has been delivered or given up on (tests, demo)."""
        async def settle() -> None:
            if self._queues:
                await asyncio.gather(*(q.join() for q in self._queues.values()))
            while self._detached:  # delayed deliveries (a queue may refill meanwhile: look again)
                await asyncio.gather(*list(self._detached), return_exceptions=True)
                await asyncio.gather(*(q.join() for q in self._queues.values()))

        await asyncio.wait_for(settle(), timeout)

    async def aclose(self) -> None:
        tasks = [*self._workers.values(), *self._detached]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
