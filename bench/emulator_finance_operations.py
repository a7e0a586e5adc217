"""Throughput of the Finance and Operations emulator over real HTTP: `python -m bench.emulator_finance_operations`.

Starts `python -m emulators.finance_operations` (uvicorn) on a free port with no injected latency and throttling
off, then measures single-record GETs by composite key (`CustomersV3(dataAreaId='usmf',CustomerAccount='…')`)
from a few concurrent clients, and 100-operation multipart `$batch` requests (PATCH updates; plain and as one
atomic change set). Prints requests/s and operations/s."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import httpx

from bench.standalone import standalone_emulator

API = "/data"


def _key(account: str) -> str:
    return "CustomersV3(" + quote(f"dataAreaId='usmf',CustomerAccount='{account}'", safe="'=,") + ")"


def _batch_body(accounts: list[str], changeset: bool, n: int) -> tuple[bytes, str]:
    ops = []
    for i, account in enumerate(accounts):
        ops.append("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                   f"Content-ID: {i + 1}\r\n\r\nPATCH {API}/{_key(account)} HTTP/1.1\r\n"
                   "Content-Type: application/json\r\n\r\n" + json.dumps({"PrimaryContactPhone": f"+1 555 {n:04d}"}))
    if changeset:
        inner = "".join(f"--changeset_b\r\n{p}\r\n" for p in ops) + "--changeset_b--"
        body = f"--batch_b\r\nContent-Type: multipart/mixed; boundary=changeset_b\r\n\r\n{inner}\r\n--batch_b--\r\n"
    else:
        body = "".join(f"--batch_b\r\n{p}\r\n" for p in ops) + "--batch_b--\r\n"
    return body.encode(), "multipart/mixed; boundary=batch_b"


async def _run(total: int, workers: int, call: Callable[[int], Awaitable[None]]) -> float:
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:
            await call(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - started


async def measure(url: str, gets: int, batches: int, workers: int) -> list[tuple[str, int, float, float]]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as anon:
        r = await anon.post("/bench/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": "dualsync-integration",
            "client_secret": "dualsync-integration-secret", "scope": f"{url}/.default"})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}", "Accept": "application/json"}
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url + API + "/", headers=headers, timeout=60, limits=limits) as fo:
        rows = (await fo.get("CustomersV3?$select=CustomerAccount")).json()["value"]
        accounts = [c["CustomerAccount"] for c in rows]

        async def get_one(n: int) -> None:
            r = await fo.get(_key(accounts[n % len(accounts)]))
            r.raise_for_status()

        def batch_call(changeset: bool) -> Callable[[int], Awaitable[None]]:
            async def call(n: int) -> None:
                chunk = [accounts[(n * 100 + i) % len(accounts)] for i in range(100)]
                if changeset:
                    chunk = list(dict.fromkeys(chunk))
                body, ctype = _batch_body(chunk, changeset, n)
                r = await fo.post("$batch", content=body, headers={"Content-Type": ctype})
                if r.status_code != 200 or b"HTTP/1.1 4" in r.content:
                    raise RuntimeError(f"batch failed: {r.status_code} {r.text[:300]}")
            return call

        await _run(50, workers, get_one)  # warm-up
        result = [("GET by composite key", gets, await _run(gets, workers, get_one), 1)]
        result.append(("$batch 100 PATCH", batches, await _run(batches, workers, batch_call(False)), 100))
        result.append(("$batch 100 PATCH (1 change set)", batches,
                       await _run(batches, workers, batch_call(True)), 100))
    return [(name, n, n / secs, n * ops / secs) for name, n, secs, ops in result]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gets", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", type=int, default=8, help="concurrent clients")
    parser.add_argument("--records", type=int, default=500)
    args = parser.parse_args()
    with standalone_emulator("finance_operations", "--records", str(args.records)) as url:
        rows = asyncio.run(measure(url, args.gets, args.batches, args.workers))
    print(f"Finance and Operations emulator, {args.workers} concurrent clients, latency 0, throttling off")
    print(f"{'scenario':34} {'requests':>9} {'requests/s':>11} {'operations/s':>13}")
    for name, n, rps, ops in rows:
        print(f"{name:34} {n:>9} {rps:>11.1f} {ops:>13.1f}")


if __name__ == "__main__":
    main()
