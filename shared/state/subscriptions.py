"""Webhook subscriptions we hold at the source systems (system / subscription id), for renewal.

The clientState a subscription was made with is a shared secret: the table keeps only a keyed hash of it
(`client_state_hash`), enough to tell whether the configured secret was rotated since. Rows written before
that held the secret itself in `client_state`: it is never read back, the row reads with no hash (so the
subscription is renewed with the current secret) and the renewal's write, which replaces the whole row,
drops it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
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
    client_state_hash: str = field(repr=False)  # client_state_digest(the clientState); "" when unknown
    expires_at: dt.datetime
    remote_etag: str | None = None     # the subscription's @odata.etag, needed to renew with If-Match
    mapping: str | None = None
    created_at: dt.datetime | None = None


_DIGEST_LABEL = b"dualsync: Business Central subscription clientState"


def client_state_digest(client_state: str) -> str:
    """HMAC-SHA256 keyed with the clientState itself over a fixed label: the same secret always gives the same
    text, another secret another, and the text says nothing about the secret (HMAC is a pseudo-random
    function of its key), so the table can be read by anyone allowed to without disclosing it."""
    return "hmac-sha256:" + hmac.new(client_state.encode(), _DIGEST_LABEL, hashlib.sha256).hexdigest()


def same_client_state(sub: Subscription, client_state: str) -> bool:
    """Whether `sub` was made with `client_state` (constant time; False for a row without a hash)."""
    return bool(sub.client_state_hash) and hmac.compare_digest(sub.client_state_hash.encode(),
                                                               client_state_digest(client_state).encode())


def _from_entity(e: Any) -> Subscription:
    # A legacy clear `client_state` column is deliberately not read (see the module's docstring).
    return Subscription(system=decode_key(e["PartitionKey"]), subscription_id=decode_key(e["RowKey"]),
                        resource=e.get("resource", ""), notification_url=e.get("notification_url", ""),
                        client_state_hash=e.get("client_state_hash", ""), expires_at=read_time(e["expires_at"]),  # type: ignore[arg-type]
                        remote_etag=e.get("remote_etag"), mapping=e.get("mapping"),
                        created_at=read_time(e.get("created_at")))


class SubscriptionStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def upsert_subscription(self, sub: Subscription) -> None:
        entity = {"PartitionKey": encode_key(sub.system), "RowKey": encode_key(sub.subscription_id),
                  "resource": sub.resource, "notification_url": sub.notification_url,
                  "client_state_hash": sub.client_state_hash, "expires_at": aware(sub.expires_at, "expires_at"),
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
