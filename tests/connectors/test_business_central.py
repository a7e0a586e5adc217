"""BusinessCentralConnector against the BC emulator (in-process): reads, writes, etags, batches, headers."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from starlette.applications import Starlette

from shared.connectors.base import Aborted, ConcurrencyConflict, NotFound, PermanentError, WriteOp
from shared.connectors.business_central import BusinessCentralConnector
from tests.support.connectors import Sent


async def _all(bc: BusinessCentralConnector, entity: str, **kwargs) -> list:
    return [r async for page in bc.list(entity, **kwargs) for r in page]


async def test_list_follows_every_page_with_the_page_size_preference(bc: BusinessCentralConnector,
                                                                     sent: Sent) -> None:
    pages = [page async for page in bc.list("customers", select=["number", "displayName"], page_size=5)]
    records = [r for page in pages for r in page]
    expected = len([r async for p in bc.list("customers", page_size=1000) for r in p])
    assert expected > 10 and len(records) == expected and len(pages) == -(-expected // 5)
    assert len({r.id for r in records}) == expected
    assert all(set(r.values) == {"id", "number", "displayName", "lastModifiedDateTime"} for r in records)
    assert all(r.etag and r.modified_on and r.modified_on.tzinfo for r in records)
    gets = sent.to("/customers", "GET")
    assert all(r.headers["Prefer"] == "odata.maxpagesize=5" and r.headers["Accept"] == "application/json"
               for r in gets[:len(pages)])
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in gets)


async def test_filter_and_get(bc: BusinessCentralConnector) -> None:
    first = (await _all(bc, "customers"))[0]
    number = first.values["number"]
    found = await _all(bc, "customers", filter=f"number eq '{number}'")
    assert [r.id for r in found] == [first.id]
    got = await bc.get("customers", first.id, select=["displayName"])
    assert got.id == first.id and got.etag == first.etag and set(got.values) >= {"displayName", "id"}
    with pytest.raises(NotFound):
        await bc.get("customers", "00000000-0000-0000-0000-0000000000ff")


async def test_crud_with_etags(bc: BusinessCentralConnector, sent: Sent) -> None:
    created = await bc.create("customers", {"displayName": "Contoso 'Quotes' & Co", "city": "Oslo"})
    assert created.values["displayName"] == "Contoso 'Quotes' & Co" and created.etag
    updated = await bc.update("customers", created.id, {"city": "Bergen"}, etag=created.etag)
    assert updated.values["city"] == "Bergen" and updated.etag != created.etag
    with pytest.raises(ConcurrencyConflict) as stale:
        await bc.update("customers", created.id, {"city": "Stale"}, etag=created.etag)
    assert stale.value.code == "Request_EntityChanged"
    forced = await bc.update("customers", created.id, {"city": "Trondheim"})  # no etag → If-Match: *
    assert forced.values["city"] == "Trondheim"
    with pytest.raises(ConcurrencyConflict):
        await bc.delete("customers", created.id, etag=updated.etag)
    await bc.delete("customers", created.id, etag=forced.etag)
    await bc.delete("customers", created.id)  # already gone: success
    with pytest.raises(NotFound):
        await bc.get("customers", created.id)
    if_match = [r.headers.get("If-Match") for r in sent.requests if r.method in ("PATCH", "DELETE")]
    assert all(if_match) and "*" in if_match  # BC refuses PATCH/DELETE without If-Match


async def test_validation_errors_are_permanent_and_name_the_problem(bc: BusinessCentralConnector) -> None:
    with pytest.raises(PermanentError) as info:
        await bc.create("customers", {"displayName": "X", "noSuchField": 1})
    assert info.value.status == 400 and "noSuchField" in info.value.message
    with pytest.raises(PermanentError, match="not a GUID"):
        await bc.get("customers", "C00010")
    with pytest.raises(PermanentError, match="no alternate keys") as upsert:
        await bc.upsert("customers", {"number": "C1"}, {"displayName": "X"})
    assert upsert.value.code == "NotSupported" and bc.supports_upsert is False


async def test_changed_since_uses_millisecond_literal(bc: BusinessCentralConnector, sent: Sent) -> None:
    before = await _all(bc, "customers")
    mark = max(r.modified_on for r in before)
    await asyncio.sleep(0.005)
    fresh = [await bc.create("customers", {"displayName": f"Fresh {i}"}) for i in range(3)]
    changed = [r async for page in bc.list_changed_since("customers", mark, page_size=2) for r in page]
    assert sorted(r.id for r in changed) == sorted(r.id for r in fresh)  # nothing at or before the mark
    stamps = [r.modified_on for r in changed]
    assert stamps == sorted(stamps)  # oldest first (ties within a millisecond in any order)
    literal = mark.strftime("%Y-%m-%dT%H:%M:%S.") + f"{mark.microsecond // 1000:03d}Z"
    url = str(sent.to("lastModifiedDateTime")[0].url)
    assert f"$filter=lastModifiedDateTime%20gt%20{literal}&$orderby=lastModifiedDateTime%20asc" in url
    later = mark.astimezone(dt.timezone(dt.timedelta(hours=5)))  # same instant, other zone
    assert len([r async for p in bc.list_changed_since("customers", later) for r in p]) == 3


async def test_batch_partial_failure_gives_one_result_per_op(bc: BusinessCentralConnector, sent: Sent) -> None:
    bc.batch_size = 3
    victim = await bc.create("customers", {"displayName": "Victim"})
    ops = [WriteOp("create", "customers", {"displayName": f"B{i}"}, ref=f"r{i}") for i in range(4)]
    ops.insert(2, WriteOp("update", "customers", {"nonsense": 1}, id=victim.id, ref="bad"))
    ops.append(WriteOp("delete", "customers", id=victim.id, etag=victim.etag, ref="del"))
    ops.append(WriteOp("delete", "customers", id="00000000-0000-0000-0000-0000000000ff", ref="gone"))
    ops.append(WriteOp("upsert", "customers", {"displayName": "U"}, key={"number": "X"}, ref="upsert"))
    results = await bc.write_batch(ops)
    assert [r.op.ref for r in results] == [op.ref for op in ops]
    assert [r.ok for r in results] == [True, True, False, True, True, True, True, False]
    assert isinstance(results[2].error, PermanentError) and "nonsense" in results[2].error.message
    assert results[7].error.code == "NotSupported"  # type: ignore[union-attr]
    names = {r.record.values["displayName"] for r in results[:5] if r.record}
    assert names == {"B0", "B1", "B2", "B3"}
    assert len(sent.to("$batch", "POST")) == 3  # 7 sendable ops in chunks of 3
    assert all(r.headers["Prefer"] == "odata.continue-on-error" for r in sent.to("$batch"))
    with pytest.raises(NotFound):
        await bc.get("customers", victim.id)


async def test_atomic_batch_rolls_back_everything(bc: BusinessCentralConnector, bc_app: Starlette,
                                                  sent: Sent) -> None:
    count = len(bc_app.state.emulator.store.table("customers"))
    ops = [WriteOp("create", "customers", {"displayName": "Atomic 1"}),
           WriteOp("create", "customers", {"displayName": "Atomic 2", "blocked": "Nope"}),
           WriteOp("create", "customers", {"displayName": "Atomic 3"})]
    results = await bc.write_batch(ops, atomic=True)
    assert [type(r.error) for r in results] == [Aborted, PermanentError, Aborted]
    assert len(bc_app.state.emulator.store.table("customers")) == count
    assert sent.to("$batch")[-1].headers["Isolation"] == "snapshot"
    ok = await bc.write_batch(ops[::2], atomic=True)
    assert all(r.ok and r.record for r in ok)
    assert len(bc_app.state.emulator.store.table("customers")) == count + 2
    with pytest.raises(ValueError, match="exceeds the batch size"):
        await bc.write_batch([ops[0]] * 101, atomic=True)


def test_satisfies_the_connector_protocol(bc: BusinessCentralConnector) -> None:
    from shared.connectors.base import Connector

    assert isinstance(bc, Connector) and bc.modified_field == "lastModifiedDateTime"
    with pytest.raises(ValueError, match="batch_size"):
        BusinessCentralConnector(bc.svc.http, bc.svc.auth.credential, tenant_id="t", environment="e",
                                 company_id=bc.company_id, batch_size=101)
