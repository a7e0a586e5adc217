"""The emulators' shared state and service-protection pieces."""

from __future__ import annotations

import asyncio

import pytest

from emulators.common.identity import Client, Identity
from emulators.common.store import Actor, Change, RecordExists, RecordNotFound, Store
from emulators.common.throttle import Limits, Throttle

ALICE = Actor("u-alice", "Alice")


def _store() -> tuple[Store, list[Change]]:
    def stamp(table, row, actor, now, version, created):
        row["version"] = version
        row["modifiedby"] = actor.user_id

    store = Store(stamp)
    store.add_table("accounts", "accountid")
    heard: list[Change] = []
    store.listeners.append(heard.append)
    return store, heard


def test_every_write_gets_a_new_version_and_a_change_entry() -> None:
    store, heard = _store()
    table = store.table("accounts")
    row = table.insert({"name": "A"}, ALICE)
    v1 = table.version(row["accountid"])
    table.update(row["accountid"].upper(), {"name": "B", "city": "Oslo"}, ALICE)  # GUID keys ignore case
    assert table.version(row["accountid"]) > v1
    table.delete(row["accountid"], ALICE)
    assert [c.kind for c in heard] == ["created", "updated", "deleted"]
    assert heard[1].changed_fields == {"name", "city"}
    assert heard[1].before["name"] == "A" and heard[1].after["name"] == "B"
    with pytest.raises(RecordNotFound):
        table.get(row["accountid"])


def test_inserting_an_existing_key_fails() -> None:
    store, _ = _store()
    store.table("accounts").insert({"accountid": "k1"}, ALICE)
    with pytest.raises(RecordExists):
        store.table("accounts").insert({"accountid": "K1"}, ALICE)


def test_a_failed_transaction_leaves_no_trace_and_notifies_nobody() -> None:
    store, heard = _store()
    table = store.table("accounts")
    kept = table.insert({"name": "kept"}, ALICE)
    heard.clear()
    with pytest.raises(RuntimeError), store.transaction():
        table.insert({"name": "rolled back"}, ALICE)
        table.update(kept["accountid"], {"name": "changed"}, ALICE)
        raise RuntimeError("third operation failed")
    assert [r["name"] for r in table.all()] == ["kept"]
    assert heard == [] and store.changes_since(0)[-1].kind == "created"

    with store.transaction():
        table.insert({"name": "committed"}, ALICE)
    assert [c.after["name"] for c in heard] == ["committed"]


def test_tokens_are_issued_only_for_the_right_secret() -> None:
    identity = Identity([Client("app", "s3cret", "u-app", "App")])
    assert identity.issue("app", "wrong") is None
    assert identity.issue("ghost", "s3cret") is None
    token = identity.issue("app", "s3cret")
    assert identity.authenticate(f"Bearer {token}").user_id == "u-app"
    assert identity.authenticate("Bearer forged") is None
    assert identity.authenticate(None) is None


async def test_window_limit_refuses_with_a_retry_after() -> None:
    throttle = Throttle(Limits(window_requests=3, window_seconds=60))
    for _ in range(3):
        assert await throttle.acquire("u") is None
        await throttle.release("u", 1)
    rejection = await throttle.acquire("u")
    assert rejection is not None and rejection.kind == "requests" and 58 <= rejection.retry_after_s <= 60
    assert await throttle.acquire("someone else") is None  # limits are per user


async def test_business_central_style_queue_then_refusal() -> None:
    """5 processed at once, 2 more may wait; the 8th concurrent request is refused."""
    throttle = Throttle(Limits(max_concurrent=5, max_queued=2))
    admitted = [await throttle.acquire("u") for _ in range(5)]
    assert admitted == [None] * 5
    waiters = [asyncio.create_task(throttle.acquire("u")) for _ in range(2)]
    await asyncio.sleep(0)
    refused = await throttle.acquire("u")
    assert refused is not None and refused.kind == "concurrency"
    assert not any(w.done() for w in waiters)
    await throttle.release("u", 1)
    await throttle.release("u", 1)
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [None, None]


async def test_execution_time_limit() -> None:
    throttle = Throttle(Limits(window_execution_ms=100))
    assert await throttle.acquire("u") is None
    await throttle.release("u", 150)
    rejection = await throttle.acquire("u")
    assert rejection is not None and rejection.kind == "execution_time"


def test_key_index_follows_every_write_and_rollback() -> None:
    store, _ = _store()
    table = store.table("accounts")
    a = table.insert({"accountnumber": "A-1", "name": "A"}, ALICE)
    assert table.lookup(("accountnumber",), ("a-1",)) == [a]  # built on first use, case-insensitive
    b = table.insert({"accountnumber": "B-1"}, ALICE)
    table.update(a["accountid"], {"accountnumber": "A-2"}, ALICE)
    assert table.lookup(("accountnumber",), ("A-1",)) == []
    assert [r["accountid"] for r in table.lookup(("accountnumber",), ("A-2",))] == [a["accountid"]]
    table.delete(b["accountid"], ALICE)
    assert table.lookup(("accountnumber",), ("B-1",)) == []
    with pytest.raises(RuntimeError), store.transaction():
        table.insert({"accountnumber": "C-1"}, ALICE)
        raise RuntimeError("rolled back")
    assert table.lookup(("accountnumber",), ("C-1",)) == []
    assert [r["accountid"] for r in table.lookup(("accountnumber",), ("A-2",))] == [a["accountid"]]
