"""Error records (the same error twice → skipped, restore, redaction) and webhook subscriptions."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.state import NotFound, StateStore, Subscription
from shared.state.subscriptions import client_state_digest, same_client_state

pytestmark = pytest.mark.azurite
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


async def fail(store: StateStore, message: str, *, source: str = "e-1", now: dt.datetime = T0, **kw: object):
    return await store.errors.record_failure("customers", direction="to_crm", source_id=source, message=message,
                                             now=now, **kw)


async def test_same_error_twice_skips_the_record(store: StateStore) -> None:
    first = await fail(store, "Name is required", destination_id="c-1", detail={"field": "name"})
    second = await fail(store, "Name is required", now=T0 + dt.timedelta(minutes=1))

    assert not first.skipped and first.attempts == 1
    assert second.skipped and second.attempts == 2
    stored = await store.errors.get_error("customers", "to_crm", "e-1")
    assert stored.skipped and stored.first_seen == T0 and stored.last_seen == T0 + dt.timedelta(minutes=1)
    assert stored.destination_id == "c-1"  # kept from the first failure


async def test_different_errors_do_not_skip(store: StateStore) -> None:
    await fail(store, "Name is required")
    second = await fail(store, "Credit limit too high")
    assert not second.skipped and second.attempts == 2 and second.repeats == 1


async def test_restore_needs_two_more_identical_failures_to_skip_again(store: StateStore) -> None:
    await fail(store, "boom")
    await fail(store, "boom")

    restored = await store.errors.restore_error("customers", "to_crm", "e-1")
    after_one = await fail(store, "boom")
    after_two = await fail(store, "boom")

    assert not restored.skipped
    assert not after_one.skipped and after_two.skipped
    assert [e.source_id async for e in store.errors.list_errors("customers", skipped=True)] == ["e-1"]


async def test_skip_list_delete_and_purge(store: StateStore) -> None:
    await fail(store, "a", source="e-1")
    await fail(store, "b", source="e-2", now=T0 - dt.timedelta(days=10))
    await store.errors.skip_error("customers", "to_crm", "e-1")

    assert [e.source_id async for e in store.errors.list_errors("customers", skipped=False)] == ["e-2"]
    assert await store.errors.purge_errors(dt.timedelta(days=7), now=T0) == 1
    await store.errors.delete_error("customers", "to_crm", "e-1")
    await store.errors.delete_error("customers", "to_crm", "e-1")
    assert [e async for e in store.errors.list_errors()] == []
    with pytest.raises(NotFound):
        await store.errors.restore_error("customers", "to_crm", "e-1")


async def test_messages_and_details_are_redacted(store: StateStore) -> None:
    record = await fail(store, "POST https://x/api?code=abc123 failed with Bearer eyJhbGciOi.abcdefgh.sig",
                        detail={"headers": {"Authorization": "Bearer tok"}, "body": "secret is s3cr3t-value"})

    stored = await store.errors.get_error("customers", "to_crm", "e-1")
    for text in (record.message, stored.message, stored.detail or ""):
        assert "abc123" not in text and "eyJhbGciOi" not in text and "s3cr3t-value" not in text
        assert "tok\"" not in text
    assert "code=***" in stored.message


async def test_subscriptions_round_trip_and_expiry_query(store: StateStore) -> None:
    subs = store.subscriptions
    soon = Subscription("business_central", "sub-1", "/api/v2.0/companies(c)/customers", "https://h/api/bc",
                        client_state_hash=client_state_digest("cs-1"), expires_at=T0 + dt.timedelta(hours=10),
                        remote_etag='W/"1"')
    later = Subscription("business_central", "sub-2", "/api/v2.0/companies(c)/items", "https://h/api/bc",
                         client_state_hash=client_state_digest("cs-2"), expires_at=T0 + dt.timedelta(days=3))
    await subs.upsert_subscription(soon)
    await subs.upsert_subscription(later)

    got = await subs.get_subscription("business_central", "sub-1")
    due = [s.subscription_id async for s in subs.list_subscriptions("business_central",
                                                                     expiring_before=T0 + dt.timedelta(days=1))]

    assert same_client_state(got, "cs-1") and not same_client_state(got, "cs-2")
    assert got.remote_etag == 'W/"1"' and got.expires_at == soon.expires_at
    assert client_state_digest("cs-1") not in repr(got)
    assert due == ["sub-1"]
    await subs.delete_subscription("business_central", "sub-1")
    await subs.delete_subscription("business_central", "sub-1")
    with pytest.raises(NotFound):
        await subs.get_subscription("business_central", "sub-1")


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=1, max_size=80), other=st.text(min_size=1, max_size=80))
def test_the_client_state_digest_tells_secrets_apart_and_holds_none(secret: str, other: str) -> None:
    digest = client_state_digest(secret)
    assert digest == client_state_digest(secret) and digest.startswith("hmac-sha256:")
    assert (digest == client_state_digest(other)) is (secret == other)
    assert len(digest) == len("hmac-sha256:") + 64  # fixed length: says nothing about the secret's length


async def test_the_table_holds_no_clear_client_state_and_legacy_rows_read_as_unknown(store: StateStore) -> None:
    subs = store.subscriptions
    secret = "cl3ar-client-state-value"
    await subs.upsert_subscription(Subscription("business_central", "sub-1", "/r", "https://h/api/bc",
                                                client_state_digest(secret), T0))
    rows = [dict(e) async for e in subs.table.list_entities()]
    assert rows and all(secret not in repr(v) for row in rows for v in row.values())
    # A row written before the table held hashes: the secret in clear, under `client_state`.
    await subs.table.upsert_entity({"PartitionKey": "business_central", "RowKey": "sub-old", "resource": "/r",
                                    "notification_url": "https://h/api/bc", "client_state": secret,
                                    "expires_at": T0})
    old = await subs.get_subscription("business_central", "sub-old")
    assert old.client_state_hash == "" and not same_client_state(old, secret)  # → renewed, and overwritten
    assert secret not in repr(old)
