"""Identity, service protection, injected faults, admin routes, seed data and the standalone entry point."""

from __future__ import annotations

import argparse
import asyncio

import httpx
import pytest

from emulators.common.faults import Faults
from emulators.common.throttle import Limits
from emulators.dataverse.__main__ import build
from emulators.dataverse.core import Emulator, user_id_for
from tests.emulators.dataverse.conftest import API, make_app


async def test_missing_or_bad_token_is_401_with_bearer_challenge(anon: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        r = await anon.get(f"{API}/accounts", headers=headers)
        assert r.status_code == 401 and r.content == b""
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer authorization_uri=") and "/oauth2/authorize" in challenge


async def test_token_endpoint_refuses_wrong_secret(anon: httpx.AsyncClient) -> None:
    r = await anon.post("/tenant/oauth2/v2.0/token", data={"grant_type": "client_credentials", "scope": "x",
                                                          "client_id": "dualsync-integration", "client_secret": "no"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_each_client_is_a_seeded_systemuser(dv: httpx.AsyncClient, emu: Emulator) -> None:
    users = {u["systemuserid"]: u for u in (await dv.get("systemusers")).json()["value"]}
    app_user = users[user_id_for("dualsync-integration")]
    assert app_user["fullname"] == "# dualsync" and app_user["applicationid"] and app_user["accessmode"] == 4
    assert app_user["azureactivedirectoryobjectid"]
    for client_id in ("dv-sales-anna", "dv-sales-ben"):
        assert users[user_id_for(client_id)]["islicensed"] is True


@pytest.mark.parametrize("settings_overrides", [{"limits": Limits(window_requests=3, window_seconds=300)}])
async def test_request_limit_answers_429_with_retry_after(dv: httpx.AsyncClient, login) -> None:
    for _ in range(3):
        assert (await dv.get("accounts?$top=1")).status_code == 200
    r = await dv.get("accounts?$top=1")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"] == {"code": "0x80072322", "message": "Number of requests exceeded the limit of 3 over "
                                 "time window of 300 seconds."}
    other = await login("dv-sales-anna")  # limits are per user
    assert (await other.get("accounts?$top=1")).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"limits": Limits(max_concurrent=2),
                                                 "faults": Faults(latency_ms=150)}])
async def test_concurrency_limit_answers_429(dv: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*(dv.get("accounts?$top=1") for _ in range(5)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 429, 429, 429]
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json()["error"]["code"] == "0x80072326" and refused.headers["Retry-After"] == "1"


@pytest.mark.parametrize("settings_overrides", [{"limits": Limits(window_execution_ms=1),
                                                 "faults": Faults(latency_ms=20)}])
async def test_execution_time_limit_answers_429(dv: httpx.AsyncClient) -> None:
    assert (await dv.get("accounts?$top=1")).status_code == 200
    r = await dv.get("accounts?$top=1")
    assert r.status_code == 429 and r.json()["error"]["code"] == "0x80072321"


async def test_injected_faults_through_admin_config(dv: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    r = await anon.patch("/_admin/config", json={"faults": {"error_ratio": 1.0, "error_status": 503}})
    assert r.status_code == 200
    r = await dv.get("accounts")
    assert r.status_code == 503 and r.json()["error"]["code"].startswith("0x") and r.headers["Retry-After"]
    await anon.patch("/_admin/config", json={"faults": {"error_ratio": 0.0}})
    assert (await dv.get("accounts")).status_code == 200
    assert (await anon.patch("/_admin/config", json={"faults": {"error_ratio": 2}})).status_code == 400


async def test_batch_op_latency_is_applied_per_operation(dv: httpx.AsyncClient, emu: Emulator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.emulators.dataverse.test_batch import batch, op

    calls = 0
    original = emu.faults.batch_op_delay

    async def counting() -> None:
        nonlocal calls
        calls += 1
        await original()

    monkeypatch.setattr(emu.faults, "batch_op_delay", counting)
    body, headers = batch([op("GET", "accounts?$top=1")] * 4 + [[op("POST", "accounts", {"name": "x"}, "1")]])
    assert (await dv.post("$batch", content=body, headers=headers)).status_code == 200
    assert calls == 5


async def test_admin_reset_is_deterministic(anon: httpx.AsyncClient, emu: Emulator) -> None:
    def snapshot() -> list[tuple[str, str, str]]:
        return sorted((a["accountid"], a["name"], a["accountnumber"]) for a in emu.store.table("accounts").all())

    counts = (await anon.post("/_admin/reset", json={"records": 12, "seed": 7})).json()
    assert counts["accounts"] == 12 and counts["contacts"] == 12
    first = snapshot()
    await anon.post("/_admin/reset", json={"records": 12, "seed": 7})
    assert snapshot() == first
    await anon.post("/_admin/reset", json={"records": 12, "seed": 8})
    assert snapshot() != first


def test_seed_is_realistic_and_same_for_same_seed() -> None:
    a = make_app(records=30, seed=3).state.emulator
    b = make_app(records=30, seed=3).state.emulator
    rows_a = sorted(r["accountid"] for r in a.store.table("accounts").all())
    assert rows_a == sorted(r["accountid"] for r in b.store.table("accounts").all())
    accounts = list(a.store.table("accounts").all())
    assert sum(r["customertypecode"] == 3 for r in accounts) > len(accounts) // 2
    contacts = list(a.store.table("contacts").all())
    ids = {r["accountid"] for r in accounts}
    assert all(c["_parentcustomerid_value"] in ids for c in contacts)
    assert len({c["emailaddress1"] for c in contacts}) == len(contacts)


def test_cli_build_applies_options() -> None:
    args = argparse.Namespace(records=3, seed=2, latency_ms=5.0, batch_op_latency_ms=1.0, error_ratio=0.0,
                              timeout_ratio=0.0, no_throttle=True)
    emu = build(args).state.emulator
    assert len(emu.store.table("accounts")) == 3
    assert emu.throttle.limits.enabled is False and emu.faults.faults.latency_ms == 5.0
