"""Capacity of the full sync, side by side with a naive baseline and the emulated services' capacity bound,
service protection on (issue 12): `python -m bench.capacity`.

    python -m bench.capacity --records 10000 --latency-ms 50 --flows to_crm     # one cell
    python -m bench.capacity --matrix --records 10000                             # the table + the live path
    python -m bench.capacity --records 1000000 --flows to_crm --latency-ms 0 --memory-only   # RSS at 1 M

Per flow (BC → Dataverse `to_crm`, Dataverse → BC `to_erp`, F&O → Dataverse `fo_to_crm`) the source is seeded
with exactly `--records` mapped records (`POST /_admin/bulk`), then per latency, each run in a process of its
own with fresh service-protection windows and a fresh target:
1. capacity bound, measured: the same creates (prepared untimed) sent alone in `$batch`es, as many at once as
   the target's service protection admits; and computed from the settings (`harness.capacity_bound`);
2. naive baseline: read the source, then one create per record, one after another (`--baseline-records`);
3. the product's full sync (`SyncEngine.sync_full`, engine built as the Function App builds it): records/s,
   API calls and Table transactions per record, 429s, CPU, peak RSS of its process;
4. the same full sync again, nothing changed; 5. again after `--changed` of the source records were edited.
Targets are printed as pass/fail next to the figures, never asserted. The tables go to `bench/RESULTS.md`
between `<!-- capacity-<records>:begin/end -->` (and `<!-- live:… -->` for the live path) unless `--no-write`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from azure.data.tables.aio import TableServiceClient

from bench.capacity_jobs import FLOWS, Flow, Job, job_baseline, job_bound, job_sync
from bench.harness import (
    Emulators,
    EmulatorSpec,
    ServiceModel,
    bulk_insert,
    capacity_bound,
    child_service_settings,
    clear_table,
    commit,
    configure,
    edit_rows,
    fmt_rate,
    machine,
    markdown_table,
    product_settings,
    run_measured,
    today,
    write_section,
)
from emulators.common.tls import trust_local_ca
from emulators.sandbox.azurite import Azurite
from emulators.sandbox.stack import BC_PERSON, DV_PERSON, FO_PERSON

NAMESPACE = uuid.UUID("6f0c8a52-1d1e-4c57-9a55-3b0d3c1a7e12")  # ids of seeded rows: the same every run
TARGETS = {"naive": 25.0, "bound": 0.80, "calls": 0.05, "rss_mb": 300.0, "rss_from": 100_000}


# ----- the source records of each flow ---------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """Where a flow's records are seeded and edited: `row(i, ctx)` is the i-th record, `admin_id(i)` its
    id in the admin route, `edit(i, tag)` the body of a person's edit of it (`tag` makes each round of edits
    write new values: the same value again is no change)."""

    table: str
    key: str
    who: str
    row: Callable[[int, dict[str, Any]], dict[str, Any]]
    admin_id: Callable[[int], str]
    edit: Callable[[int, str], dict[str, Any]]


def _uid(kind: str, i: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}-{i}"))


def _bc_customer(i: int, ctx: dict[str, Any]) -> dict[str, Any]:
    return {"id": _uid("bc", i), "_companyId": ctx["company"], "number": f"B{i:07d}",
            "displayName": f"Bench Customer {i}", "type": "Company", "city": "Malmö",
            "phoneNumber": f"+46 40 {i:07d}", "email": f"c{i}@bench.example.com", "blocked": " ",
            "creditLimit": 1000.0 + i % 1000, "currencyId": ctx["eur"], "salespersonCode": ""}


def _dv_account(i: int, ctx: dict[str, Any]) -> dict[str, Any]:
    return {"accountid": _uid("dv", i), "accountnumber": f"D{i:07d}", "name": f"Bench Account {i}",
            "customertypecode": 3, "statecode": 0, "address1_city": "Malmö", "telephone1": f"+46 40 {i:07d}",
            "emailaddress1": f"a{i}@bench.example.com", "creditlimit": 1000.0 + i % 1000}


def _fo_customer(i: int, ctx: dict[str, Any]) -> dict[str, Any]:
    return {"dataAreaId": "usmf", "CustomerAccount": f"BX-{i:07d}", "PartyType": "Organization",
            "OrganizationName": f"Bench {i}", "CustomerGroupId": "10", "SalesCurrencyCode": "USD",
            "PaymentTerms": "Net30"}


SOURCES = {
    "to_crm": Source("customers", "id", BC_PERSON, _bc_customer, lambda i: _uid("bc", i),
                     lambda i, tag: {"phoneNumber": f"+46 70 {i:07d} {tag}"}),
    "to_erp": Source("accounts", "accountid", DV_PERSON, _dv_account, lambda i: _uid("dv", i),
                     lambda i, tag: {"telephone1": f"+46 70 {i:07d} {tag}"}),
    "fo_to_crm": Source("CustomersV3", "@key", FO_PERSON, _fo_customer,
                        lambda i: quote(f"dataAreaId='usmf',CustomerAccount='BX-{i:07d}'", safe=""),
                        lambda i, tag: {"PrimaryContactPhone": f"+1 555 {i:07d} {tag}"}),
}


async def seed(emus: Emulators, flow: Flow, n: int) -> None:
    """Both emulators reset; the source table holds exactly the flow's `n` records."""
    for name in ("erp", "dv"):
        await configure(emus.url(name), 0, 0, records=emus.spec.records, protected=True)
    source, url = SOURCES[flow.name], emus.url(flow.source_emulator)
    await clear_table(url, source.table, source.key)
    ctx = dict(emus.info)
    if flow.erp == "bc":
        async with httpx.AsyncClient(base_url=emus.url("erp"), timeout=60) as admin:
            currencies = (await admin.get("/_admin/tables/currencies")).json()["value"]
        ctx["eur"] = next(c["id"] for c in currencies if c["code"] == "EUR")
    inserted = await bulk_insert(url, source.table, (source.row(i, ctx) for i in range(n)), who=source.who)
    if inserted != n:
        raise SystemExit(f"seeding {flow.label}: {inserted} of {n} records inserted")


