"""Full sync of N Finance and Operations customers → Dataverse accounts, and the content-compare catch-up
after it (pack `templates/fo-dataverse.yaml`): `python -m bench.full_sync_fo`.

Both emulators serve real HTTP (uvicorn via `BackgroundServer`) in a child process; the state store is Azurite.
Dataverse has the alternate keys the sandbox defines for the pack (`dataverse_keys`: company-striped). Latency is
injected per request and per `$batch` operation (defaults: 20 ms and 2 ms, as `bench.full_sync`), throttling
off. F&O is seeded with `POST /_admin/reset` sized so that N organisation customers exist across USMF, DEMF
and GBSI (persons, a quarter of the seed, are left out by the mapping's filter); what is synced is counted.
The connectors are configured with the production defaults (Dataverse: 16 requests in flight, 100 operations
per `$batch`). Measured in one run, Dataverse reset between:
1. capacity bound: the customers' own create operations (mapped and lookups resolved beforehand, untimed)
   sent as full `$batch`es through the Dataverse connector at its configured concurrency — the rate the
   emulated Dataverse absorbs creates, with no reads, matching or state around them;
2. the naive baseline: GET the customers (page by page), then one POST per account, sequentially;
3. `SyncEngine.sync_full(["customers"], directions={TO_CRM})` after the reference mappings (companies,
   currencies, customer groups, payment terms) were synced untimed; API and Table requests counted, wall time
   split into the sequential steps of each page;
4. the content-compare catch-up of the F&O side (`sync_direction(customers, ERP)`, what `sync_modified` runs
   for a source with no modified-on field) over the N coupled customers: nothing changed, then 1 % changed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from azure.data.tables.aio import TableServiceClient

from bench.harness import Emulators, EmulatorSpec, configure, credential
from emulators.sandbox.azurite import Azurite
from emulators.sandbox.stack import FO_PERSON
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance_operations import FinanceOperationsConnector, pack_keys
from shared.connectors.odata import parse_key_predicate
from shared.http.limits import ConcurrencyLimiter
from shared.mapping import Direction, Side, load_pack, map_record, read_name, source_filter
from shared.state import StateStore, TableNames
from shared.sync import EngineOptions, SyncEngine, full_create, match
from shared.sync.checkpoint import CheckpointStore
from shared.sync.context import RunContext
from shared.sync.modified import sync_direction

PACK = "templates/fo-dataverse.yaml"
READ, REST = "read a page of F&O customers", "rest (CPU between the steps)"
LOOKUP_READS = "  lookups' F&O reads (within matching and preparing)"
MATCH = "match against Dataverse"
PHASES = [READ, "find couplings (Table)", MATCH, "prepare creates (lookups, mapping)",
          LOOKUP_READS, "reserve couplings (Table)", "create accounts ($batch)", "complete couplings (Table)",
          "checkpoint + job counts (Table)", REST, "CPU: this process (sync)", "CPU: emulators' process"]
REFERENCE = ["companies", "currencies", "customer-groups", "payment-terms"]
TO_CRM = frozenset({Direction.TO_CRM})
SEED = 7


# ----- the emulators, in a child process (the sync's process measures only itself), throttling off as before
SPEC = EmulatorSpec("fo", protected=False, records=4)


@contextmanager
def emulators_in_child() -> Iterator[tuple[dict[str, Any], Callable[[], float]]]:
    """The F&O and Dataverse emulators in a spawned process; yields their URLs and ids, and a function giving
    that process's CPU seconds."""
    with Emulators(SPEC) as emulators:
        yield emulators.info, emulators.cpu


