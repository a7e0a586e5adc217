"""DataverseConnector against the Dataverse emulator (in-process): reads, writes, upserts, batches, headers."""

from __future__ import annotations

import datetime as dt

import pytest
from starlette.applications import Starlette

from shared.connectors.base import Aborted, AlreadyExists, ConcurrencyConflict, NotFound, PermanentError, WriteOp
from shared.connectors.dataverse import DataverseConnector
from tests.support.connectors import Sent

ODATA = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


def _rows(app: Starlette, table: str) -> dict[str, dict]:
    key = app.state.emulator.tables[table].key
    return {r[key]: r for r in app.state.emulator.store.table(table).all()}


async def _all(dv: DataverseConnector, entity: str, **kwargs) -> list:
    return [r async for page in dv.list(entity, **kwargs) for r in page]


async def test_list_pages_and_metadata(dv: DataverseConnector, dv_app: Starlette, sent: Sent) -> None:
    pages = [p async for p in dv.list("accounts", select=["name", "accountnumber"], page_size=4)]
    records = [r for p in pages for r in p]
    stored = _rows(dv_app, "accounts")
    assert len(stored) > 8 and {r.id for r in records} == set(stored) and len(records) == len(stored)
    assert len(pages) == -(-len(stored) // 4)
    for r in records:
        assert r.values["name"] == stored[r.id]["name"] and r.etag == f'W/"{stored[r.id]["versionnumber"]}"'
        assert r.modified_on and r.modified_on.tzinfo and r.modified_by == stored[r.id]["_modifiedby_value"]
        assert not any(k.startswith("@odata") for k in r.values)
    for request in sent.to("/accounts", "GET"):
        assert all(request.headers[k] == v for k, v in ODATA.items())
        assert request.headers["Prefer"] == "odata.maxpagesize=4"


async def test_get_and_not_found(dv: DataverseConnector, dv_app: Starlette) -> None:
    rid, row = next(iter(_rows(dv_app, "accounts").items()))
    got = await dv.get("accounts", rid, select=["name"])
    assert got.values["name"] == row["name"] and got.modified_by == row["_modifiedby_value"]
    with pytest.raises(NotFound) as info:
        await dv.get("accounts", "00000000-0000-0000-0000-0000000000ff")
    assert info.value.code == "0x80040217"


async def test_crud_with_etags_and_binds(dv: DataverseConnector, dv_app: Starlette, sent: Sent) -> None:
    currency = next(iter(_rows(dv_app, "transactioncurrencies")))
    created = await dv.create("accounts", {"name": "Fabrikam", "accountnumber": "F-1",
                                            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({currency})"})
    assert created.values["_transactioncurrencyid_value"] == currency and created.etag
    assert sent.requests[-1].headers["Prefer"] == "return=representation"
    updated = await dv.update("accounts", created.id, {"telephone1": "555"}, etag=created.etag)
    assert updated.values["telephone1"] == "555" and updated.etag != created.etag
    with pytest.raises(ConcurrencyConflict) as stale:
        await dv.update("accounts", created.id, {"telephone1": "stale"}, etag=created.etag)
    assert stale.value.status == 412
    with pytest.raises(ConcurrencyConflict):
        await dv.delete("accounts", created.id, etag=created.etag)
    await dv.delete("accounts", created.id, etag=updated.etag)
    await dv.delete("accounts", created.id)  # already gone: success
    # An update never re-creates a deleted record (PATCH without If-Match would be an upsert).
    with pytest.raises(NotFound):
        await dv.update("accounts", created.id, {"name": "Zombie"})
    assert created.id not in _rows(dv_app, "accounts")


async def test_upsert_by_alternate_key(dv: DataverseConnector, dv_app: Starlette) -> None:
    key = {"accountnumber": "O'Neil/42 & #1"}
    with pytest.raises(NotFound):
        await dv.upsert("accounts", key, {"name": "Nobody"}, update_only=True)
    first = await dv.upsert("accounts", key, {"name": "O'Neil"}, create_only=True)
    assert first.values["accountnumber"] == key["accountnumber"]
    with pytest.raises(AlreadyExists):
        await dv.upsert("accounts", key, {"name": "Again"}, create_only=True)
    second = await dv.upsert("accounts", key, {"name": "O'Neil Ltd"})
    third = await dv.upsert("accounts", key, {"telephone1": "1"}, update_only=True)
    assert first.id == second.id == third.id and third.values["name"] == "O'Neil Ltd"
    assert sum(r["accountnumber"] == key["accountnumber"] for r in _rows(dv_app, "accounts").values()) == 1
    with pytest.raises(PermanentError, match="both"):
        await dv.upsert("accounts", key, {}, create_only=True, update_only=True)
    with pytest.raises(PermanentError):  # not an alternate key defined on the table
        await dv.upsert("accounts", {"name": "x"}, {"telephone1": "2"})


async def test_changed_since_uses_second_literal(dv: DataverseConnector, dv_app: Starlette, sent: Sent) -> None:
    rows = list(_rows(dv_app, "accounts").values())
    for row in rows[: len(rows) // 2]:
        row["modifiedon"] = "2020-06-01T00:00:00Z"  # back-date half of them in the fake's store
    recent = {r["accountid"] for r in rows[len(rows) // 2:]}
    since = dt.datetime(2021, 1, 1, 1, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    got = [r async for p in dv.list_changed_since("accounts", since, select=["name"], page_size=2) for r in p]
    assert {r.id for r in got} == recent and len(got) == len(recent)
    expected = "$filter=modifiedon%20gt%202021-01-01T00:00:00Z&$orderby=modifiedon%20asc"
    assert expected in str(sent.to("modifiedon")[0].url)
    named = rows[-1]["name"]
    both = [r async for p in dv.list_changed_since("accounts", since, filter=f"name eq '{named}'") for r in p]
    assert [r.values["name"] for r in both] == [named]


async def test_batch_partial_failure(dv: DataverseConnector, dv_app: Starlette, sent: Sent) -> None:
    dv.batch_size = 4
    existing = await dv.create("accounts", {"name": "Existing", "accountnumber": "E-1"})
    ops = [WriteOp("create", "accounts", {"name": f"B{i}"}, ref=str(i)) for i in range(3)]
    ops += [WriteOp("update", "accounts", {"nosuch": 1}, id=existing.id, ref="bad"),
            WriteOp("upsert", "accounts", {"name": "dup"}, key={"accountnumber": "E-1"}, upsert_mode="create_only",
                    ref="dup"),
            WriteOp("upsert", "accounts", {"name": "New by key"}, key={"accountnumber": "N-1"}, ref="new"),
            WriteOp("update", "accounts", {"telephone1": "9"}, id=existing.id, etag=existing.etag, ref="upd"),
            WriteOp("delete", "accounts", id="00000000-0000-0000-0000-0000000000ff", ref="gone"),
            WriteOp("update", "accounts", {}, ref="no id")]
    results = await dv.write_batch(ops)
    assert [r.op.ref for r in results] == [op.ref for op in ops]
    assert [r.ok for r in results] == [True, True, True, False, False, True, True, True, False]
    assert isinstance(results[3].error, PermanentError) and isinstance(results[4].error, AlreadyExists)
    assert results[8].error.code == "InvalidArgument"  # type: ignore[union-attr]
    assert results[6].record and results[6].record.values["telephone1"] == "9"
    assert results[5].record and results[5].record.values["accountnumber"] == "N-1"
    batches = sent.to("$batch", "POST")
    assert len(batches) == 2 and all(b.headers["Prefer"] == "odata.continue-on-error" for b in batches)
    assert {r.record.values["name"] for r in results[:3] if r.record} == {"B0", "B1", "B2"}


async def test_atomic_change_set_rolls_back(dv: DataverseConnector, dv_app: Starlette) -> None:
    count = len(_rows(dv_app, "accounts"))
    ops = [WriteOp("create", "accounts", {"name": "A1"}), WriteOp("create", "accounts", {"name": "A2", "bogus": 1}),
           WriteOp("create", "accounts", {"name": "A3"})]
    results = await dv.write_batch(ops, atomic=True)
    assert [type(r.error) for r in results] == [Aborted, PermanentError, Aborted]
    assert len(_rows(dv_app, "accounts")) == count
    ok = await dv.write_batch(ops[::2], atomic=True)
    assert all(r.ok and r.record and r.record.etag for r in ok)
    assert len(_rows(dv_app, "accounts")) == count + 2
    # An invalid op in an atomic set: nothing is sent, the valid ones are reported as not applied.
    mixed = await dv.write_batch([ops[0], WriteOp("delete", "accounts")], atomic=True)
    assert [type(r.error) for r in mixed] == [Aborted, PermanentError]
    assert len(_rows(dv_app, "accounts")) == count + 2


def test_satisfies_the_connector_protocol_and_names_keys(dv: DataverseConnector) -> None:
    from shared.connectors.base import Connector

    assert isinstance(dv, Connector) and dv.supports_upsert
    assert [dv.primary_key(e) for e in ("accounts", "contacts", "transactioncurrencies", "opportunities")] == [
        "accountid", "contactid", "transactioncurrencyid", "opportunityid"]
    assert dv.url("accounts", key={"accountnumber": "A'1"}).endswith("/api/data/v9.2/accounts(accountnumber='A''1')")
    with pytest.raises(ValueError, match="batch_size"):
        DataverseConnector(dv.svc.http, dv.svc.auth.credential, base_url="https://x", batch_size=1001)
