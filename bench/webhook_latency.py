"""The live path: a person's change on one side, timed from the write until the other system's store holds
the value (a store listener, no polling), at steady rates: `python -m bench.webhook_latency`.

    python -m bench.webhook_latency                                   # 10, 50 and 200 changes/s, 250 records
    python -m bench.webhook_latency --rates 50 --changes 300 --records 250 --no-write

Processes: the Business Central and Dataverse emulators serve HTTPS from a child process, where the arrivals
are heard; a person's edits come from a load generator in a process of its own; this process runs only the
Function App on the local Functions host (webhook → queue → processor → write), so its CPU and requests are the
product's; Azurite is a process of its own. Service protection on, BC notification delay 0, Dataverse's
asynchronous-service delay 0, no injected latency. Per rate, `--changes` edits go round `--records` coupled
customers on a fixed timetable, first Business Central → Dataverse (customer phone), then Dataverse → Business
Central (account phone); a warm-up of a few changes each way comes first, not counted.

Reported per rate and direction: median, p95, p99 and max of "the value or a later edit of the same record
arrived" (a sync reads the record as it is, so an edit overtaken by the next one on the same record is carried
by that one); the rate achieved and the rate processed (changes reflected / time from the first edit to the last
arrival); per change the API calls, Table transactions and CPU ms of the product's process. "Sustained" is the
highest rate that kept up (every change reflected, processed at ≥ 80 % of the rate achieved) with its p95
within twice the p95 at the lowest such rate. The table goes to `bench/RESULTS.md` between
`<!-- live:begin/end -->` unless `--no-write`.

`Leg`, `stream` and `summary` serve `bench.event_latency_fo`, which times the F&O sandbox in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.harness import (
    CLIENT_ID,
    PACKS,
    Child,
    Emulators,
    EmulatorSpec,
    Requests,
    bulk_insert,
    clear_table,
    commit,
    edit_stream,
    machine,
    markdown_table,
    percentile,
    product_settings,
    run_measured,
    today,
    write_section,
)
from emulators.common.server import BackgroundServer, free_port
from emulators.common.tls import local_tls, trust_local_ca
from emulators.sandbox import Sandbox
from emulators.sandbox.azurite import Azurite
from emulators.sandbox.register import register_dataverse
from emulators.sandbox.stack import BC_PERSON, DV_PERSON, SUBSCRIPTION_TIMER
from shared.http.auth import BearerAuth, make_credential

P95_TARGET_MS, TARGET_RATE = 250.0, 50.0


def summary(delays: list[float], sent: int) -> str:
    if not delays:
        return "nothing arrived"
    return (f"{len(delays)}/{sent} arrived; median {statistics.median(delays):.0f} ms, "
            f"p95 {percentile(delays, 95):.0f} ms, max {max(delays):.0f} ms")


def listen(app: Any, table: str, field: str, prefix: str, arrived: dict[str, float]) -> Callable[[Any], None]:
    """Record when `table.field` first holds each value starting with `prefix` (runs inside the write)."""
    def on_change(change: Any) -> None:
        value = (change.after or {}).get(field) if change.table == table else None
        if isinstance(value, str) and value.startswith(prefix):
            arrived.setdefault(value, time.monotonic())
    app.state.emulator.store.listeners.append(on_change)
    return on_change


def reflected(order: Sequence[str], sent: dict[str, float], arrived: dict[str, float], stride: int) -> list[float]:
    """Per edit (in `order`, round-robin over `stride` records), ms until its value or a later edit of the same
    record arrived; edits reflected by neither are left out."""
    delays = []
    for n, value in enumerate(order):
        later = [arrived[v] for v in order[n::stride] if v in arrived]  # this record's edits from this one on
        if later:
            delays.append((min(later) - sent[value]) * 1000)
    return delays


# ----- the sandbox in one process (bench.event_latency_fo) -------------------------------------------------
@dataclass(frozen=True)
class Leg:
    """One direction of the stream: a person's edit of a record (`edit(record id, value)`), and where the value
    arrives (`table.field` of the other system's emulator app)."""

    edit: Callable[[str, str], Awaitable[Any]]
    app: Any
    table: str
    field: str


@dataclass
class Streamed:
    """What a stream of edits came to: delays in ms from each edit until the other store held its value
    (`exact`), or held it or a later edit of the same record (`reflected`)."""

    sent: int
    seconds: float  # spent sending: sent / seconds is the rate achieved
    exact: list[float]
    reflected: list[float]


async def stream(sb: Sandbox, ids: list[str], leg: Leg, *, prefix: str, changes: int, rate: float,
                 schedule: bool = False) -> Streamed:
    """`changes` edits at a steady `rate` per second, round-robin over `ids`, each awaited; `schedule` keeps to
    a fixed timetable (an edit that ran late shortens the next pause), else each pause is 1/rate minus the
    edit's own time. Waits until every value, or every record's last value, arrived (at most 30 s)."""
    arrived: dict[str, float] = {}
    listen(leg.app, leg.table, leg.field, prefix, arrived)
    sent: dict[str, float] = {}
    last: dict[str, str] = {}
    first = time.monotonic()
    for i in range(changes):
        value, record = f"{prefix}{i:05d}", ids[i % len(ids)]
        started = time.monotonic()
        sent[value], last[record] = started, value
        await leg.edit(record, value)
        pause = first + (i + 1) / rate if schedule else started + 1 / rate
        await asyncio.sleep(max(0.0, pause - time.monotonic()))
    sending = time.monotonic() - first
    deadline = time.monotonic() + 30
    while (len(arrived) < changes and not all(v in arrived for v in last.values())
           and time.monotonic() < deadline):
        await asyncio.sleep(0.05)
    await sb.settle()
    return Streamed(changes, sending, [(arrived[v] - sent[v]) * 1000 for v in sent if v in arrived],
                    reflected(list(sent), sent, arrived, len(ids)))


# ----- the live path with the emulators in their own process ------------------------------------------------
@dataclass(frozen=True)
class Way:
    """Edits of `source.table.field` (as `who`), arriving in `target.table.field`."""

    label: str
    source: str
    table: str
    field: str
    who: str
    target: str
    target_table: str
    target_field: str
    prefix: str


DIRECTIONS = (Way("BC → Dataverse", "erp", "customers", "phoneNumber", BC_PERSON, "dv", "accounts",
                        "telephone1", "T-"),
              Way("Dataverse → BC", "dv", "accounts", "telephone1", DV_PERSON, "erp", "customers",
                        "phoneNumber", "U-"))


def child_listen(child: Child, way: Way, prefix: str) -> None:
    """In the emulators' process: from now on, note when each value starting with `prefix` arrives."""
    arrived: dict[str, float] = {}
    listener = listen(child.apps[way.target], way.target_table, way.target_field, prefix, arrived)
    child.scratch[prefix] = (arrived, listener, way.target)


def child_arrivals(child: Child, prefix: str, changes: int, last: list[str], wait_s: float) -> dict[str, float]:
    """Wait until all `changes` values, or every record's `last` value, arrived (at most `wait_s`); then stop
    listening and return when each arrived."""
    arrived, listener, target = child.scratch.pop(prefix)
    deadline = time.monotonic() + wait_s
    while len(arrived) < changes and not all(v in arrived for v in last) and time.monotonic() < deadline:
        time.sleep(0.02)
    child.emulator(target).store.listeners.remove(listener)
    return dict(arrived)


class LiveStack:
    """The Function App on the local Functions host in this process, wired (`DUALSYNC_*` settings, webhooks on
    both sides) to the emulators of `emus`, state in `azurite`."""

    def __init__(self, emus: Emulators, azurite: Azurite) -> None:
        from function_app import build_app  # the Function App: loaded only when the live path runs
        from shared.mapping import load_pack

        self.emus, self.azurite = emus, azurite
        self.pack = load_pack(PACKS["bc"])
        self.function_key, self.dataverse_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        self.settings = product_settings(
            emus.info, azurite.connection_string, "live" + secrets.token_hex(5), public_url=self.url,
            webhooks={"bc_client_state": secrets.token_urlsafe(24), "dataverse_key": self.dataverse_key})
        from emulators.functions_host import LocalHost

        self.host = LocalHost(build_app(self.pack), runtime=self._runtime, run_timers=False,
                              function_key=self.function_key)
        self.server = BackgroundServer(self.host.asgi(), port=port, tls=local_tls())
        self.http = httpx.AsyncClient(timeout=600)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _runtime(self, host: Any) -> Any:
        from shared.app_runtime import AppRuntime

        self._loop = asyncio.get_running_loop()  # the host's serving loop, for `fire` and `settle`
        return AppRuntime(settings=self.settings, pack=self.pack, sender=host.sender())

    async def __aenter__(self) -> LiveStack:
        self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await asyncio.to_thread(self.server.stop)

    async def on_host(self, work: Any) -> Any:
        assert self._loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def settle(self, timeout: float = 60.0) -> bool:
        """Wait until the queue is idle (nothing queued, in flight or scheduled); False when it was not."""
        try:
            await self.on_host(self.host.queue().wait_idle(timeout, scheduled=True))
        except TimeoutError:
            return False
        return True

    async def manage(self, method: str, route: str, **params: str) -> Any:
        r = await self.http.request(method, f"{self.url}/api/manage/{route}", params=params,
                                    headers={"x-functions-key": self.function_key})
        if r.status_code >= 300:
            raise RuntimeError(f"manage/{route} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    async def register_webhooks(self) -> None:
        """Dataverse endpoints and steps over its Web API; BC subscriptions by the app's own timer."""
        dv_url = self.emus.url("dv")
        credential = make_credential(tenant_id=self.settings.crm.tenant_id, client_id=CLIENT_ID,
                                     client_secret=self.settings.crm.client_secret, authority=dv_url)
        async with httpx.AsyncClient(base_url=f"{dv_url}/api/data/v9.2/", timeout=60,
                                     headers={"OData-MaxVersion": "4.0", "OData-Version": "4.0"},
                                     auth=BearerAuth(credential, f"{dv_url}/.default")) as dv_api:
            await register_dataverse(dv_api, self.pack, self.url, self.dataverse_key)
        await credential.close()
        await self.on_host(self.host.fire(SUBSCRIPTION_TIMER))


async def couple(stack: LiveStack, records: int) -> dict[str, list[str]]:
    """`records` BC customers (bulk, before any webhook exists), coupled to new accounts by a full sync
    through the admin API; returns the ids per emulator, in the same order."""
    from bench.capacity import SOURCES  # the capacity benchmark's BC customers

    emus, source = stack.emus, SOURCES["to_crm"]
    await clear_table(emus.url("erp"), "customers", "id")
    async with httpx.AsyncClient(base_url=emus.url("erp"), timeout=60) as admin:
        currencies = (await admin.get("/_admin/tables/currencies")).json()["value"]
    ctx = {**emus.info, "eur": next(c["id"] for c in currencies if c["code"] == "EUR")}
    await bulk_insert(emus.url("erp"), "customers", (source.row(i, ctx) for i in range(records)), who=BC_PERSON)
    await stack.manage("POST", "full-sync", mapping="customers", dry_run="false", direction="to_crm")
    async with httpx.AsyncClient(base_url=emus.url("dv"), timeout=60) as admin:
        accounts = {a["accountnumber"]: a["accountid"]
                    for a in (await admin.get("/_admin/tables/accounts")).json()["value"]}
    rows = [source.row(i, ctx) for i in range(records)]
    pairs = [(r["id"], accounts[r["number"]]) for r in rows if r["number"] in accounts]
    if len(pairs) != records:
        raise SystemExit(f"only {len(pairs)} of {records} customers were coupled")
    return {"erp": [c for c, _ in pairs], "dv": [a for _, a in pairs]}


@dataclass
class Measured:
    direction: str
    rate: float
    sent: int
    achieved: float
    delays: list[float]
    exact: int
    processed: float  # changes reflected per second, first edit to last arrival
    calls: int
    table: int
    throttled: int
    cpu_ms: float
    idle: bool

    def p(self, q: float) -> float:
        return percentile(self.delays, q) if self.delays else float("nan")


async def measure(stack: LiveStack, ids: dict[str, list[str]], way: Way, changes: int,
                  rate: float) -> Measured:
    """One stream: the load generator in a process of its own, arrivals heard in the emulators' process,
    the product's requests and CPU counted here from the first edit until its queue is idle."""
    emus, rows = stack.emus, ids[way.source]
    prefix = f"{way.prefix}{secrets.token_hex(2)}-"  # this stream's values only: earlier ones may still arrive
    emus.call(child_listen, way, prefix)
    requests = Requests.of(emus.info, stack.azurite.connection_string)
    cpu = time.process_time()
    with requests.counting():
        got = await asyncio.to_thread(run_measured, edit_stream, emus.url(way.source), way.table, way.field, way.who,
                                      rows, prefix, changes, rate)
        sent = got["sent"]
        last = list({rows[i % len(rows)]: value for i, value in enumerate(sent)}.values())
        arrived = await asyncio.to_thread(emus.call, child_arrivals, prefix, changes, last, 60.0)
        idle = await stack.settle()
    cpu_ms = (time.process_time() - cpu) * 1000
    delays = reflected(list(sent), sent, arrived, len(rows))
    span = (max(arrived.values()) - min(sent.values())) if arrived else float("nan")
    return Measured(way.label, rate, len(sent), len(sent) / got["seconds"], delays,
                    sum(1 for v in sent if v in arrived), len(delays) / span if arrived else 0.0,
                    requests.calls, requests.table, requests.throttled, cpu_ms / len(sent), idle)


async def run_live(records: int, changes: int, rates: Sequence[float], warm_up: int = 20) -> list[Measured]:
    results: list[Measured] = []
    with Azurite() as azurite, Emulators(EmulatorSpec("bc", protected=True, notify_ms=0)) as emus:
        async with LiveStack(emus, azurite) as stack:
            ids = await couple(stack, records)
            await stack.register_webhooks()
            await stack.settle()
            for way in DIRECTIONS:  # connections opened, caches warm; not counted
                warm = await measure(stack, ids, way, warm_up, 10.0)
                if not warm.delays:
                    raise SystemExit(f"{way.label}: no change arrived during the warm-up: are the webhooks wired?")
            for rate in rates:
                for way in DIRECTIONS:
                    results.append(await measure(stack, ids, way, changes, rate))
                    m = results[-1]
                    print(f"  {way.label} at {rate:g}/s: {len(m.delays)}/{m.sent} reflected, p95 {m.p(95):.0f} ms",
                          flush=True)
    return results


# ----- the report ------------------------------------------------------------------------------------------
def keeps_up(m: Measured) -> bool:
    """Every change reflected, and processed at 80 % or more of the rate achieved: no backlog built up."""
    return len(m.delays) == m.sent and m.processed >= 0.8 * m.achieved


def sustained(results: Sequence[Measured], direction: str) -> str:
    """The highest rate that kept up and whose p95 is within twice the p95 at the lowest rate that kept up;
    when none kept up, the most changes processed per second (what the stack carries when saturated)."""
    mine = sorted((m for m in results if m.direction == direction), key=lambda m: m.rate)
    kept = [m for m in mine if keeps_up(m)]
    if not kept:
        most = max((m.processed for m in mine), default=float("nan"))
        return f"below {mine[0].rate:g}/s (at most {most:.1f}/s processed)" if mine else "not measured"
    calm = kept[0].p(95)
    return f"{max(m.rate for m in kept if m.p(95) <= 2 * calm):g}/s"


def render(results: Sequence[Measured], records: int, changes: int, command: str) -> str:
    rows = [[m.direction, f"{m.rate:g}", f"{m.achieved:.1f}", f"{len(m.delays)}/{m.sent}", m.exact,
             f"{statistics.median(m.delays):.0f}" if m.delays else "–", f"{m.p(95):.0f}", f"{m.p(99):.0f}",
             f"{max(m.delays):.0f}" if m.delays else "–", f"{m.processed:.1f}", f"{m.calls / m.sent:.2f}",
             f"{m.table / m.sent:.2f}", m.throttled, f"{m.cpu_ms:.1f}", "" if m.idle else "queue not idle after 60 s"]
            for m in results]
    header = ["direction", "rate sent /s", "achieved /s", "reflected", "value itself", "median ms", "p95 ms",
              "p99 ms", "max ms", "processed /s", "API calls/change", "Table tx/change", "429s",
              "CPU ms/change", "note"]
    targets = [[f"p95 < {P95_TARGET_MS:g} ms at {TARGET_RATE:g} changes/s", m.direction, f"{m.p(95):.0f} ms",
                "**pass**" if m.p(95) < P95_TARGET_MS else "**FAIL**"] for m in results if m.rate == TARGET_RATE]
    targets = targets or [[f"p95 < {P95_TARGET_MS:g} ms at {TARGET_RATE:g} changes/s", "–", "not measured", "–"]]
    knees = ", ".join(f"{d.label} {sustained(results, d.label)}" for d in DIRECTIONS)
    return "\n".join([
        f"## Live path: webhook → destination, {records} coupled records ({today()})", "",
        f"    {command}", "",
        f"Machine: {machine()}. Code: {commit()}. The emulators in a child process over HTTPS, the load "
        "generator in another, the Function App on the local Functions host in the measured process, Azurite in "
        "its own; service "
        f"protection on, notification delays 0, no injected latency. {changes} changes per rate and direction, "
        "round-robin, on a fixed timetable; delays until the value or a later edit of the same record arrived. "
        "API calls, Table transactions and CPU are the Function App process's, from the first edit until its "
        "queue was idle.", "",
        markdown_table(header, rows), "",
        "Sustained: the highest rate tested that kept up (every change reflected, processed at ≥ 80 % of the "
        f"rate achieved) with its p95 within 2× the p95 at the lowest such rate: {knees}.", "",
        markdown_table(["target", "direction", "value", "verdict"], targets), ""])


def headline(results: Sequence[Measured]) -> str:
    lines = ["HEADLINE (live path)"]
    for m in results:
        lines.append(f"  {m.direction} at {m.rate:g}/s: median {statistics.median(m.delays) if m.delays else 0:.0f} "
                     f"ms, p95 {m.p(95):.0f} ms, p99 {m.p(99):.0f} ms, {m.calls / m.sent:.2f} API calls and "
                     f"{m.cpu_ms:.0f} ms CPU per change")
    lines += [f"  sustained {d.label}: {sustained(results, d.label)}" for d in DIRECTIONS]
    return "\n".join(lines)


def live_main(*, records: int = 250, changes: int = 500, rates: Sequence[float] = (10.0, 50.0, 200.0),
              write: bool = True, command: str | None = None) -> str:
    """Measure, print the table, write it to bench/RESULTS.md (`write`); returns the headline block."""
    trust_local_ca()
    command = command or (f"python -m bench.webhook_latency --records {records} --changes {changes} "
                          f"--rates {' '.join(f'{r:g}' for r in rates)}")
    results = asyncio.run(run_live(records, changes, rates))
    report = render(results, records, changes, command)
    print("\n" + report)
    if write:
        write_section("live", report)
    return headline(results)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=500, help="changes per rate and direction")
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 50.0, 200.0], help="changes per second")
    parser.add_argument("--rate", type=float, help="one rate (the same as --rates RATE)")
    parser.add_argument("--records", type=int, default=250, help="coupled customers the changes go round")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    rates = [args.rate] if args.rate else args.rates
    command = "python -m bench.webhook_latency " + " ".join(sys.argv[1:] if argv is None else argv)
    print("\n" + live_main(records=args.records, changes=args.changes, rates=rates, write=not args.no_write,
                           command=command))


if __name__ == "__main__":
    main()