# ----- counting requests: API calls per service (token requests left out), Table requests per attempt
@dataclass
class Requests:
    api: Counter[str] = field(default_factory=Counter)
    table: int = 0

    async def on_api(self, request: httpx.Request) -> None:
        if "/oauth2/" not in request.url.path:
            self.api[f"{request.url.port} {request.method}"] += 1

    def on_table(self, request: Any) -> None:  # azure-core raw_request_hook: every HTTP attempt
        self.table += 1

    def reset(self) -> None:
        self.api.clear()
        self.table = 0

    def copy(self) -> Requests:
        return Requests(Counter(self.api), self.table)

    @property
    def calls(self) -> int:
        return sum(self.api.values())

    def of(self, url: str, method: str | None = None) -> int:
        port = str(urlsplit(url).port)
        return sum(n for key, n in self.api.items()
                   if key.split()[0] == port and method in (None, key.split()[1]))


# ----- where the time of a full sync goes: wall time during which at least one call of a step was running.
# Pages are processed one after another and, within a page, the steps below one after another (preparing the
# creates runs its records concurrently, hence "at least one"), so the steps add up to the sync's time; what is
# left is the CPU between them. Lookups' reads happen inside two steps (the companies when matching, the rest
# when preparing), so they are shown on their own and not added.
@dataclass
class Phases:
    seconds: Counter[str] = field(default_factory=Counter)
    active: Counter[str] = field(default_factory=Counter)
    since: dict[str, float] = field(default_factory=dict)
    spans: dict[str, list[float]] = field(default_factory=dict)  # each stretch of a label, in order
    restore: list[Callable[[], None]] = field(default_factory=list)

    def enter(self, label: str) -> None:
        self.active[label] += 1
        if self.active[label] == 1:
            self.since[label] = time.perf_counter()

    def leave(self, label: str) -> None:
        self.active[label] -= 1
        if not self.active[label]:
            span = time.perf_counter() - self.since.pop(label)
            self.seconds[label] += span
            self.spans.setdefault(label, []).append(span)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            self.enter(label)
            try:
                return await original(*args, **kwargs)
            finally:
                self.leave(label)

        self.patch(owner, name, timed)

    def wrap_iter(self, owner: Any, name: str, labels: Callable[[str], str]) -> None:
        """Time spent waiting for the items of the async iterator `owner.name(first, …)` returns, labelled by
        its first argument (an entity set, a mapping)."""
        original = getattr(owner, name)

        def listing(first: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async def items() -> AsyncIterator[Any]:
                it = original(first, *args, **kwargs).__aiter__()
                while True:
                    self.enter(labels(first))
                    try:
                        item = await it.__anext__()
                    except StopAsyncIteration:
                        return
                    finally:
                        self.leave(labels(first))
                    yield item
            return items()

        self.patch(owner, name, listing)

    def patch(self, owner: Any, name: str, replacement: Any) -> None:
        own = isinstance(owner, type) or name in vars(owner)  # a class or module attribute, not a bound method
        original = vars(owner)[name] if own else None
        setattr(owner, name, replacement)
        self.restore.append(lambda: setattr(owner, name, original) if own else delattr(owner, name))

    def undo(self) -> None:
        for restore in reversed(self.restore):
            restore()
        self.restore.clear()


@dataclass
class Bench:
    info: dict[str, Any]
    azurite: Azurite
    batch_size: int
    concurrency: int
    requests: Requests = field(default_factory=Requests)

    @asynccontextmanager
    async def engine(self) -> AsyncIterator[SyncEngine]:
        """An engine over fresh state tables (dropped after), wired as `shared.runtime.build_engine` wires it:
        one limiter across both connectors, production batch size and concurrency."""
        pack = load_pack(PACK)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        hooks = {"request": [self.requests.on_api]}
        async with (httpx.AsyncClient(timeout=120, limits=limits, event_hooks=hooks) as http,
                    TableServiceClient.from_connection_string(self.azurite.connection_string,
                                                              raw_request_hook=self.requests.on_table) as service):
            info, limiter = self.info, ConcurrencyLimiter()
            erp = FinanceOperationsConnector(
                http, credential(info["erp_tenant"], info["erp_url"]),
                base_url=info["erp_url"], keys=pack_keys(pack), limiter=limiter)
            crm = DataverseConnector(
                http, credential(info["dv_tenant"], info["dv_url"]),
                base_url=info["dv_url"], limiter=limiter, batch_size=self.batch_size)
            state = StateStore(service, TableNames.with_prefix("bf" + uuid.uuid4().hex[:8]))
            await state.ensure_tables()
            users = {Side.ERP: frozenset({info["erp_integration"]}), Side.CRM: frozenset({info["dv_integration"]})}
            try:
                yield SyncEngine(pack, erp=erp, crm=crm, state=state,
                                 options=EngineOptions(integration_users=users, concurrency=self.concurrency))
            finally:
                for name in state.names.as_dict().values():
                    await service.delete_table(name)

    async def fresh_dataverse(self, latency: float, batch_op: float) -> None:
        await configure(self.info["dv_url"], latency, batch_op, records=4)

    async def timed(self, work: Awaitable[Any]) -> tuple[Any, float, Requests]:
        """`work`'s result, wall seconds, and the requests it made."""
        self.requests.reset()
        started = time.perf_counter()
        result = await work
        return result, time.perf_counter() - started, self.requests.copy()


def check(ok: bool, message: str) -> None:
    if not ok:
        raise SystemExit(message)


async def seed(fo: str, target: int, latency: float, batch_op: float) -> dict[str, list[str]]:
    """Reset F&O so that about `target` organisation customers exist (persons are every fourth of USMF's N and
    of DEMF's and GBSI's N/4 each: ≈ 1.125 N organisations); returns their keys per company."""
    await configure(fo, latency, batch_op, records=max(0, round((target - 2) / 1.125)))
    async with httpx.AsyncClient(base_url=fo, timeout=120) as admin:
        rows = (await admin.get("/_admin/tables/CustomersV3")).json()["value"]
    keys: dict[str, list[str]] = {}
    for r in rows:
        if r["PartyType"] == "Organization":
            keys.setdefault(r["dataAreaId"], []).append(r["@key"])
    return keys


async def capacity_bound(bench: Bench, n: int) -> dict[str, float]:
    """The customers' create operations, prepared as the full sync prepares them, then written alone."""
    async with bench.engine() as engine:
        await engine.sync_full(REFERENCE)
        mapping = engine.mapping("customers")
        records: list[Any] = []
        async for page in engine.connector(Side.ERP).list(mapping.erp.entity,
                                                          filter=source_filter(mapping, Side.ERP), page_size=1000):
            records.extend(page)
            if len(records) >= n:
                break
        ctx = RunContext(job_id="bench")
        prepared = await match.bounded(bench.concurrency, (full_create.prepare(engine, ctx, mapping,
                                                                               Direction.TO_CRM, r)
                                                           for r in records[:n]))
        ops = [full_create.write_op(engine, mapping, Direction.TO_CRM, p) for p in prepared
               if isinstance(p, full_create.Prepared)]
        check(len(ops) == n, f"capacity bound: only {len(ops)} of {n} creates could be prepared")
        answers, seconds, sent = await bench.timed(engine.connector(Side.CRM).write_batch(ops))
    failed = [a.error for a in answers if not a.ok]
    check(not failed, f"capacity bound: {len(failed)} creates failed: {failed[:1]}")
    return {"records": n, "seconds": seconds, "rps": n / seconds, "calls": sent.calls, "table": sent.table}


async def baseline(bench: Bench, n: int) -> dict[str, float]:
    """GET the customers page by page, then one POST per account, sequentially (no batching, no state, no
    lookups: company, group, currency and terms are left out of the body)."""
    async with bench.engine() as engine:
        mapping = engine.mapping("customers")
        erp, crm = engine.connector(Side.ERP), engine.connector(Side.CRM)

        async def run() -> None:
            records: list[Any] = []
            async for page in erp.list(mapping.erp.entity, filter=source_filter(mapping, Side.ERP),
                                       page_size=min(n, 1000)):
                records.extend(page)
                if len(records) >= n:
                    break
            for r in records[:n]:
                payload = map_record(mapping, r.values, Direction.TO_CRM, creating=True).payload
                await crm.create("accounts", {k: v for k, v in payload.items()
                                              if not k.endswith("@odata.bind") and not k.startswith("_")})

        _, seconds, sent = await bench.timed(run())
    return {"records": n, "seconds": seconds, "rps": n / seconds, "calls": sent.calls, "table": sent.table}


def wrap_phases(engine: SyncEngine) -> Phases:
    phases = Phases()
    listed = engine.mapping("customers").erp.entity
    phases.wrap_iter(engine.connector(Side.ERP), "list", lambda entity: READ if entity == listed else LOOKUP_READS)
    phases.wrap(full_create, "prepare", "prepare creates (lookups, mapping)")
    phases.wrap(engine.state.couplings, "find_couplings", "find couplings (Table)")
    phases.wrap(match, "match_page", MATCH)
    phases.wrap(engine.state.couplings, "reserve_many", "reserve couplings (Table)")
    phases.wrap(engine.connector(Side.CRM), "write_batch", "create accounts ($batch)")
    phases.wrap(engine.state.couplings, "complete_many", "complete couplings (Table)")
    phases.wrap(CheckpointStore, "save", "checkpoint + job counts (Table)")
    phases.wrap(engine.state.jobs, "increment", "checkpoint + job counts (Table)")
    return phases


async def ours(bench: Bench, expected: int, cpu: Callable[[], float],
               then: Callable[[SyncEngine], Awaitable[None]]) -> tuple[dict[str, Any], Phases]:
    async with bench.engine() as engine:
        await engine.sync_full(REFERENCE)
        phases = wrap_phases(engine)
        cpu_ours, cpu_emulators = time.process_time(), cpu()
        try:
            [run], seconds, sent = await bench.timed(engine.sync_full(["customers"], directions=TO_CRM,
                                                                      page_size=1000))
        finally:
            phases.undo()
        cpu_ours, cpu_emulators = time.process_time() - cpu_ours, cpu() - cpu_emulators
        done = run.counts.get("inserted", 0) + run.counts.get("coupled", 0)
        check(done == expected and not run.failures,
              f"full sync did not sync every record: {done} of {expected}, {run.counts}, "
              f"{[f.message for f in run.failures[:3]]}")
        await then(engine)
    phases.seconds[REST] = seconds - sum(v for k, v in phases.seconds.items() if not k.startswith(" "))
    phases.seconds["CPU: this process (sync)"] = cpu_ours
    phases.seconds["CPU: emulators' process"] = cpu_emulators
    return {"records": expected, "seconds": seconds, "rps": expected / seconds, "calls": sent.calls,
            "table": sent.table, "split": sent}, phases


async def match_query_ms(engine: SyncEngine, keys: list[str], repeat: int = 3) -> tuple[float, float]:
    """One 25-record match query for coupled USMF customers, as `match_page` writes it (the company, then the
    account number, per record), and the same accounts by account number alone: median ms of each."""
    mapping, crm = engine.mapping("customers"), engine.connector(Side.CRM)
    [[company]] = [page async for page in crm.list("cdm_companies", filter="cdm_companycode eq 'USMF'")]
    attr = read_name(mapping, mapping.company.field, Side.CRM) if mapping.company else None
    parsed = [parse_key_predicate(k) for k in keys]
    shared = {n for n, times in Counter(p["CustomerAccount"] for p in parsed).items() if times > 1}  # C-1001
    usmf = [p["CustomerAccount"] for p in parsed if p["dataAreaId"] == "usmf" and p["CustomerAccount"] not in shared]
    numbers = [usmf[i * len(usmf) // 25] for i in range(25)]
    group = mapping.match_groups()[0]
    texts = [match.match_filter(group, Direction.TO_CRM, ({attr: uuid.UUID(company.id), "accountnumber": n}
                                                          for n in numbers), attr),
             match.match_filter(group, Direction.TO_CRM, ({"accountnumber": n} for n in numbers))]
    medians = []
    for text in texts:
        took = []
        for _ in range(repeat):
            started = time.perf_counter()
            found = [r async for page in crm.list("accounts", filter=text) for r in page]
            took.append((time.perf_counter() - started) * 1000)
            check(len(found) == 25, f"a match query found {len(found)} accounts, not 25: {text[:200]}")
        medians.append(statistics.median(took))
    return medians[0], medians[1]


CATCH_UP_PHASES = ["read couplings (Table)", "read F&O pages", "sync the changed records",
                   "rest (CPU: map and compare)"]


async def catch_up(bench: Bench, engine: SyncEngine, keys: list[str], share: float) -> dict[str, Any]:
    """Edit `share` of the coupled customers in F&O as a person, then time the F&O side of `sync_modified`."""
    k = round(len(keys) * share)
    changed = [keys[i * len(keys) // k] for i in range(k)]  # spread over the companies and the pages
    async with httpx.AsyncClient(base_url=bench.info["erp_url"], timeout=60) as admin:
        for i, key in enumerate(changed):
            r = await admin.patch(f"/_admin/tables/CustomersV3/{quote(key, safe='')}", params={"as": FO_PERSON},
                                  json={"PrimaryContactPhone": f"+1 555 01{i:05d}"})
            check(r.status_code < 300, f"editing {key} failed: {r.status_code} {r.text[:200]}")
    mapping = engine.mapping("customers")
    phases = Phases()
    phases.wrap_iter(engine.state.couplings, "list_couplings", lambda _: CATCH_UP_PHASES[0])
    phases.wrap_iter(engine.connector(Side.ERP), "list", lambda _: CATCH_UP_PHASES[1])
    phases.wrap(engine, "sync_in_context", CATCH_UP_PHASES[2])
    try:
        run, seconds, sent = await bench.timed(sync_direction(engine, mapping, Side.ERP, trigger="bench",
                                                              run_start=engine.options.clock()))
    finally:
        phases.undo()
    phases.seconds[CATCH_UP_PHASES[3]] = seconds - sum(phases.seconds.values())
    counts = run.counts
    check(run.error is None and not run.failures and counts.get("modified", 0) == len(changed)
          and counts.get("unchanged", 0) == len(keys) - len(changed),
          f"catch-up with {len(changed)} changed did not find exactly them: {counts}, {run.error}, "
          f"{[f.message for f in run.failures[:3]]}")
    return {"changed": len(changed), "seconds": seconds, "fo": sent.of(bench.info["erp_url"]),
            "dv": sent.of(bench.info["dv_url"]), "table": sent.table, "counts": counts, "phases": phases.seconds}


def table(title: str, rows: list[tuple[str, dict[str, Any]]], reference: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"{'run':44} {'records':>8} {'seconds':>8} {'records/s':>10} {'API calls':>10} {'calls/rec':>10} "
          f"{'Table req':>10} {'vs ours':>8}")
    for label, r in rows:
        print(f"{label:44} {r['records']:>8.0f} {r['seconds']:>8.1f} {r['rps']:>10.1f} {r['calls']:>10.0f} "
              f"{r['calls'] / r['records']:>10.3f} {r['table']:>10.0f} {r['rps'] / reference['rps']:>7.2f}x")


async def main_async(args: argparse.Namespace, info: dict[str, Any], cpu: Callable[[], float]) -> None:
    lat, op = args.latency_ms, args.batch_op_latency_ms
    started = time.perf_counter()
    keys = await seed(info["erp_url"], args.records, lat, op)
    coupled = sorted(k for company in keys.values() for k in company)
    print(f"seeded F&O in {time.perf_counter() - started:.1f} s: {len(coupled)} organisation customers "
          f"({', '.join(f'{c.upper()} {len(v)}' for c, v in sorted(keys.items()))})")
    catch_ups: list[dict[str, Any]] = []
    queries: list[float] = []
    with Azurite() as azurite:
        bench = Bench(info, azurite, args.batch_size, args.concurrency)
        await bench.fresh_dataverse(lat, op)
        bound = await capacity_bound(bench, min(args.bound_records, len(coupled)))
        print("capacity bound: done")
        await bench.fresh_dataverse(lat, op)
        naive = await baseline(bench, min(args.baseline_records, len(coupled)))
        print("naive baseline: done")
        await bench.fresh_dataverse(lat, op)

        async def then(engine: SyncEngine) -> None:
            queries.extend(await match_query_ms(engine, coupled))
            for share in (0.0, args.changed):
                catch_ups.append(await catch_up(bench, engine, coupled, share))
                print(f"catch-up, {share:.0%} changed: done")

        mine, phases = await ours(bench, len(coupled), cpu, then)
    print(f"\n{len(coupled)} organisation customers F&O → Dataverse accounts (fo-dataverse), latency {lat:g} ms/request"
          f" + {op:g} ms/batch op, throttling off; Dataverse {args.batch_size} operations per $batch, 16 in flight; "
          f"engine concurrency {args.concurrency}")
    table("full sync", [("full sync (SyncEngine.sync_full)", mine),
                        ("naive baseline (GET, then 1 POST each)", naive),
                        (f"capacity bound (Dataverse, {args.batch_size}-op $batch x16)", bound)], mine)
    split = mine["split"]
    fo_get, dv_get, dv_post = (split.of(info["erp_url"], "GET"), split.of(info["dv_url"], "GET"),
                               split.of(info["dv_url"], "POST"))
    print(f"the full sync's API calls: F&O GET {fo_get}, Dataverse GET {dv_get}, Dataverse POST ($batch) {dv_post}, "
          f"other {split.calls - fo_get - dv_get - dv_post}")
    print(f"\nwhere the full sync's {mine['seconds']:.1f} s go (wall seconds of the sequential steps of its pages):")
    for label in PHASES:
        print(f"  {label:64} {phases.seconds[label]:>7.1f}")
    print("matching, per page of 1000 (s): " + " ".join(f"{s:.1f}" for s in phases.spans.get(MATCH, [])))
    print(f"one 25-record match query against the {len(coupled)} accounts afterwards: {queries[0]:.0f} ms as the "
          f"engine writes it (company and account number per record), {queries[1]:.0f} ms by account number alone "
          f"(medians of 3, each with the {lat:g} ms injected latency)")
    print(f"\ncontent-compare catch-up of the F&O side over {len(coupled)} coupled customers "
          "(sync_direction(customers, ERP))")
    print(f"{'changed':>8} {'seconds':>8} {'F&O req':>8} {'DV req':>8} {'Table req':>10}  counts; seconds of: "
          + ", ".join(CATCH_UP_PHASES))
    for c in catch_ups:
        split = " / ".join(f"{c['phases'][p]:.2f}" for p in CATCH_UP_PHASES)
        print(f"{c['changed']:>8} {c['seconds']:>8.2f} {c['fo']:>8} {c['dv']:>8} {c['table']:>10}  {c['counts']}; "
              f"{split}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.full_sync_fo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000, help="organisation customers to seed and sync")
    parser.add_argument("--baseline-records", type=int, default=1000,
                        help="records the sequential baseline creates (its rate does not depend on the count)")
    parser.add_argument("--bound-records", type=int, default=6400,
                        help="creates sent for the capacity bound (6400 = four rounds of 16 batches of 100)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of customers changed for the catch-up")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--batch-op-latency-ms", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=100, help="Dataverse operations per $batch")
    parser.add_argument("--concurrency", type=int, default=16, help="engine concurrency (as bench.full_sync)")
    args = parser.parse_args()
    with emulators_in_child() as (info, cpu):
        asyncio.run(main_async(args, info, cpu))


if __name__ == "__main__":
    main()