# ----- one cell of the matrix: a flow at one latency -------------------------------------------------------
@dataclass
class Cell:
    flow: Flow
    records: int
    latency_ms: float
    computed: Any = None  # harness.Bound for the run's records
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # bound / baseline / first / second / changed
    checks: list[str] = field(default_factory=list)
    changed: int = 0


@dataclass
class Matrix:
    args: argparse.Namespace
    emus: Emulators
    azurite: Azurite

    async def measured(self, cell: Cell, name: str, job: Callable[..., Any], spec: Job) -> dict[str, Any]:
        """Run `job(spec)` in its own process, service-protection windows fresh; the emulators' CPU alongside."""
        self.emus.fresh_limits()
        before = self.emus.cpu()
        result = await asyncio.to_thread(run_measured, job, spec)
        result["emulators_cpu_s"] = self.emus.cpu() - before
        cell.runs[name] = result
        print(f"  {cell.flow.label}, {cell.latency_ms:g} ms, {name}: {result['records']} records in "
              f"{result['seconds']:.1f} s ({result['calls']} API calls, {result['table']} Table requests)", flush=True)
        return result

    def job(self, flow: Flow, records: int, **extra: Any) -> Job:
        return Job(flow.name, dict(self.emus.info), self.azurite.connection_string,
                   "cap" + uuid.uuid4().hex[:10], records, **extra)

    async def fresh_target(self, flow: Flow, latency: float) -> None:
        await configure(self.emus.url(flow.target_emulator), latency, self.args.batch_op_latency_ms,
                        records=self.emus.spec.records, protected=True)

    async def cell(self, flow: Flow, latency: float) -> Cell:
        args, n = self.args, self.args.records
        for name in ("erp", "dv"):
            await configure(self.emus.url(name), latency, args.batch_op_latency_ms, protected=True)
        model = ServiceModel.of(flow.target_service, self.emus.call(child_service_settings)[flow.target_emulator])
        cell = Cell(flow, n, latency, capacity_bound(model, n))
        if not args.memory_only:
            await self._bound_and_baseline(cell, model)
        await self.fresh_target(flow, latency)
        first = self.job(flow, n, max_seconds=args.max_seconds)
        check(cell, "first", await self.measured(cell, "first", job_sync, first), inserted=n)
        if not args.memory_only and not cell.runs["first"]["stopped"]:
            await self._again(cell, first)
        await drop_tables(first, self.azurite)
        return cell

    async def safe_cell(self, flow: Flow, latency: float) -> Cell:
        """`cell`, or when one of its runs failed, a cell saying so: a long matrix goes on to the next."""
        try:
            return await self.cell(flow, latency)
        except RuntimeError as exc:
            why = str(exc).strip().splitlines()[-1]
            print(f"  {flow.label}, {latency:g} ms: FAILED: {why}", flush=True)
            return Cell(flow, self.args.records, latency, checks=[f"{flow.label} {latency:g} ms: a run failed: {why}"])

    async def _bound_and_baseline(self, cell: Cell, model: ServiceModel) -> None:
        flow, latency = cell.flow, cell.latency_ms
        bound = capacity_bound(model, min(cell.records, self.args.bound_records))
        await self.fresh_target(flow, latency)
        job = self.job(flow, bound.records, batch=bound.batch, in_flight=bound.in_flight)
        await self.measured(cell, "bound", job_bound, job)
        cell.runs["bound"]["computed"] = bound
        await drop_tables(job, self.azurite)
        await self.fresh_target(flow, latency)
        job = self.job(flow, min(cell.records, self.args.baseline_records))
        await self.measured(cell, "baseline", job_baseline, job)
        await drop_tables(job, self.azurite)

    async def _again(self, cell: Cell, first: Job) -> None:
        """The same full sync with nothing changed, then with `--changed` of the source records edited."""
        n, source = cell.records, SOURCES[cell.flow.name]
        check(cell, "second", await self.measured(cell, "second", job_sync, first), unchanged=n)
        k = cell.changed = max(1, round(n * self.args.changed))
        picked = [i * n // k for i in range(k)]  # spread over the pages
        tag = uuid.uuid4().hex[:4]
        await edit_rows(self.emus.url(cell.flow.source_emulator), source.table,
                        [source.admin_id(i) for i in picked], lambda j: source.edit(picked[j], tag), who=source.who)
        check(cell, "changed", await self.measured(cell, "changed", job_sync, first), modified=k, unchanged=n - k)


def check(cell: Cell, run: str, result: dict[str, Any], **expected: int) -> None:
    """Note (not raise) when a run's counts are not what the data makes certain: its figures would mislead."""
    if result.get("stopped"):
        return
    counts = result["counts"]
    wrong = {k: counts.get(k, 0) for k, v in expected.items() if counts.get(k, 0) != v}
    if wrong or result.get("failed"):
        cell.checks.append(f"{cell.flow.label} {cell.latency_ms:g} ms {run}: expected {expected}, got {counts}"
                           + (f"; failures: {result['failures']}" if result.get("failed") else ""))


async def drop_tables(job: Job, azurite: Azurite) -> None:
    names = product_settings(job.info, job.storage, job.prefix).storage.table_names().values()
    async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        for name in names:
            await service.delete_table(name)


# ----- the report ------------------------------------------------------------------------------------------
def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isinf(b) else math.nan


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**pass**" if ok else "**FAIL**")


def rate(run: dict[str, Any]) -> float:
    return run["records"] / run["seconds"] if run.get("seconds") else math.nan


def first_rows(cells: Sequence[Cell]) -> Iterator[list[Any]]:
    for c in cells:
        r, base, bound = c.runs["first"], c.runs.get("baseline"), c.runs.get("bound")
        ours = rate(r)
        yield [c.flow.label, f"{c.latency_ms:g}", f"{r['records']}{' (stopped)' if r['stopped'] else ''}",
               f"{r['seconds']:.1f}", f"{ours:.1f}", f"{ratio(r['calls'], r['records']):.3f}",
               f"{ratio(r['table'], r['records']):.3f}", r["throttled"], f"{r['cpu_s']:.1f}",
               f"{r['emulators_cpu_s']:.1f}", f"{r['rss_base_mb']:.0f} / {r['rss_peak_mb']:.0f}",
               f"{rate(base):.1f}" if base else "–", f"{ratio(ours, rate(base)):.2f}×" if base else "–",
               fmt_rate(c.computed.rate), f"{ratio(ours, c.computed.rate):.1%}",
               f"{rate(bound):.1f}" if bound else "–", f"{ratio(ours, rate(bound)):.1%}" if bound else "–"]


FIRST_HEADER = ["flow", "latency ms", "records", "s", "records/s", "API calls/record", "Table tx/record", "429s",
                "CPU s", "emulators CPU s", "RSS MB start / peak", "naive records/s", "vs naive",
                "bound computed records/s", "of computed", "bound measured records/s", "of measured"]


def again_rows(cells: Sequence[Cell]) -> Iterator[list[Any]]:
    for c in cells:
        if "second" not in c.runs:
            continue
        s, ch = c.runs["second"], c.runs["changed"]
        yield [c.flow.label, f"{c.latency_ms:g}", c.records, f"{s['seconds']:.1f}", s["calls"],
               f"{ratio(s['calls'], c.records):.3f}", f"{ratio(s['table'], c.records):.3f}",
               c.changed, f"{ch['seconds']:.1f}", ch["calls"], f"{ratio(ch['calls'], c.changed):.3f}",
               f"{ratio(ch['table'], c.changed):.2f}", f"{ch['cpu_s']:.1f}"]


AGAIN_HEADER = ["flow", "latency ms", "records", "unchanged: s", "API calls", "calls/record", "Table tx/record",
                "changed records", "changed: s", "API calls", "calls/changed record", "Table tx/changed record",
                "CPU s"]


def bound_rows(cells: Sequence[Cell]) -> Iterator[list[Any]]:
    for c in cells:
        b = c.runs.get("bound")
        if b is None:
            continue
        computed = b["computed"]
        yield [c.flow.label, f"{c.latency_ms:g}", b["records"], f"{b['batch']} × {b['in_flight']}",
               f"{b['seconds']:.2f}", f"{rate(b):.1f}", fmt_rate(computed.rate), f"{ratio(rate(b), computed.rate):.1%}",
               b["calls"], b["throttled"], f"{b['emulators_cpu_s']:.1f}"]


BOUND_HEADER = ["flow", "latency ms", "creates", "batch × in flight", "s", "measured records/s",
                "computed records/s", "measured / computed", "API calls", "429s", "emulators CPU s"]


def target_rows(cells: Sequence[Cell]) -> Iterator[list[Any]]:
    t = TARGETS
    for c in cells:
        r, who = c.runs["first"], f"{c.flow.label}, {c.latency_ms:g} ms"
        ours = rate(r)
        if "baseline" in c.runs:
            x = ratio(ours, rate(c.runs["baseline"]))
            yield [f"≥ {t['naive']:g}× the naive baseline at 50 ms", who, f"{x:.2f}×",
                   verdict(x >= t["naive"] if c.latency_ms == 50 else None)]
        if not r["stopped"]:
            x = ratio(ours, c.computed.rate)
            yield [f"≥ {t['bound']:.0%} of the capacity bound (computed)", who, f"{x:.1%}", verdict(x >= t["bound"])]
        if "bound" in c.runs:
            x = ratio(ours, rate(c.runs["bound"]))
            yield [f"≥ {t['bound']:.0%} of the capacity bound (measured)", who, f"{x:.1%}", verdict(x >= t["bound"])]
        if not r["stopped"]:
            x = ratio(r["calls"], r["records"])
            yield [f"≤ {t['calls']:g} API calls per record, creates", who, f"{x:.3f}", verdict(x <= t["calls"])]
        if "changed" in c.runs:
            x = ratio(c.runs["changed"]["calls"], c.changed)
            yield [f"≤ {t['calls']:g} API calls per record, updates", who, f"{x:.3f}", verdict(x <= t["calls"])]
        big = c.records >= t["rss_from"]
        yield [f"peak RSS < {t['rss_mb']:g} MB at 100 000 and 1 000 000 records", f"{who}, {c.records} records",
               f"{r['rss_peak_mb']:.0f} MB", verdict(r["rss_peak_mb"] < t["rss_mb"] if big else None)]


def render(all_cells: Sequence[Cell], args: argparse.Namespace, command: str) -> str:
    n, cells = args.records, [c for c in all_cells if "first" in c.runs]
    out = [f"## Capacity: full sync of {f'{n:,}'.replace(',', ' ')} records, service protection on ({today()})", "",
           f"    {command}", "",
           f"Machine: {machine()}. Code: {commit()}. The emulators serve HTTPS from one child process, state in "
           "Azurite; every measured run is a process of its own (peak RSS = its VmHWM; its CPU during the timed "
           "part), starting with fresh service-protection windows (the emulators' defaults) and a reset target. "
           f"Latency per request as given, {args.batch_op_latency_ms:g} ms per `$batch` operation. The engine is "
           "built as the Function App builds it (`shared.runtime.build_engine`, default settings). API calls and "
           "Table transactions are every HTTP attempt, retries included.", "",
           "### Full sync, every record created", "", markdown_table(FIRST_HEADER, first_rows(cells)), ""]
    again = list(again_rows(cells))
    if again:
        out += [f"### The same full sync again: nothing changed, then {args.changed:.0%} of the source edited",
                "", markdown_table(AGAIN_HEADER, again), ""]
    bounds = list(bound_rows(cells))
    if bounds:
        out += ["### Capacity bound: the same creates sent alone", "", markdown_table(BOUND_HEADER, bounds), ""]
    out += ["Computed from the emulators' settings (`harness.capacity_bound`):", ""]
    out += [f"- {c.flow.label}, {c.latency_ms:g} ms: {c.computed.describe()}" for c in cells]
    out += ["", "### Targets (printed, not asserted)", "",
            markdown_table(["target", "run", "value", "verdict"], target_rows(cells))]
    failed = [x for c in all_cells for x in c.checks]
    if failed:
        out += ["", "**Runs whose counts were not as expected (their figures mislead):**"]
        out += [f"- {x}" for x in failed]
    return "\n".join(out) + "\n"


def headline(cells: Sequence[Cell]) -> str:
    lines = ["HEADLINE (full sync, service protection on)"]
    for c in cells:
        if "first" not in c.runs:
            lines.append(f"  {c.flow.label}, {c.latency_ms:g} ms: failed (see the report)")
            continue
        r = c.runs["first"]
        base = f", {ratio(rate(r), rate(c.runs['baseline'])):.1f}× naive" if "baseline" in c.runs else ""
        bound = f", {ratio(rate(r), rate(c.runs['bound'])):.0%} of measured bound" if "bound" in c.runs else ""
        lines.append(f"  {c.flow.label}, {c.records} records, {c.latency_ms:g} ms: {rate(r):.0f} records/s{base}"
                     f"{bound}, {ratio(r['calls'], r['records']):.3f} API calls/record, peak RSS "
                     f"{r['rss_peak_mb']:.0f} MB")
    return "\n".join(lines)


# ----- the command -----------------------------------------------------------------------------------------
async def run_matrix(args: argparse.Namespace) -> list[Cell]:
    cells: list[Cell] = []
    flows = [FLOWS[name] for name in args.flows]
    with Azurite() as azurite:
        for erp in dict.fromkeys(f.erp for f in flows):
            with Emulators(EmulatorSpec(erp)) as emus:
                matrix = Matrix(args, emus, azurite)
                for flow in (f for f in flows if f.erp == erp):
                    await seed(emus, flow, args.records)
                    print(f"{flow.label}: seeded {args.records} records", flush=True)
                    for latency in args.latency_ms:
                        cells.append(await matrix.safe_cell(flow, latency))
    return cells


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=10_000, help="records seeded and synced per flow")
    p.add_argument("--flows", nargs="+", choices=sorted(FLOWS), default=["to_crm"])
    p.add_argument("--latency-ms", type=float, nargs="+", default=[50.0], help="injected latency per request")
    p.add_argument("--batch-op-latency-ms", type=float, default=2.0)
    p.add_argument("--matrix", action="store_true",
                   help="every flow at 0 and 50 ms, then the live path (bench.webhook_latency) unless --no-live")
    p.add_argument("--no-live", action="store_true", help="with --matrix: leave the live path out")
    p.add_argument("--baseline-records", type=int, default=1000,
                   help="records the naive baseline creates (its rate does not depend on the count)")
    p.add_argument("--bound-records", type=int, default=20_000, help="creates sent for the measured bound (at most "
                                                                      "--records)")
    p.add_argument("--changed", type=float, default=0.10, help="share of the source edited before the third run")
    p.add_argument("--memory-only", action="store_true",
                   help="only the first full sync (no bound, baseline or second runs): for peak RSS at 1 M records")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop the first full sync after this long (RSS on a shortened run; say so when quoting)")
    p.add_argument("--live-records", type=int, default=250, help="live path: coupled records the changes go round")
    p.add_argument("--live-changes", type=int, default=1000, help="live path: changes per rate")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = p.parse_args(argv)
    if args.matrix:
        args.flows, args.latency_ms = sorted(FLOWS, key=list(FLOWS).index), [0.0, 50.0]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    command = "python -m bench.capacity " + " ".join(sys.argv[1:] if argv is None else argv)
    trust_local_ca()  # before any HTTPS client and before the children start: they inherit it
    cells = asyncio.run(run_matrix(args))
    report = render(cells, args, command)
    print("\n" + report)
    if not args.no_write:
        write_section(f"capacity-{args.records}", report)
    summary = [headline(cells)]
    if args.matrix and not args.no_live:
        from bench.webhook_latency import live_main  # the live path: its own stack, its own section

        summary.append(live_main(records=args.live_records, changes=args.live_changes, write=not args.no_write))
    print("\n" + "\n".join(summary))
    return 1 if any(c.checks for c in cells) else 0


if __name__ == "__main__":
    raise SystemExit(main())
