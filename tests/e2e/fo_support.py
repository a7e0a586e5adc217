"""Helpers of the Finance and Operations end-to-end tests (`test_fo_sandbox.py`): waiting for the stack to be
quiet, full syncs through the admin API, reading the F&O emulator's data-event log, building a data event by
hand (for the webhook refusals) and reading the app's own evidence (its log lines, the queue's deliveries).

Everything goes through HTTP, except the counters only the in-process parts can show: the Service Bus
stand-in's deliveries and duplicate count (`sb.queue`) and the Dataverse emulator's webhook calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from emulators.sandbox import Sandbox

FO_PACK = "templates/fo-dataverse.yaml"
P2C_PACK = "templates/prospect-to-cash.yaml"
# Entra object id of the F&O user Ava (`fo-user-ava`, emulators/README.md): what her data events carry.
AVA_OBJECT_ID = "5a1d0c6e-7b2f-4c1e-9a3d-00000000f002"
# The F&O mappings a customer needs before it can sync (its lookups and its company), dependencies first.
CUSTOMER_CHAIN = ("companies", "currencies", "customer-groups", "payment-terms", "customers")


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.03)


async def fo_sent(sb: Sandbox) -> int:
    """How many data events F&O has delivered (2xx) so far, to any endpoint."""
    r = await sb.http.get(f"{sb.fo_url}/_admin/dataevents/sent")
    r.raise_for_status()
    return int(r.json()["count"])


async def quiet(sb: Sandbox, timeout: float = 20.0) -> None:
    """Every notification either system still holds has been delivered and handled, and the queue is empty:
    waits past both notification delays, settles the queue, and repeats until nothing new was delivered (our
    own writes notify too, once)."""
    fo_delay = sb.fo_app.state.emulator.settings.event_delay_ms
    dv_delay = sb.dv_app.state.emulator.settings.webhook_delay_ms
    pause = max(fo_delay, dv_delay) / 1000 + 0.1

    async def counts() -> tuple[int, ...]:
        return await fo_sent(sb), len(sb.dv_app.state.emulator.webhooks.deliveries), len(sb.queue.deliveries)

    deadline = time.monotonic() + timeout
    seen = await counts()
    while True:
        await asyncio.sleep(pause)  # a notification due now has been sent (and counted) after this
        await sb.settle()
        now = await counts()
        if now == seen:
            return
        assert time.monotonic() < deadline, f"the stack did not become quiet within {timeout} s"
        seen = now


async def full_sync(sb: Sandbox, mappings: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """A real full sync (dry_run=false), one admin call per mapping in the order `GET mappings` lists them
    (dependencies first), limited to `mappings` when given; every run's failures must be empty."""
    listed = [m["name"] for m in (await sb.manage("GET", "mappings"))["mappings"]]
    wanted = set(listed if mappings is None else mappings)
    runs: list[dict[str, Any]] = []
    for name in listed:
        if name in wanted:
            done = await sb.manage("POST", "full-sync", params={"mapping": name, "dry_run": "false"})
            for run in done["runs"]:
                assert run["failures"] == [] and run["job_id"], run
            runs.extend(done["runs"])
    await quiet(sb)
    return runs


async def companies(sb: Sandbox) -> dict[str, str]:
    """cdm_company id per legal entity code (USMF → …), as Dataverse holds them."""
    return {c["cdm_companycode"]: c["cdm_companyid"] for c in await sb.dv_rows("cdm_companies")}


async def dv_where(sb: Sandbox, table: str, **values: Any) -> list[dict[str, Any]]:
    return [r for r in await sb.dv_rows(table) if all(r.get(k) == v for k, v in values.items())]


async def fo_where(sb: Sandbox, table: str, **values: Any) -> list[dict[str, Any]]:
    return [r for r in await sb.fo_rows(table) if all(r.get(k) == v for k, v in values.items())]


def data_fields(row: dict[str, Any]) -> dict[str, Any]:
    """An admin row without its annotations (`@key`, `@odata.etag`)."""
    return {k: v for k, v in row.items() if not k.startswith("@")}


def data_event(entity_set: str, public: str, target: dict[str, Any], *, control: int, message: str = "Update",
               user: str = AVA_OBJECT_ID) -> dict[str, Any]:
    """One F&O data event as F&O posts it (emulators/README.md, "Admin and data events"): `target` is the
    record (every field), `control` its ControlNumber, `user` the writer's Entra object id."""
    now = dt.datetime.now(dt.UTC)
    return {
        "BusinessEventId": f"{public}_{message}",
        "BusinessEventLegalEntity": str(target.get("dataAreaId", "")),
        "ControlNumber": control,
        "EventId": str(uuid.uuid4()).upper(),
        "EventTime": f"/Date({int(now.timestamp() * 1000)})/",
        "EventTimeIso8601": now.strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
        "InitiatingUserAADObjectId": "{" + user.upper() + "}",
        "MajorVersion": 0,
        "MinorVersion": 0,
        "MessageName": message,
        "PrimaryEntityName": public,
        "EntitySetName": entity_set,
        "InputParameters": [{"key": "Target", "value": {
            "LogicalName": public, "Attributes": [{"key": k, "value": v} for k, v in data_fields(target).items()]}}],
        "PreEntityImages": [],
        "PostEntityImages": [],
    }


def sessions_of(sb: Sandbox, mapping: str, record_key: str) -> list[Any]:
    """The queue's deliveries for one (mapping, source record): the session id is mapping + side + record id."""
    return [d for d in list(sb.queue.deliveries)
            if d.session_id.startswith(f"{mapping}/") and d.session_id.endswith(record_key.lower())]


def notes_about(sb: Sandbox, since: float, record_id: str, logger: str = "functions.processor") -> list[str]:
    """What the app logged about one record since `since` (the processor's outcome lines by default)."""
    return [e.message for e in sb.events_since(since) if e.logger == logger and record_id in e.message]
