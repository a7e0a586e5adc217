"""JSON $batch: shapes, URL forms, the 100-operation limit, stop-at-first-error, continue-on-error,
`Isolation: snapshot` rollback, and per-operation latency injection."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from tests.emulators.business_central.conftest import API
from tests.emulators.business_central.test_reads import assert_error

BATCH = f"{API}$batch"


async def _batch(bc: httpx.AsyncClient, ops: list[dict[str, Any]], **headers: str) -> list[dict[str, Any]]:
    resp = await bc.post(BATCH, json={"requests": ops}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["responses"]


async def test_mixed_operations(bc: httpx.AsyncClient, company: str) -> None:
    rel = f"companies({company})"
    first = (await bc.get(f"{API}{rel}/customers", params={"$top": "1"})).json()["value"][0]
    ops = [
        {"method": "POST", "id": "c1", "url": f"{rel}/customers", "headers": {"Content-Type": "application/json"},
         "body": {"displayName": "Batch Customer"}},
        {"method": "PATCH", "id": "u1", "url": f"/{rel}/customers({first['id']})",
         "headers": {"If-Match": first["@odata.etag"]}, "body": {"city": "Oslo"}},
        {"method": "GET", "id": "g1", "url": f"http://bc.test{API}{rel}/customers({first['id']})"},
        {"method": "GET", "id": "g2", "url": f"{rel}/currencies?$filter=code eq 'EUR'&$select=code"},
    ]
    out = await _batch(bc, ops)
    assert [r["id"] for r in out] == ["c1", "u1", "g1", "g2"]
    assert [r["status"] for r in out] == [201, 200, 200, 200]
    assert out[0]["body"]["displayName"] == "Batch Customer"
    assert out[0]["headers"]["etag"] == out[0]["body"]["@odata.etag"]
    assert out[0]["headers"]["location"].endswith(f"customers({out[0]['body']['id']})")
    assert out[2]["body"]["city"] == "Oslo"
    assert out[3]["body"]["value"] == [{"@odata.etag": out[3]["body"]["value"][0]["@odata.etag"], "code": "EUR"}]
    created = await bc.get(f"{API}{rel}/customers({out[0]['body']['id']})")
    assert created.status_code == 200


async def test_delete_in_batch_has_no_body(bc: httpx.AsyncClient, base: str, company: str) -> None:
    row = (await bc.post(f"{base}vendors", json={"displayName": "Gone soon"})).json()
    out = await _batch(bc, [{"method": "DELETE", "id": "d", "url": f"companies({company})/vendors({row['id']})",
                             "headers": {"If-Match": row["@odata.etag"]}}])
    assert out[0]["status"] == 204 and "body" not in out[0]


async def test_more_than_100_operations_is_400(bc: httpx.AsyncClient, company: str) -> None:
    op = {"method": "GET", "url": f"companies({company})/currencies?$top=1"}
    assert_error(await bc.post(BATCH, json={"requests": [op] * 101}), 400, "BadRequest")
    out = await _batch(bc, [dict(op, id=str(i)) for i in range(100)])
    assert len(out) == 100 and {r["status"] for r in out} == {200}


async def test_malformed_batches_are_400(bc: httpx.AsyncClient) -> None:
    assert_error(await bc.post(BATCH, json={"nope": []}), 400, "BadRequest")
    assert_error(await bc.post(BATCH, json={"requests": [{"method": "BREW", "url": "companies"}]}), 400, "BadRequest")
    assert_error(await bc.get(BATCH), 405, "BadRequest_MethodNotAllowed")


async def test_operation_errors_are_reported_per_operation(bc: httpx.AsyncClient, company: str) -> None:
    out = await _batch(bc, [{"method": "GET", "id": "x", "url": f"companies({company})/nothing"},
                            {"method": "GET", "id": "y", "url": "http://elsewhere.test/v2.0/t/e/api/v2.0/companies"}],
                       Prefer="odata.continue-on-error")
    assert [r["status"] for r in out] == [404, 400]
    assert out[0]["body"]["error"]["code"] == "BadRequest_NotFound"


async def test_default_stops_at_first_failure_and_keeps_earlier_changes(bc: httpx.AsyncClient, company: str,
                                                                        base: str) -> None:
    rel = f"companies({company})/customers"
    ops = [{"method": "POST", "id": "1", "url": rel, "body": {"displayName": "Kept"}},
           {"method": "POST", "id": "2", "url": rel, "body": {"displayName": "Bad", "blocked": "Never"}},
           {"method": "POST", "id": "3", "url": rel, "body": {"displayName": "Never run"}}]
    out = await _batch(bc, ops)
    assert [(r["id"], r["status"]) for r in out] == [("1", 201), ("2", 400)]
    names = {r["displayName"] for r in (await bc.get(f"{base}customers")).json()["value"]}
    assert "Kept" in names and "Never run" not in names


async def test_continue_on_error_runs_everything(bc: httpx.AsyncClient, company: str, base: str) -> None:
    rel = f"companies({company})/customers"
    ops = [{"method": "POST", "id": "1", "url": rel, "body": {"displayName": "One"}},
           {"method": "PATCH", "id": "2", "url": f"{rel}({company})", "body": {}, "headers": {"If-Match": "*"}},
           {"method": "POST", "id": "3", "url": rel, "body": {"displayName": "Three"}}]
    out = await _batch(bc, ops, Prefer="odata.continue-on-error")
    assert [r["status"] for r in out] == [201, 404, 201]


async def test_patch_in_batch_needs_if_match(bc: httpx.AsyncClient, company: str, base: str) -> None:
    row = (await bc.get(f"{base}customers", params={"$top": "1"})).json()["value"][0]
    out = await _batch(bc, [{"method": "PATCH", "url": f"companies({company})/customers({row['id']})",
                             "body": {"city": "Nowhere"}}])
    assert out[0]["status"] == 400 and out[0]["body"]["error"]["code"] == "BadRequest_InvalidToken"


async def test_snapshot_failure_rolls_back_everything(bc: httpx.AsyncClient, company: str, base: str) -> None:
    rel = f"companies({company})/customers"
    row = (await bc.get(f"{base}customers", params={"$top": "1"})).json()["value"][0]
    before = (await bc.get(f"{base}customers", params={"$count": "true"})).json()
    ops = [{"method": "POST", "id": "1", "url": rel, "body": {"displayName": "Rolled back"}},
           {"method": "PATCH", "id": "2", "url": f"{rel}({row['id']})", "headers": {"If-Match": row["@odata.etag"]},
            "body": {"displayName": "Also rolled back"}},
           {"method": "POST", "id": "3", "url": rel, "body": {"currencyCode": "XXX"}},
           {"method": "POST", "id": "4", "url": rel, "body": {"displayName": "Not run"}}]
    out = await _batch(bc, ops, Isolation="snapshot")
    # As in BC's documented example: earlier operations report what they did, the failing one its error.
    assert [r["status"] for r in out] == [201, 200, 400]
    after = (await bc.get(f"{base}customers", params={"$count": "true"})).json()
    assert after["@odata.count"] == before["@odata.count"]
    assert {r["displayName"] for r in after["value"]} == {r["displayName"] for r in before["value"]}
    same = (await bc.get(f"{base}customers({row['id']})")).json()
    assert same["@odata.etag"] == row["@odata.etag"] and same["displayName"] == row["displayName"]
    # The rolled-back number is free again, as in a database transaction.
    made = (await bc.post(f"{base}customers", json={"displayName": "After"})).json()
    assert made["number"] == out[0]["body"]["number"]


async def test_snapshot_success_commits(bc: httpx.AsyncClient, company: str, base: str) -> None:
    rel = f"companies({company})/customers"
    out = await _batch(bc, [{"method": "POST", "id": str(i), "url": rel, "body": {"displayName": f"Snap {i}"}}
                            for i in range(3)], Isolation="snapshot")
    assert [r["status"] for r in out] == [201, 201, 201]
    found = (await bc.get(f"{base}customers", params={"$filter": "startswith(displayName, 'Snap ')"})).json()
    assert len(found["value"]) == 3


async def test_batch_op_latency_is_applied_per_operation(app: Starlette, bc: httpx.AsyncClient,
                                                         company: str) -> None:
    calls = 0
    injector = app.state.emulator.faults

    async def counting() -> None:
        nonlocal calls
        calls += 1

    injector.batch_op_delay = counting
    await _batch(bc, [{"method": "GET", "url": f"companies({company})/currencies"}] * 7)
    assert calls == 7
