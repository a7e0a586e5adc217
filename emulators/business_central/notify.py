"""Webhook delivery as BC does it (PROTOCOLS.md §4): the handshake, then notifications batched per
notification URL after a delay, repeated changes of a record merged, a `collection` notice past a threshold,
retries on 408/429/5xx on BC's schedule, and the subscription deleted on any other non-2xx answer. Injected
misdelivery (`settings.delivery`, emulators.common.delivery) drops, duplicates or delays each batch as a whole.

Every user's changes notify (BC does not leave out the integration user; receivers filter). Delivery runs as
asyncio tasks on the loop that serves the API; `aclose()` cancels them (the app's lifespan calls it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulators.business_central.errors import BCError
from emulators.business_central.schema import ENTITY_SETS
from emulators.business_central.state import COMPANY, SYSTEM_ACTOR, Environment, bc_timestamp
from emulators.business_central.webhooks import SubscriptionsApi, parse_resource
from emulators.common.delivery import DeliveryInjector
from emulators.common.store import Change, utcnow

log = logging.getLogger(__name__)

# BC retries a failed delivery after 1, 1, 1, 10 and 100 minutes (PROTOCOLS.md §4), scaled by `retry_scale`.
RETRY_SCHEDULE_S = (60.0, 60.0, 60.0, 600.0, 6000.0)


@dataclass
class _Window:
    """Changes collected for one notification URL since the first change after the last send."""

    started: dt.datetime
    # (subscription id, entity set, record id) → (changeType, lastModifiedDateTime)
    records: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    first: dict[str, dt.datetime] = field(default_factory=dict)  # subscription → its first change
    last: dict[str, dt.datetime] = field(default_factory=dict)


def _merge(old: str | None, new: str) -> str:
    if old is None:
        return new
    if new == "deleted":
        return "deleted"
    if old == "created":  # created then updated within one window → still "created"
        return "created"
    return "updated" if old == "deleted" else new


class Notifier:
    def __init__(self, env: Environment, http: httpx.AsyncClient | None = None) -> None:
        self.env = env
        self._http = http
        self._owns_http = http is None
        self._windows: dict[str, _Window] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Attempts made (url, status or error, payload), newest last: for tests and the demo.
        self.attempts: deque[tuple[str, int | str, dict[str, Any]]] = deque(maxlen=1000)
        self.delivery = DeliveryInjector(env.settings.delivery.model_copy())
        self.api = SubscriptionsApi(env, self)
        env.store.listeners.append(self.on_change)

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30.0)
        return self._http

    # --- handshake
    async def handshake(self, url: str) -> None:
        """BC calls `notificationUrl?validationToken=<token>` and needs the token back as plain text with 200
        within 5 s. The docs say only "a request … passing a validationToken parameter on the query string";
        BC sends it as a POST (as Microsoft Graph webhooks do), so the emulator POSTs with an empty body."""
        self._loop = asyncio.get_running_loop()
        token = secrets.token_urlsafe(24)
        limit = self.env.settings.handshake_timeout_s
        try:
            # The whole exchange must finish in time (a deadline, not only an idle-read timeout).
            resp = await asyncio.wait_for(self.http.post(url, params={"validationToken": token}, content=b"",
                                                         timeout=limit), limit)
            ok = resp.status_code == 200 and resp.text.strip() == token
            detail = f"answered {resp.status_code}" if resp.status_code != 200 else "did not return the token"
        except (httpx.HTTPError, TimeoutError) as exc:
            ok, detail = False, f"could not be reached ({type(exc).__name__})"
        if not ok:
            raise BCError(400, "BadRequest", f"The subscription could not be validated: the notification URL "
                                             f"{detail} within {self.env.settings.handshake_timeout_s:g} seconds.")

    # --- collecting changes
    def on_change(self, change: Change) -> None:
        entity = ENTITY_SETS.get(change.table)
        if entity is None or not entity.webhooks or self._loop is None or self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._collect(change)
        else:  # a write from another thread (an admin helper, a test): hand it to the API's loop
            self._loop.call_soon_threadsafe(self._collect, change)

    def _collect(self, change: Change) -> None:
        row = change.after or change.before or {}
        company = row.get(COMPANY)
        now = utcnow()
        for sub in self.env.store.table("subscriptions").all():
            if not self._active(sub, now):
                continue
            try:
                target = parse_resource(self.env, sub["resource"])
            except BCError:
                continue
            if target != (company, change.table):
                continue
            url = sub["notificationUrl"]
            window = self._windows.get(url)
            if window is None:
                window = self._windows[url] = _Window(started=change.at)
                self._spawn(self._send_later(url))
            sid = sub["subscriptionId"]
            key = (sid, change.table, change.record_id)
            old = window.records.get(key)
            stamp = row.get("lastModifiedDateTime") if change.kind != "deleted" else bc_timestamp(change.at)
            window.records[key] = (_merge(old[0] if old else None, change.kind), stamp or bc_timestamp(change.at))
            window.first.setdefault(sid, change.at)
            window.last[sid] = change.at

    @staticmethod
    def _active(sub: dict[str, Any], now: dt.datetime) -> bool:
        return dt.datetime.fromisoformat(sub["expirationDateTime"]) > now

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending
    async def _send_later(self, url: str) -> None:
        await asyncio.sleep(self.env.settings.notification_delay_ms / 1000)
        window = self._windows.pop(url, None)
        if window is None:
            return
        notices, subs = self._notices(window)
        if notices:
            # A delayed batch lets the URL's next window (its own task) overtake it: reordering.
            await self.delivery.deliver(functools.partial(self._deliver, url, {"value": notices}, subs))

    def _notices(self, window: _Window) -> tuple[list[dict[str, Any]], set[str]]:
        table = self.env.store.table("subscriptions")
        per_sub: dict[str, list[tuple[str, str, str, str]]] = {}
        for (sid, entity, rid), (kind, stamp) in window.records.items():
            per_sub.setdefault(sid, []).append((entity, rid, kind, stamp))
        now = utcnow()
        notices: list[dict[str, Any]] = []
        for sid, changes in per_sub.items():
            sub = table.find(sid)
            if sub is None or not self._active(sub, now):
                continue  # deleted or expired meanwhile: no notices
            company, entity = parse_resource(self.env, sub["resource"])
            base = {"subscriptionId": sid, "clientState": sub.get("clientState", ""),
                    "expirationDateTime": sub["expirationDateTime"]}
            if len(changes) > self.env.settings.collection_threshold:
                since = (window.first[sid] - dt.timedelta(seconds=1)).replace(microsecond=0)
                since_text = since.strftime("%Y-%m-%dT%H:%M:%SZ")
                notices.append({**base, "resource": f"/api/v2.0/companies({company})/{entity}"
                                                    f"?$filter=lastModifiedDateTime%20gt%20{since_text}",
                                "changeType": "collection", "lastModifiedDateTime": bc_timestamp(window.last[sid])})
                continue
            for ent, rid, kind, stamp in changes:
                notices.append({**base, "resource": f"api/v2.0/companies({company})/{ent}({rid})",
                                "changeType": kind, "lastModifiedDateTime": stamp})
        return notices, {n["subscriptionId"] for n in notices}

    async def _deliver(self, url: str, payload: dict[str, Any], subs: set[str]) -> None:
        delays = (0.0, *RETRY_SCHEDULE_S)
        for attempt, delay in enumerate(delays):
            if delay:
                await asyncio.sleep(delay * self.env.settings.retry_scale)
            try:
                resp = await self.http.post(url, json=payload)
                status: int | str = resp.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            self.attempts.append((url, status, payload))
            if isinstance(status, int) and 200 <= status < 300:
                return
            if isinstance(status, int) and not (status in (408, 429) or status >= 500):
                # Any other non-2xx answer removes the subscription(s) (PROTOCOLS.md §4).
                for sid in subs:
                    if self.env.store.table("subscriptions").find(sid) is not None:
                        self.env.store.table("subscriptions").delete(sid, SYSTEM_ACTOR)
                return
            log.info("notification to %s failed (%s), attempt %d", url, status, attempt + 1)
        log.warning("notification to %s dropped after %d attempts", url, len(delays))

    async def aclose(self) -> None:
        """Cancel pending sends and close the HTTP client the notifier created."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._windows.clear()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def reset(self) -> None:
        self._windows.clear()
