"""Webhook subscriptions we hold at the source systems (system / subscription id), for renewal and for
checking a notification's clientState."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.state.exceptions import NotFound
from shared.state.keys import aware, decode_key, encode_key, read_time


@dataclass
class Subscription:
    system: str                        # e.g. "business_central"
    subscription_id: str
    resource: str                      # e.g. "/api/v2.0/companies(<id>)/customers"
    notification_url: str
    client_state: str = field(repr=False)  # the shared secret each notification must echo
    expires_at: dt.datetime
    remote_etag: str | None = None     # the subscription's @odata.etag, needed to renew with If-Match
    mapping: str | None = None
    created_at: dt.datetime | None = None


def _from_entity(e: Any) -> Subscription:
    return Subscription(system=decode_key(e["PartitionKey"]), subscription_id=decode_key(e["RowKey"]),
                        resource=e.get("resource", ""), notification_url=e.get("notification_url", ""),
                        client_state=e.get("client_state", ""), expires_at=read_time(e["expires_at"]),  # type: ignore[arg-type]
                        remote_etag=e.get("remote_etag"), mapping=e.get("mapping"),
                        created_at=read_time(e.get("created_at")))


class SubscriptionStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def upsert_subscription(self, sub: Subscription) -> None:
        entity = {"PartitionKey": encode_key(sub.system), "RowKey": encode_key(sub.subscription_id),
                  "resource": sub.resource, "notification_url": sub.notification_url,
                  "client_state": sub.client_state, "expires_at": aware(sub.expires_at, "expires_at"),
                  "remote_etag": sub.remote_etag, "mapping": sub.mapping,
                  "created_at": aware(sub.created_at, "created_at") or dt.datetime.now(dt.UTC)}
        await self.table.upsert_entity({k: v for k, v in entity.items() if v is not None}, mode=UpdateMode.REPLACE)

    async def get_subscription(self, system: str, subscription_id: str) -> Subscription:
        try:
            return _from_entity(await self.table.get_entity(encode_key(system), encode_key(subscription_id)))
        except ResourceNotFoundError:
            raise NotFound(f"no {system} subscription {subscription_id!r}") from None

    async def list_subscriptions(self, system: str | None = None, *,
                                 expiring_before: dt.datetime | None = None) -> AsyncIterator[Subscription]:
        """All subscriptions (of one system), or those expiring before a time (the renewal timer's query)."""
        clauses, params = [], {}
        if system is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = encode_key(system)
        if expiring_before is not None:
            clauses.append("expires_at lt @before")
            params["before"] = aware(expiring_before, "expiring_before")
        pages = (self.table.query_entities(" and ".join(clauses), parameters=params) if clauses
                 else self.table.list_entities())
        async for entity in pages:
            yield _from_entity(entity)

    async def delete_subscription(self, system: str, subscription_id: str) -> None:
        """Succeeds when already gone."""
        await self.table.delete_entity(encode_key(system), encode_key(subscription_id))
