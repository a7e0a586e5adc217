"""The `subscriptions` entity set (`…/api/v2.0/subscriptions`, not under a company; PROTOCOLS.md §4 and
"Working with Webhooks in Dynamics 365 Business Central", learn.microsoft.com).

POST creates a subscription only after the `validationToken` handshake against `notificationUrl` succeeds;
PATCH (with If-Match) runs the handshake again and renews the expiry to 3 days from now; DELETE needs If-Match.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from emulators.business_central.api import check_if_match, entity_response, method_not_allowed
from emulators.business_central.errors import BCError, bad_request, not_found
from emulators.business_central.options import DELETE, WRITE, check_options
from emulators.business_central.reads import count_collection, read_collection, read_options
from emulators.business_central.routing import ApiRequest, ApiResponse, Target, parse_path
from emulators.business_central.schema import SUBSCRIPTIONS
from emulators.business_central.state import Environment, bc_timestamp
from emulators.business_central.validate import check_body
from emulators.common.store import utcnow


def parse_resource(env: Environment, resource: str) -> tuple[str, str]:
    """(company id, entity set) a subscription resource names, e.g. `/api/v2.0/companies(<id>)/customers`.
    The `api/v2.0/` prefix is optional (BC accepts `companies(<id>)/customers` too)."""
    path = resource.strip()
    for prefix in ("/api/v2.0/", "api/v2.0/", "/"):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    try:
        target = parse_path(path)
    except BCError:
        target = None
    if target is None or target.kind != "entity" or target.record_id is not None or target.parent is not None \
            or target.count or target.company is None or target.entity is None or not target.entity.webhooks:
        raise bad_request(f"The resource '{resource}' cannot be subscribed to: it must name an entity set of a "
                          "company, e.g. /api/v2.0/companies(<id>)/customers.")
    if env.company(target.company or "") is None:
        raise bad_request(f"The resource '{resource}' names a company that does not exist.")
    return (target.company or "").lower(), target.entity.name


class SubscriptionsApi:
    def __init__(self, env: Environment, notifier: Any) -> None:
        self.env = env
        self.notifier = notifier

    @property
    def table(self) -> Any:
        return self.env.store.table("subscriptions")

    async def handle(self, req: ApiRequest, target: Target) -> ApiResponse:
        if target.record_id is None:
            if req.method == "GET":
                if target.count:
                    return count_collection(req, SUBSCRIPTIONS, self.table.all())
                return read_collection(self.env, req, SUBSCRIPTIONS, self.table.all(), "subscriptions")
            if req.method == "POST" and not target.count:
                return await self._create(req)
            raise method_not_allowed(req.method)
        row = self.table.find(target.record_id)
        if row is None:
            raise not_found(f"The subscription '{target.record_id}' does not exist.")
        if req.method == "GET":
            return self._single(req, row)
        if req.method not in ("PATCH", "DELETE"):
            raise method_not_allowed(req.method)
        if req.method == "DELETE":
            check_options(req.query, DELETE, context="a DELETE request")
        else:
            read_options(SUBSCRIPTIONS, req.query, WRITE, "a PATCH request")  # refused before anything changes
        check_if_match(req, row)
        if req.method == "DELETE":
            self.table.delete(row["subscriptionId"], req.client.actor)
            return ApiResponse(204)
        return await self._renew(req, row)

    def _single(self, req: ApiRequest, row: dict[str, Any], status: int = 200,
                context: str = "single") -> ApiResponse:
        options = read_options(SUBSCRIPTIONS, req.query, WRITE, context)
        return entity_response(self.env, req, SUBSCRIPTIONS, row, "subscriptions/$entity", options, status)

    def _expiry(self) -> str:
        return bc_timestamp(utcnow() + dt.timedelta(days=self.env.settings.subscription_lifetime_days))

    async def _create(self, req: ApiRequest) -> ApiResponse:
        read_options(SUBSCRIPTIONS, req.query, WRITE, "a POST request")  # refused before the handshake
        changes = check_body(SUBSCRIPTIONS, req.body)
        for required in ("notificationUrl", "resource"):
            if not changes.get(required):
                raise bad_request(f"The field {required} must have a value.")
        _check_url(changes["notificationUrl"])
        parse_resource(self.env, changes["resource"])
        if len(self.table) >= self.env.settings.max_subscriptions:
            raise bad_request(f"The maximum number of subscriptions ({self.env.settings.max_subscriptions}) for "
                              "this environment has been reached.")
        await self.notifier.handshake(changes["notificationUrl"])
        record = {"subscriptionId": uuid.uuid4().hex, "clientState": "", **changes,
                  "userId": req.client.user_id, "expirationDateTime": self._expiry()}
        row = self.table.insert(record, req.client.actor)
        return self._single(req, row, 201, "a POST request")

    async def _renew(self, req: ApiRequest, row: dict[str, Any]) -> ApiResponse:
        changes = check_body(SUBSCRIPTIONS, req.body)
        if "notificationUrl" in changes:
            _check_url(changes["notificationUrl"])
        if "resource" in changes:
            parse_resource(self.env, changes["resource"])
        await self.notifier.handshake(changes.get("notificationUrl", row["notificationUrl"]))
        changes["expirationDateTime"] = self._expiry()
        updated = self.table.update(row["subscriptionId"], changes, req.client.actor)
        return self._single(req, updated, context="a PATCH request")


def _check_url(url: str) -> None:
    if not url.lower().startswith(("http://", "https://")):
        raise bad_request(f"The notificationUrl '{url}' is not an absolute http(s) URL.")
