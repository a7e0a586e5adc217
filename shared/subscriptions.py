"""Business Central webhook subscriptions (PROTOCOLS.md §4): which ones the pack needs, which to create or
renew, and the calls that do it. The renewal timer runs `ensure_subscriptions` a few times a day.

BC subscriptions expire after 3 days; renewing is `PATCH …/subscriptions('<id>')` with `If-Match`, and BC
runs the validation handshake against the notification URL again on every create and renew. BC also deletes
a subscription on its own when deliveries keep failing, so a renewal answered 404 creates it anew.

    wanted = wanted_subscriptions(pack, company_id=…, public_base_url="https://app.azurewebsites.net")
    report = await ensure_subscriptions(BusinessCentralSubscriptions(bc_connector), state.subscriptions, wanted,
                                        client_state=secret, now=now, renew_within=dt.timedelta(days=1))
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.connectors import ConnectorError
from shared.connectors.base import NotFound
from shared.connectors.business_central import BusinessCentralConnector
from shared.connectors.odata import parse_datetime
from shared.mapping import Direction, Pack, System
from shared.state import Subscription, SubscriptionStore
from shared.state.subscriptions import client_state_digest, same_client_state

SYSTEM = System.BUSINESS_CENTRAL.value  # the subscriptions table's partition for BC
WEBHOOK_ROUTE = "api/webhooks/business_central/{entity}"  # functions/webhooks.py serves this route


@dataclass(frozen=True)
class WantedSubscription:
    """A subscription the loaded pack needs: one per BC entity set some enabled mapping syncs from."""

    entity: str
    resource: str           # `/api/v2.0/companies(<id>)/<entity>`
    notification_url: str   # `<public base URL>/api/webhooks/business_central/<entity>`
    mappings: tuple[str, ...]


@dataclass
class SubscriptionPlan:
    create: list[WantedSubscription] = field(default_factory=list)
    renew: list[tuple[WantedSubscription, Subscription]] = field(default_factory=list)
    keep: list[Subscription] = field(default_factory=list)
    expired: list[Subscription] = field(default_factory=list)  # lapsed at BC: forget the row, create again
    stale: list[Subscription] = field(default_factory=list)    # no longer wanted: delete at BC and here


@dataclass
class SubscriptionReport:
    """What one `ensure_subscriptions` run did; `failed` holds (entity or id, message) and never a secret."""

    created: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def notification_url(public_base_url: str, entity: str) -> str:
    return f"{public_base_url.rstrip('/')}/{WEBHOOK_ROUTE.format(entity=entity)}"


# Document lines are subentities of their document; BC offers webhooks on top-level entity sets only (as the
# documentation's examples show; a subscription to lines is refused — unconfirmed for every line entity).
# Their changes are caught by the modified-records timer. `companies` lives above every company: no company's
# subscription can name it (new companies are rare and reach the CRM with the timer).
NOT_SUBSCRIBABLE = frozenset({"salesOrderLines", "salesInvoiceLines", "salesQuoteLines", "purchaseOrderLines",
                              "purchaseInvoiceLines", "salesCreditMemoLines", "companies"})


def wanted_subscriptions(pack: Pack, *, company_id: str, public_base_url: str,
                         company_ids: Sequence[str] = ()) -> list[WantedSubscription]:
    """The subscriptions `pack` needs, in pack order, for each synced company (`company_ids` when several):
    nothing when the ERP is not Business Central."""
    if pack.systems.erp is not System.BUSINESS_CENTRAL:
        return []
    if not public_base_url.lower().startswith(("http://", "https://")):
        raise ValueError(f"the public base URL must be an absolute http(s) URL, got {public_base_url!r}")
    by_entity: dict[str, list[str]] = {}
    for m in pack.mappings:
        if m.enabled and m.kind == "table" and m.direction.allows(Direction.TO_CRM) \
                and m.erp.entity not in NOT_SUBSCRIBABLE:
            by_entity.setdefault(m.erp.entity, []).append(m.name)
    companies = list(company_ids) or [company_id]
    return [WantedSubscription(entity, f"/api/v2.0/companies({company})/{entity}",
                               notification_url(public_base_url, entity), tuple(names))
            for company in companies for entity, names in by_entity.items()]


def _same_resource(a: str, b: str) -> bool:
    # BC accepts the resource with or without `/api/v2.0/`; company ids are GUIDs in either case.
    def norm(text: str) -> str:
        return text.strip().lstrip("/").removeprefix("api/v2.0/").casefold()
    return norm(a) == norm(b)


def plan_subscriptions(wanted: Sequence[WantedSubscription], stored: Sequence[Subscription], *,
                       client_state: str, now: dt.datetime, renew_within: dt.timedelta) -> SubscriptionPlan:
    """Pure: what to do with each wanted and each stored subscription. A stored subscription is renewed when
    it expires within `renew_within`, or when it was not made with the configured clientState (a rotated
    secret reaches BC with the renewal; a row from before the table held only a hash of it is renewed too, and
    the renewal's write replaces its clear-text secret with the hash)."""
    plan = SubscriptionPlan()
    unclaimed = list(stored)
    for want in wanted:
        found = next((s for s in unclaimed if s.notification_url == want.notification_url
                      and _same_resource(s.resource, want.resource)), None)
        if found is None:
            plan.create.append(want)
            continue
        unclaimed.remove(found)
        if found.expires_at <= now:
            plan.expired.append(found)
            plan.create.append(want)
        elif found.expires_at - now <= renew_within or not same_client_state(found, client_state):
            plan.renew.append((want, found))
        else:
            plan.keep.append(found)
    plan.stale.extend(unclaimed)
    return plan


class BusinessCentralSubscriptions:
    """The `subscriptions` entity set of one BC environment (not under a company), through the connector's
    HTTP seam: same token, retries, limiter and redaction as every other BC call."""

    def __init__(self, connector: BusinessCentralConnector) -> None:
        self.svc = connector.svc
        self.url = connector.api_root + "subscriptions"

    def _one(self, subscription_id: str) -> str:
        return f"{self.url}('{subscription_id}')"

    async def create(self, resource: str, notification_url: str, client_state: str) -> dict[str, Any]:
        body = {"notificationUrl": notification_url, "resource": resource, "clientState": client_state}
        return await self.svc.json("POST", self.url, json=body, headers={"Content-Type": "application/json"},
                                   context=f"subscribe to {resource}")

    async def renew(self, subscription_id: str, etag: str | None, *, notification_url: str,
                    client_state: str) -> dict[str, Any]:
        body = {"notificationUrl": notification_url, "clientState": client_state}
        return await self.svc.json("PATCH", self._one(subscription_id), json=body,
                                   headers={"Content-Type": "application/json", "If-Match": etag or "*"},
                                   context=f"renew subscription {subscription_id}")

    async def delete(self, subscription_id: str, etag: str | None) -> None:
        """Succeeds when already gone."""
        try:
            await self.svc.send("DELETE", self._one(subscription_id), headers={"If-Match": etag or "*"},
                                context=f"delete subscription {subscription_id}")
        except NotFound:
            return

    async def list(self) -> list[dict[str, Any]]:
        body = await self.svc.json("GET", self.url, context="list subscriptions")
        return list(body.get("value") or [])


def _stored(want: WantedSubscription, body: dict[str, Any], client_state: str,
            created_at: dt.datetime | None = None) -> Subscription:
    expires = parse_datetime(body.get("expirationDateTime"))
    if not body.get("subscriptionId") or expires is None:
        raise ConnectorError("Business Central answered a subscription without subscriptionId or "
                             "expirationDateTime", code="UnexpectedResponse")
    return Subscription(system=SYSTEM, subscription_id=str(body["subscriptionId"]), resource=want.resource,
                        notification_url=want.notification_url, client_state_hash=client_state_digest(client_state),
                        expires_at=expires,
                        remote_etag=body.get("@odata.etag"), mapping=",".join(want.mappings), created_at=created_at)


async def ensure_subscriptions(api: BusinessCentralSubscriptions, store: SubscriptionStore,
                               wanted: Sequence[WantedSubscription], *, client_state: str, now: dt.datetime,
                               renew_within: dt.timedelta) -> SubscriptionReport:
    """Create missing subscriptions, renew those expiring soon, drop those no longer wanted; record each in
    the state store. One failure (e.g. the handshake did not reach us) does not stop the others."""
    if not client_state:
        raise ValueError("a clientState secret is required to subscribe to Business Central webhooks")
    stored = [s async for s in store.list_subscriptions(SYSTEM)]
    plan = plan_subscriptions(wanted, stored, client_state=client_state, now=now, renew_within=renew_within)
    report = SubscriptionReport(kept=[s.subscription_id for s in plan.keep])

    async def create(want: WantedSubscription) -> None:
        body = await api.create(want.resource, want.notification_url, client_state)
        await store.upsert_subscription(_stored(want, body, client_state, now))
        report.created.append(want.entity)

    for sub in plan.expired:
        await store.delete_subscription(SYSTEM, sub.subscription_id)
    for want in plan.create:
        try:
            await create(want)
        except ConnectorError as exc:
            report.failed.append((want.entity, exc.message))
    for want, sub in plan.renew:
        try:
            body = await api.renew(sub.subscription_id, sub.remote_etag, notification_url=want.notification_url,
                                   client_state=client_state)
            await store.upsert_subscription(_stored(want, body, client_state, sub.created_at))
            report.renewed.append(want.entity)
        except NotFound:
            # BC removed it (deliveries kept failing): subscribe again.
            await store.delete_subscription(SYSTEM, sub.subscription_id)
            try:
                await create(want)
            except ConnectorError as exc:
                report.failed.append((want.entity, exc.message))
        except ConnectorError as exc:
            report.failed.append((want.entity, exc.message))
    for sub in plan.stale:
        try:
            await api.delete(sub.subscription_id, sub.remote_etag)
            await store.delete_subscription(SYSTEM, sub.subscription_id)
            report.removed.append(sub.subscription_id)
        except ConnectorError as exc:
            report.failed.append((sub.subscription_id, exc.message))
    return report
