"""Throughput of an emulator's OData API over real HTTP, the same way for Dataverse and Finance and Operations:
single-record GETs by key from a few concurrent clients, and 100-operation multipart `$batch` requests (PATCH
updates; plain, and as one atomic change set). The emulator runs standalone (`bench.standalone`), no injected
latency, throttling off. Each emulator's bench says only what differs (`Target`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.standalone import standalone_emulator


@dataclass(frozen=True)
class Target:
    module: str                           # emulators.<module>
    title: str                            # for the printed table
    api: str                              # service root path, e.g. /api/data/v9.2
    listing: str                          # collection read that lists the records to use, relative to the root
    key_of: Callable[[dict[str, Any]], str]  # a listed row → the record's key
    path_of: Callable[[str], str]         # a key → the record's path, relative to the root
    payload: Callable[[int], dict[str, Any]]  # the PATCH body of batch n
    get_label: str = "GET by id"


def patch_batch(api: str, paths: list[str], body: dict[str, Any], changeset: bool) -> tuple[bytes, str]:
    """A multipart `$batch` of PATCHes (one change set, or top-level parts): (body, Content-Type)."""
    ops = [("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {i + 1}\r\n\r\nPATCH {api}/{path} HTTP/1.1\r\n"
            "Content-Type: application/json\r\n\r\n" + json.dumps(body)) for i, path in enumerate(paths)]
    if changeset:
        inner = "".join(f"--changeset_b\r\n{p}\r\n" for p in ops) + "--changeset_b--"
        text = f"--batch_b\r\nContent-Type: multipart/mixed; boundary=changeset_b\r\n\r\n{inner}\r\n--batch_b--\r\n"
    else:
        text = "".join(f"--batch_b\r\n{p}\r\n" for p in ops) + "--batch_b--\r\n"
    return text.encode(), "multipart/mixed; boundary=batch_b"


async def run_workers(total: int, workers: int, call: Callable[[int], Awaitable[None]]) -> float:
    """Seconds for `workers` concurrent clients to make calls 0…total-1 between them."""
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:
            await call(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - started


async def measure(target: Target, url: str, gets: int, batches: int,
                  workers: int) -> list[tuple[str, int, float, float]]:
    """(scenario, requests, requests/s, operations/s) per scenario."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as anon:
        r = await anon.post("/bench/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": "dualsync-integration",
            "client_secret": "dualsync-integration-secret", "scope": f"{url}/.default"})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}", "Accept": "application/json"}
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url + target.api + "/", headers=headers, timeout=60, limits=limits) as api:
        keys = [target.key_of(row) for row in (await api.get(target.listing)).json()["value"]]

        async def get_one(n: int) -> None:
            (await api.get(target.path_of(keys[n % len(keys)]))).raise_for_status()

        def batch_call(changeset: bool) -> Callable[[int], Awaitable[None]]:
            async def call(n: int) -> None:
                # One record once per batch: a change set must not write a record twice.
                chunk = list(dict.fromkeys(keys[(n * 100 + i) % len(keys)] for i in range(100)))
                body, ctype = patch_batch(target.api, [target.path_of(k) for k in chunk], target.payload(n),
                                          changeset)
                r = await api.post("$batch", content=body, headers={"Content-Type": ctype})
                if r.status_code != 200 or b"HTTP/1.1 4" in r.content:
                    raise RuntimeError(f"batch failed: {r.status_code} {r.text[:300]}")
            return call

        await run_workers(50, workers, get_one)  # warm-up
        rows = [(target.get_label, gets, await run_workers(gets, workers, get_one), 1)]
        rows.append(("$batch 100 PATCH", batches, await run_workers(batches, workers, batch_call(False)), 100))
        rows.append(("$batch 100 PATCH (1 change set)", batches,
                     await run_workers(batches, workers, batch_call(True)), 100))
    return [(name, n, n / secs, n * ops / secs) for name, n, secs, ops in rows]


def main(target: Target, description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--gets", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", type=int, default=8, help="concurrent clients")
    parser.add_argument("--records", type=int, default=500)
    args = parser.parse_args()
    with standalone_emulator(target.module, "--records", str(args.records)) as url:
        rows = asyncio.run(measure(target, url, args.gets, args.batches, args.workers))
    print(f"{target.title} emulator, {args.workers} concurrent clients, latency 0, throttling off")
    print(f"{'scenario':34} {'requests':>9} {'requests/s':>11} {'operations/s':>13}")
    for name, n, rps, ops in rows:
        print(f"{name:34} {n:>9} {rps:>11.1f} {ops:>13.1f}")
