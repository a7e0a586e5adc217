"""Service protection, injected faults, admin routes, seed determinism and the standalone entry point."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import pytest
from starlette.applications import Starlette

from emulators.business_central import create_app
from emulators.common.faults import Faults
from emulators.common.server import free_port
from tests.emulators.business_central.conftest import API, make_settings, token
from tests.emulators.business_central.test_reads import assert_error


def _rows(app: Starlette, table: str) -> list[dict[str, object]]:
    skip = {"@odata.etag", "lastModifiedDateTime", "systemModifiedAt", "systemCreatedAt"}  # times of seeding
    rows = app.state.emulator.store.table(table).all()
    return sorted(({k: v for k, v in r.items() if k not in skip} for r in rows), key=lambda r: str(r["id"]))


async def test_429_under_load_without_retry_after(anon: httpx.AsyncClient, app: Starlette) -> None:
    env = app.state.emulator
    env.throttle.limits = env.throttle.limits.model_copy(update={"max_concurrent": 2, "max_queued": 3})
    env.faults.reconfigure(Faults(latency_ms=50))
    anon.headers["Authorization"] = f"Bearer {await token(anon)}"
    answers = await asyncio.gather(*(anon.get(f"{API}companies") for _ in range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 5 and statuses.count(429) == 7  # 2 in flight + 3 queued, the rest refused
    refused = next(r for r in answers if r.status_code == 429)
    assert_error(refused, 429, "Application_TooManyRequests")
    assert "Retry-After" not in refused.headers


async def test_throttling_is_per_user(anon: httpx.AsyncClient, app: Starlette) -> None:
    env = app.state.emulator
    env.throttle.limits = env.throttle.limits.model_copy(update={"window_requests": 2})
    integration, annie = await token(anon), await token(anon, "bc-user-annie")
    as_integration = {"Authorization": f"Bearer {integration}"}
    for _ in range(2):
        assert (await anon.get(f"{API}companies", headers=as_integration)).status_code == 200
    assert_error(await anon.get(f"{API}companies", headers=as_integration), 429, "Application_TooManyRequests")
    assert (await anon.get(f"{API}companies", headers={"Authorization": f"Bearer {annie}"})).status_code == 200


@pytest.mark.parametrize(("status", "retry_after"), [(503, True), (502, True), (500, False)])
async def test_injected_faults(bc: httpx.AsyncClient, status: int, retry_after: bool) -> None:
    resp = await bc.patch("/_admin/config", json={"faults": {"error_ratio": 1.0, "error_status": status}})
    assert resp.status_code == 200 and resp.json()["faults"]["error_ratio"] == 1.0
    answer = await bc.get(f"{API}companies")
    assert answer.status_code == status and "CorrelationId" in answer.json()["error"]["message"]
    assert ("Retry-After" in answer.headers) is retry_after
    await bc.patch("/_admin/config", json={"faults": {"error_ratio": 0.0}})
    assert (await bc.get(f"{API}companies")).status_code == 200


async def test_injected_timeout_is_504(bc: httpx.AsyncClient) -> None:
    await bc.patch("/_admin/config", json={"faults": {"timeout_ratio": 1.0, "timeout_seconds": 0.01}})
    assert_error(await bc.get(f"{API}companies"), 504, "GatewayTimeout")


async def test_admin_config_rejects_bad_values(bc: httpx.AsyncClient) -> None:
    assert (await bc.patch("/_admin/config", json={"faults": {"error_ratio": 2}})).status_code == 400


async def test_admin_reset_reseeds(bc: httpx.AsyncClient, app: Starlette, base: str) -> None:
    await bc.post(f"{base}customers", json={"displayName": "Temporary"})
    counts = (await bc.post("/_admin/reset", json={"records": 10, "seed": 7})).json()
    assert counts["customers"] == 10 + 2 and counts["subscriptions"] == 0
    company = next(r["id"] for r in app.state.emulator.store.table("companies").all()
                   if r["name"] == "CRONUS USA, Inc.")
    names = {r["displayName"] for r in (await bc.get(f"{API}companies({company})/customers")).json()["value"]}
    assert "Temporary" not in names and len(names) <= 10


def test_seed_is_deterministic() -> None:
    one, two = create_app(make_settings(seed=3)), create_app(make_settings(seed=3))
    other = create_app(make_settings(seed=4))
    for table in ("companies", "customers", "contacts", "items", "salesOrderLines"):
        assert _rows(one, table) == _rows(two, table)
    assert _rows(one, "customers") != _rows(other, "customers")
    bigger = create_app(make_settings(records=60))
    usa = next(r["id"] for r in bigger.state.emulator.store.table("companies").all() if r["name"] == "CRONUS USA, Inc.")
    assert len(list(bigger.state.emulator.rows("customers", usa))) == 60


def test_standalone_cli_serves_the_api() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "emulators.business_central", "--port", str(port),
                             "--records", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                with httpx.Client(base_url=url) as http:
                    tok = http.post(f"/{API.split('/')[2]}/oauth2/v2.0/token", data={
                        "grant_type": "client_credentials", "client_id": "dualsync-integration",
                        "client_secret": "dualsync-integration-secret", "scope": "x"}).json()["access_token"]
                    resp = http.get(f"{API}companies", headers={"Authorization": f"Bearer {tok}"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert resp.status_code == 200 and len(resp.json()["value"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
