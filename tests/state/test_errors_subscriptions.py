"""Error records (the same error twice → skipped, restore, redaction) and webhook subscriptions."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.state import NotFound, StateStore, Subscription

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
                        client_state="cs-1", expires_at=T0 + dt.timedelta(hours=10), remote_etag='W/"1"')
    later = Subscription("business_central", "sub-2", "/api/v2.0/companies(c)/items", "https://h/api/bc",
                         client_state="cs-2", expires_at=T0 + dt.timedelta(days=3))
    await subs.upsert_subscription(soon)
    await subs.upsert_subscription(later)

    got = await subs.get_subscription("business_central", "sub-1")
    due = [s.subscription_id async for s in subs.list_subscriptions("business_central",
                                                                     expiring_before=T0 + dt.timedelta(days=1))]

    assert got.client_state == "cs-1" and got.remote_etag == 'W/"1"' and got.expires_at == soon.expires_at
    assert "cs-1" not in repr(got)
    assert due == ["sub-1"]
    await subs.delete_subscription("business_central", "sub-1")
    await subs.delete_subscription("business_central", "sub-1")
    with pytest.raises(NotFound):
        await subs.get_subscription("business_central", "sub-1")
