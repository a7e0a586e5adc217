"""Throughput of the Business Central emulator over real HTTP.

Starts `python -m emulators.business_central` (uvicorn, latency 0, throttling off) on a free port in a
subprocess, so the load generator here does not share its interpreter, then measures single GETs by id with a
few concurrent clients and 100-operation JSON `$batch` requests (GET and PATCH operations).

    .venv/bin/python -m bench.emulator_business_central [--records 500] [--concurrency 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.standalone import standalone_emulator
from emulators.business_central.settings import BusinessCentralSettings

S = BusinessCentralSettings()
API = f"/v2.0/{S.tenant_id}/{S.environment}/api/v2.0/"


async def run_for(seconds: float, workers: int, op: Callable[[int], Awaitable[None]]) -> tuple[int, float]:
    """Run `op` in `workers` loops for about `seconds`; (completed calls, elapsed seconds)."""
    done = 0
    stop = time.monotonic() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        for i in itertools.count():
            if time.monotonic() >= stop:
                return
            await op(w * 1_000_000 + i)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done, time.monotonic() - started


async def measure(url: str, concurrency: int, seconds: float) -> list[tuple[str, int, float, float]]:
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        tok = (await http.post(f"/{S.tenant_id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": "dualsync-integration",
            "client_secret": "dualsync-integration-secret", "scope": "bench"})).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {tok}"
        companies = (await http.get(f"{API}companies", params={"$filter": "name eq 'CRONUS USA, Inc.'"})).json()
        company = companies["value"][0]["id"]
        base = f"{API}companies({company})/"
        ids = [r["id"] for r in (await http.get(f"{base}customers", params={"$select": "id"})).json()["value"]]

        async def get_one(i: int) -> None:
            resp = await http.get(f"{base}customers({ids[i % len(ids)]})")
            assert resp.status_code == 200, resp.text

        def batch_of(i: int, method: str) -> list[dict[str, object]]:
            ops: list[dict[str, object]] = []
            for n in range(100):
                rid = ids[(i * 100 + n) % len(ids)]
                url = f"companies({company})/customers({rid})"
                op: dict[str, object] = {"method": method, "id": str(n), "url": url}
                if method == "PATCH":
                    op.update(headers={"If-Match": "*"}, body={"phoneNumber": f"+45 {i % 10000:04d} {n:04d}"})
                ops.append(op)
            return ops

        def batch(method: str) -> Callable[[int], Awaitable[None]]:
            async def run(i: int) -> None:
                resp = await http.post(f"{API}$batch", json={"requests": batch_of(i, method)})
                assert resp.status_code == 200 and all(r["status"] == 200 for r in resp.json()["responses"])
            return run

        rows = []
        for label, workers, op, per_call in [
            ("GET customers(id)", concurrency, get_one, 1),
            ("$batch 100 × GET", max(concurrency // 2, 1), batch("GET"), 100),
            ("$batch 100 × PATCH", max(concurrency // 2, 1), batch("PATCH"), 100),
        ]:
            await op(0)  # warm up
            calls, elapsed = await run_for(seconds, workers, op)
            rows.append((label, workers, calls / elapsed, calls * per_call / elapsed))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with standalone_emulator("business_central", "--records", str(args.records)) as url:
        rows = asyncio.run(measure(url, args.concurrency, args.seconds))
    print(f"Business Central emulator, {args.records} customers, {args.seconds:g} s per scenario")
    print(f"{'scenario':<22}{'clients':>8}{'requests/s':>12}{'operations/s':>14}")
    for label, workers, rps, ops in rows:
        print(f"{label:<22}{workers:>8}{rps:>12.1f}{ops:>14.1f}")


if __name__ == "__main__":
    main()
