"""Full sync of N Business Central customers → Dataverse accounts: `python -m bench.full_sync`.

Both emulators serve HTTPS in a child process (`bench.harness.Emulators`), so the memory measured here is the
sync's alone; the state store is Azurite; the customers are seeded in bulk (`/_admin/bulk`). Latency is
injected per request and per `$batch` operation (defaults: 20 ms and 2 ms), throttling off. Three measurements
in one run, Dataverse reset between:
1. `SyncEngine.sync_full` timed (records/s, API calls per record);
2. the same again under tracemalloc (peak Python memory of the sync);
3. the naive baseline: GET the customers (page by page), then one POST per record, sequentially.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
import uuid
from typing import Any

import httpx
from azure.data.tables.aio import TableServiceClient

from bench.harness import (
    CLIENT_ID,
    SECRET,
    Emulators,
    EmulatorSpec,
    bulk_insert,
    clear_table,
    configure,
    credential,
)
from shared.connectors.business_central import BusinessCentralConnector
from shared.connectors.dataverse import DataverseConnector
from shared.mapping import Direction, Side, load_pack, map_record
from shared.state import StateStore, TableNames
from shared.sync import EngineOptions, SyncEngine
from tests.support.azurite import Azurite

__all__ = ["CLIENT_ID", "SECRET", "configure"]  # what other benchmarks used to import from here
# The emulators as this benchmark has always run them: throttling off, Dataverse's default alternate keys.
SPEC = EmulatorSpec("bc", protected=False, records=4, pack_keys=False)


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: httpx.Request) -> None:
        if "/oauth2/" not in request.url.path and "/token" not in request.url.path:
            self.calls += 1


async def seed_customers(bc: str, company: str, n: int) -> None:
    """Exactly `n` customers, made by a BC user in one bulk insert (the seed's own customers deleted first)."""
    async with httpx.AsyncClient(base_url=bc, timeout=60) as admin:
        currencies = (await admin.get("/_admin/tables/currencies")).json()["value"]
    eur = next(c["id"] for c in currencies if c["code"] == "EUR")
    await clear_table(bc, "customers", "id")
    await bulk_insert(bc, "customers", ({
        "_companyId": company, "number": f"B{i:06d}", "displayName": f"Bench Customer {i}", "type": "Company",
        "city": "Malmö", "phoneNumber": f"+46 40 {i:06d}", "email": f"c{i}@bench.example.com", "blocked": " ",
        "creditLimit": 1000.0 + i, "currencyId": eur, "salespersonCode": ""} for i in range(n)), who="bc-user-annie")


def connectors(info: dict[str, Any], bc_http: httpx.AsyncClient,
               dv_http: httpx.AsyncClient) -> tuple[BusinessCentralConnector, DataverseConnector]:
    erp = BusinessCentralConnector(
        bc_http, credential(info["erp_tenant"], info["erp_url"]),
        tenant_id=info["erp_tenant"], environment=info["environment"], company_id=info["company"],
        base_url=f"{info['erp_url']}/v2.0")
    crm = DataverseConnector(
        dv_http, credential(info["dv_tenant"], info["dv_url"]),
        base_url=info["dv_url"])
    return erp, crm


async def engine_run(info: dict[str, Any], azurite: Azurite, n: int, *, trace: bool) -> dict[str, float]:
    pack = load_pack("templates/bc-sales.yaml")
    count = Counting()
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with (httpx.AsyncClient(timeout=120, limits=limits, event_hooks={"request": [count]}) as bc_http,
                httpx.AsyncClient(timeout=120, limits=limits, event_hooks={"request": [count]}) as dv_http,
                TableServiceClient.from_connection_string(azurite.connection_string) as service):
        state = StateStore(service, TableNames.with_prefix("b" + uuid.uuid4().hex[:8]))
        await state.ensure_tables()
        erp, crm = connectors(info, bc_http, dv_http)
        engine = SyncEngine(pack, erp=erp, crm=crm, state=state,
                            options=EngineOptions(integration_users={Side.CRM: frozenset({info["dv_integration"]})},
                                                  concurrency=16))
        count.calls = 0
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        [run] = await engine.sync_full(["customers"], directions=frozenset({Direction.TO_CRM}), page_size=1000)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
        for name in state.names.as_dict().values():
            await service.delete_table(name)
    done = run.counts.get("inserted", 0) + run.counts.get("coupled", 0)
    if done != n or run.failures:
        raise SystemExit(f"full sync did not sync every record: {run.counts}, "
                         f"{[f.message for f in run.failures[:3]]}")
    return {"records": n, "seconds": seconds, "rps": n / seconds, "calls": count.calls,
            "calls_per_record": count.calls / n, "peak_mb": peak / 2**20}


async def baseline_run(info: dict[str, Any], n: int) -> dict[str, float]:
    """GET the customers, then one create per record, sequentially (no batching, no state)."""
    pack = load_pack("templates/bc-sales.yaml")
    customers = pack.mapping("customers")
    count = Counting()
    async with (httpx.AsyncClient(timeout=120, event_hooks={"request": [count]}) as bc_http,
                httpx.AsyncClient(timeout=120, event_hooks={"request": [count]}) as dv_http):
        erp, crm = connectors(info, bc_http, dv_http)
        count.calls = 0
        started = time.perf_counter()
        records = []
        async for page in erp.list("customers", page_size=min(n, 1000)):
            records.extend(page)
            if len(records) >= n:
                break
        for r in records[:n]:
            payload = map_record(customers, r.values, Direction.TO_CRM, creating=True).payload
            await crm.create("accounts", {k: v for k, v in payload.items() if not k.endswith("@odata.bind")})
        seconds = time.perf_counter() - started
    return {"records": n, "seconds": seconds, "rps": n / seconds, "calls": count.calls,
            "calls_per_record": count.calls / n, "peak_mb": 0.0}


async def main_async(args: argparse.Namespace, info: dict[str, Any]) -> None:
    t = time.perf_counter()
    await seed_customers(info["erp_url"], info["company"], args.records)
    print(f"seeded {args.records} BC customers in {time.perf_counter() - t:.1f} s")
    rows = []
    with Azurite() as azurite:
        for label, trace in (("full sync (SyncEngine.sync_full)", False), ("full sync under tracemalloc", True)):
            await configure(info["dv_url"], args.latency_ms, args.batch_op_latency_ms, records=4)
            await configure(info["erp_url"], args.latency_ms, args.batch_op_latency_ms)
            rows.append((label, await engine_run(info, azurite, args.records, trace=trace)))
            print(f"{label}: done")
    await configure(info["dv_url"], args.latency_ms, args.batch_op_latency_ms, records=4)
    rows.append(("naive baseline (GET, then 1 POST each)", await baseline_run(info, args.baseline_records)))
    print(f"\n{args.records} customers BC → Dataverse, latency {args.latency_ms} ms/request + "
          f"{args.batch_op_latency_ms} ms/batch op, throttling off")
    print(f"{'run':40} {'records':>8} {'seconds':>8} {'records/s':>10} {'API calls':>10} {'calls/rec':>10} "
          f"{'peak MB':>8}")
    for label, r in rows:
        peak = f"{r['peak_mb']:.1f}" if r["peak_mb"] else "-"
        print(f"{label:40} {r['records']:>8.0f} {r['seconds']:>8.1f} {r['rps']:>10.1f} {r['calls']:>10.0f} "
              f"{r['calls_per_record']:>10.3f} {peak:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--baseline-records", type=int, default=1000,
                        help="records the sequential baseline creates (its rate does not depend on the count)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--batch-op-latency-ms", type=float, default=2.0)
    args = parser.parse_args()
    with Emulators(SPEC) as emulators:
        asyncio.run(main_async(args, emulators.info))

if __name__ == "__main__":
    main()
