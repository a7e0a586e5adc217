"""What the benchmarks share: the emulators in a child process (over HTTPS, so every figure taken in the
benchmark's own process is the product's), the product's settings for them, request counting, memory and CPU
of a measured process, bulk seeding through `/_admin`, the capacity bound of an emulated service computed from
its settings, and a generated section of `bench/RESULTS.md`.

    with Emulators(EmulatorSpec("bc")) as emus:                 # BC + Dataverse, service protection on
        settings = product_settings(emus.info, azurite.connection_string, "bx1234")
        result = run_measured(job, spec)                        # a spawned process: its peak RSS and CPU

Processes: the emulators serve from one spawned child (uvicorn threads, one interpreter); each measured engine
run gets a spawned process of its own, so its peak RSS (`VmHWM`) and CPU are the product's alone; Azurite is a
Node.js process of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from emulators.common.tls import local_tls, trust_local_ca
from emulators.sandbox.settings import COMPANY_NAME, INTEGRATION_CLIENT, INTEGRATION_SECRET
from shared.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
PACKS = {"bc": ROOT / "templates" / "bc-sales.yaml", "fo": ROOT / "templates" / "fo-dataverse.yaml"}
CLIENT_ID, SECRET = INTEGRATION_CLIENT, INTEGRATION_SECRET
SEED = 7


# ----- the emulators, in a child process -------------------------------------------------------------------
@dataclass(frozen=True)
class EmulatorSpec:
    """Which emulators: the ERP (`bc` or `fo`) and Dataverse, with Dataverse's alternate keys as the sandbox
    defines them for the ERP's pack. `protected`: service protection limits on (their defaults). `notify_ms`:
    BC's notification delay / F&O's data-event delay / Dataverse's webhook delay (0: at once)."""

    erp: Literal["bc", "fo"] = "bc"
    protected: bool = True
    records: int = 2  # seed size: the reference data, plus a few sample rows benchmarks clear
    notify_ms: float = 0.0
    pack_keys: bool = True


@dataclass
class Child:
    """What functions run in the child (`Emulators.call`) get: the apps and their URLs, by `erp` / `dv`."""

    spec: EmulatorSpec
    apps: dict[str, Any]
    urls: dict[str, str]
    scratch: dict[str, Any] = field(default_factory=dict)

    def emulator(self, name: str) -> Any:
        return self.apps[name].state.emulator


def _build_apps(spec: EmulatorSpec) -> dict[str, Any]:
    from emulators.business_central import BusinessCentralSettings
    from emulators.business_central import create_app as create_bc
    from emulators.dataverse import DataverseSettings
    from emulators.dataverse import create_app as create_dv
    from emulators.finance_operations import FinanceOperationsSettings
    from emulators.finance_operations import create_app as create_fo
    from emulators.sandbox.stack import dataverse_keys
    from shared.mapping import load_pack

    if spec.erp == "fo":
        erp = create_fo(FinanceOperationsSettings(records=0, seed=SEED, event_delay_ms=spec.notify_ms))
    else:
        erp = create_bc(BusinessCentralSettings(records=spec.records, seed=SEED, notification_delay_ms=spec.notify_ms))
    keys = dataverse_keys(load_pack(PACKS[spec.erp])) if spec.pack_keys else DataverseSettings().alternate_keys
    dv = create_dv(DataverseSettings(records=spec.records, seed=SEED, webhook_delay_ms=spec.notify_ms,
                                     alternate_keys=keys))
    apps = {"erp": erp, "dv": dv}
    for app in apps.values():
        # The throttle holds its own Limits object (BC copies the settings'), so this is where it is switched.
        app.state.emulator.throttle.limits.enabled = spec.protected
    return apps


def _describe(child: Child) -> dict[str, Any]:
    erp, dv = child.emulator("erp"), child.emulator("dv")
    info: dict[str, Any] = {
        "erp": child.spec.erp, "erp_url": child.urls["erp"], "dv_url": child.urls["dv"],
        "erp_tenant": erp.settings.tenant_id, "dv_tenant": dv.settings.tenant_id,
        "dv_integration": dv.integration.user_id, "pid": os.getpid()}
    if child.spec.erp == "fo":
        info["erp_integration"] = erp.integration.user_id
    else:
        info["environment"] = erp.settings.environment
        info["company"] = next(r["id"] for r in erp.store.table("companies").all() if r["name"] == COMPANY_NAME)
    return info


def _serve(conn: Any, spec: EmulatorSpec) -> None:
    """The child: serve both emulators, then run what the parent sends (`(function, args)`) until None."""
    from emulators.common.server import BackgroundServer  # here: measured processes need no web server

    tls = local_tls()  # HTTPS, as the services serve it
    apps = _build_apps(spec)
    with ExitStack() as stack:
        servers = {name: stack.enter_context(BackgroundServer(app, tls=tls)) for name, app in apps.items()}
        child = Child(spec, apps, {name: server.url for name, server in servers.items()})
        conn.send(_describe(child))
        while (message := conn.recv()) is not None:
            function, args = message
            try:
                conn.send((True, function(child, *args)))
            except Exception:
                conn.send((False, traceback.format_exc()))


def child_cpu(child: Child) -> float:
    """CPU seconds the emulators' process used so far."""
    return time.process_time()


def child_fresh_limits(child: Child) -> None:
    """Forget every user's service-protection window (requests, execution time), so each measured run starts
    with the budget a run starting after a quiet while has, whatever ran before it in this benchmark. The
    Throttle has no public reset; its per-user state is rebuilt on the next request."""
    for name in child.apps:
        child.emulator(name).throttle._users.clear()


def child_service_settings(child: Child) -> dict[str, dict[str, Any]]:
    """The settings in effect that bound a service's write capacity, per emulator (`erp`, `dv`)."""
    out = {}
    for name in child.apps:
        emu = child.emulator(name)
        out[name] = {"faults": emu.faults.faults.model_dump(), "limits": emu.throttle.limits.model_dump(),
                     "max_batch": emu.settings.max_batch_requests}
    return out


class Emulators:
    """`with Emulators(spec) as emus:` the ERP and Dataverse emulators served by a spawned child; `info` holds
    their URLs and ids; `call(function, *args)` runs a module-level `function(child, *args)` there."""

    def __init__(self, spec: EmulatorSpec | None = None) -> None:
        self.spec = spec or EmulatorSpec()
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Emulators:
        trust_local_ca()  # before the child starts and before any HTTPS client: both inherit it
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.spec), daemon=True, name="emulators")
        self._proc.start()
        self.info = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        with suppress(OSError):  # the child is gone already
            self._conn.send(None)
        self._proc.join(timeout=15)
        if self._proc.is_alive():
            self._proc.terminate()

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        self._conn.send((function, args))
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"in the emulators' process: {value}")
        return value

    def cpu(self) -> float:
        return float(self.call(child_cpu))

    def fresh_limits(self) -> None:
        self.call(child_fresh_limits)

    def url(self, name: str) -> str:
        return str(self.info[f"{name}_url"])


# ----- the product's settings for the emulators ------------------------------------------------------------
def credential(tenant: str, authority: str) -> Any:
    """azure-identity's ClientSecretCredential for the integration client, as the Function App uses it."""
    from pydantic import SecretStr

    from shared.http.auth import make_credential

    return make_credential(tenant_id=tenant, client_id=CLIENT_ID, client_secret=SecretStr(SECRET), authority=authority)


def product_settings(info: Mapping[str, Any], storage: str, prefix: str, **extra: Any) -> Settings:
    """`DUALSYNC_*` settings for the emulators of `info` (what `Emulators.info` holds), state in the Table storage
    of connection string `storage` under `prefix`; everything else is the product's default unless `extra`
    (top-level groups, e.g. `retry={…}`) says otherwise. The pack is the ERP's."""
    creds = {"client_id": CLIENT_ID, "client_secret": SECRET}
    erp_url, dv_url = info["erp_url"], info["dv_url"]
    if info["erp"] == "fo":
        erp = {"kind": "finance_operations", "tenant_id": info["erp_tenant"], "authority": erp_url,
               "base_url": erp_url, "integration_user_ids": info["erp_integration"], **creds}
    else:
        erp = {"tenant_id": info["erp_tenant"], "authority": erp_url, "base_url": f"{erp_url}/v2.0",
               "environment": info["environment"], "company_id": info["company"], **creds}
    crm = {"tenant_id": info["dv_tenant"], "authority": dv_url, "base_url": dv_url,
           "integration_user_ids": info["dv_integration"], **creds}
    return load_settings(storage={"connection_string": storage, "table_prefix": prefix}, erp=erp, crm=crm,
                         **{"pack_path": PACKS[info["erp"]], **extra})


# ----- counting the product's requests ---------------------------------------------------------------------
def _netloc(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@dataclass
class Requests:
    """Requests this process sends while `counting()`: API calls per `"<service> <METHOD>"` (every HTTP attempt
    to the emulators' APIs, retries included; tokens and `/_admin` left out), how many were answered 429, and
    Table requests (every HTTP attempt to Azurite; a transaction is one). Counted where every client's request
    passes — httpx's transport and azure-core's aiohttp transport — because the product builds its own clients
    (`shared.runtime.build_engine`, the Function App's runtime); what is counted is what an event hook and the
    Table client's `raw_request_hook` would count."""

    services: dict[str, str]  # netloc → service name
    table_netloc: str
    api: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    table: int = 0

    @classmethod
    def of(cls, info: Mapping[str, Any], storage: str) -> Requests:
        erp_name = "F&O" if info["erp"] == "fo" else "BC"
        table_endpoint = next(p.split("=", 1)[1] for p in storage.split(";") if p.startswith("TableEndpoint="))
        return cls({_netloc(info["erp_url"]): erp_name, _netloc(info["dv_url"]): "Dataverse"},
                   _netloc(table_endpoint))

    @property
    def calls(self) -> int:
        return sum(self.api.values())

    def reset(self) -> None:
        self.api.clear()
        self.throttled = self.table = 0

    def snapshot(self) -> dict[str, Any]:
        return {"calls": self.calls, "by": dict(self.api), "throttled": self.throttled, "table": self.table}

    def _api(self, request: httpx.Request) -> str | None:
        service = self.services.get(f"{request.url.host}:{request.url.port}")
        path = request.url.path
        if service is None or path.startswith("/_admin") or "/oauth2/" in path:
            return None
        return f"{service} {request.method}"

    @contextmanager
    def counting(self) -> Iterator[Requests]:
        # Imported here: aiohttp must not load before the local CA is trusted (emulators.common.tls).
        from azure.core.pipeline.transport import AioHttpTransport

        send_api = httpx.AsyncHTTPTransport.handle_async_request
        send_table = AioHttpTransport.send
        requests = self

        async def api(transport: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
            key = requests._api(request)
            if key is not None:
                requests.api[key] += 1
            response = await send_api(transport, request)
            if key is not None and response.status_code == 429:
                requests.throttled += 1
            return response

        async def table(transport: Any, request: Any, **kwargs: Any) -> Any:
            if _netloc(str(request.url)) == requests.table_netloc:
                requests.table += 1
            return await send_table(transport, request, **kwargs)

        httpx.AsyncHTTPTransport.handle_async_request = api  # type: ignore[method-assign]
        AioHttpTransport.send = table  # type: ignore[method-assign]
        try:
            yield self
        finally:
            httpx.AsyncHTTPTransport.handle_async_request = send_api  # type: ignore[method-assign]
            AioHttpTransport.send = send_table  # type: ignore[method-assign]


# ----- memory and CPU of a measured process ----------------------------------------------------------------
def memory_mb(field_name: str = "VmHWM") -> float:
    """This process's peak resident memory (`VmHWM`) or current (`VmRSS`), MB; without /proc, getrusage's
    maximum (kB on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measured_main(conn: Any, job: Callable[..., Awaitable[dict[str, Any]]], args: tuple[Any, ...]) -> None:
    base = memory_mb("VmRSS")  # after the imports a spawned process makes: the interpreter, the product
    try:
        result = asyncio.run(job(*args))
        conn.send((True, {**result, "rss_base_mb": base, "rss_peak_mb": memory_mb("VmHWM")}))
    except BaseException:
        conn.send((False, traceback.format_exc()))


def run_measured(job: Callable[..., Awaitable[dict[str, Any]]], *args: Any) -> dict[str, Any]:
    """`asyncio.run(job(*args))` in a spawned process of its own (`job` a module-level coroutine function, its
    arguments picklable); its result, plus the process's resident memory after start-up (`rss_base_mb`) and
    at its peak (`rss_peak_mb`). A failure in the job raises here with its traceback."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_measured_main, args=(child, job, args), name="engine")
    proc.start()
    try:
        ok, value = parent.recv()
    except EOFError:
        proc.join(timeout=5)
        raise RuntimeError(f"the measured process died (exit code {proc.exitcode})") from None
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
    if not ok:
        raise RuntimeError(f"in the measured process: {value}")
    return dict(value)


@contextmanager
def cpu_and_wall() -> Iterator[dict[str, float]]:
    """`with cpu_and_wall() as took:` … then `took["seconds"]`, `took["cpu_s"]` (this process)."""
    took: dict[str, float] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield took
    finally:
        took["seconds"] = time.perf_counter() - wall
        took["cpu_s"] = time.process_time() - cpu


# ----- the emulators' admin routes: configure, reset, bulk seed, edit as a person ---------------------------
async def configure(url: str, latency: float, batch_op: float, records: int | None = None, *,
                    protected: bool = False) -> None:
    """Injected latency per request and per `$batch` operation, service protection on or off; with `records`,
    reset and re-seed the emulator first (`/_admin/reset`)."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as admin:
        if records is not None:
            (await admin.post("/_admin/reset", json={"records": records, "seed": SEED})).raise_for_status()
        (await admin.patch("/_admin/config", json={"faults": {"latency_ms": latency, "batch_op_latency_ms": batch_op},
                                                   "limits": {"enabled": protected}})).raise_for_status()


async def bulk_insert(url: str, table: str, rows: Iterable[dict[str, Any]], *, who: str | None = None,
                      chunk: int = 5000) -> int:
    """Insert `rows` through `POST /_admin/bulk/{table}`, `chunk` per request (rows made lazily, so a million
    never sit in memory at once); returns how many were inserted."""
    params = {"as": who} if who else None
    async with httpx.AsyncClient(base_url=url, timeout=600) as admin:
        async def send(batch: list[dict[str, Any]]) -> int:
            r = await admin.post(f"/_admin/bulk/{table}", params=params, json=batch)
            if r.status_code != 201:
                raise RuntimeError(f"bulk insert into {table} refused: {r.status_code} {r.text[:300]}")
            return int(r.json()["inserted"])

        inserted, batch = 0, []
        for row in rows:
            batch.append(row)
            if len(batch) == chunk:
                inserted, batch = inserted + await send(batch), []
        return inserted + (await send(batch) if batch else 0)


async def clear_table(url: str, table: str, key: str) -> int:
    """Delete every row of `table` (a seed's sample rows, before a benchmark seeds its own)."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as admin:
        rows = (await admin.get(f"/_admin/tables/{table}")).json()["value"]
        for row in rows:
            (await admin.delete(f"/_admin/tables/{table}/{row[key]}")).raise_for_status()
    return len(rows)


async def edit_rows(url: str, table: str, ids: Sequence[str], body: Callable[[int], dict[str, Any]], *,
                    who: str, concurrency: int = 16) -> None:
    """PATCH each row of `ids` (URL-ready) as the person `who`, `body(i)` for the i-th."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120) as admin:
        async def one(i: int, rid: str) -> None:
            async with gate:
                r = await admin.patch(f"/_admin/tables/{table}/{rid}", params={"as": who}, json=body(i))
                if r.status_code >= 300:
                    raise RuntimeError(f"editing {table}/{rid} failed: {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(one(i, rid) for i, rid in enumerate(ids)))


async def edit_stream(url: str, table: str, field_name: str, who: str, ids: Sequence[str], prefix: str,
                      changes: int, rate: float) -> dict[str, Any]:
    """A person's edits on a fixed timetable of `rate` per second: the i-th sets `field_name` of row
    `ids[i % len(ids)]` to `<prefix><i>`, each awaited (an edit that ran late shortens the next pause). Returns
    `sent` (value → `time.monotonic()` when its edit started; the clock is the machine's, so another process
    can compare) and the `seconds` spent. Run it in a process of its own (`run_measured`) to keep the load
    generator out of the processes measured."""
    sent: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as admin:
        first = time.monotonic()
        for i in range(changes):
            value = f"{prefix}{i:06d}"
            sent[value] = time.monotonic()
            r = await admin.patch(f"/_admin/tables/{table}/{ids[i % len(ids)]}", params={"as": who},
                                  json={field_name: value})
            r.raise_for_status()
            await asyncio.sleep(max(0.0, first + (i + 1) / rate - time.monotonic()))
        return {"sent": sent, "seconds": time.monotonic() - first}


# ----- the capacity bound of an emulated service -----------------------------------------------------------
@dataclass(frozen=True)
class ServiceModel:
    """What bounds how fast an emulated service takes creates, from its settings in effect: injected latency
    per request and per `$batch` operation, the largest `$batch`, and the service-protection limits (requests
    in flight per user, requests and execution time per sliding window)."""

    name: str
    latency_ms: float
    batch_op_ms: float
    max_batch: int
    max_concurrent: int
    protected: bool
    window_s: float
    window_requests: int
    window_execution_ms: float | None

    @classmethod
    def of(cls, name: str, settings: Mapping[str, Any]) -> ServiceModel:
        faults, limits = settings["faults"], settings["limits"]
        return cls(name, float(faults["latency_ms"]), float(faults["batch_op_latency_ms"]), int(settings["max_batch"]),
                   int(limits["max_concurrent"]), bool(limits["enabled"]), float(limits["window_seconds"]),
                   int(limits["window_requests"]), limits.get("window_execution_ms"))


@dataclass(frozen=True)
class Bound:
    """The fastest `records` creates can go into a service: `batch` operations per `$batch`, `in_flight` at
    once; `seconds` is the least time each limit allows, the largest of them binds."""

    service: ServiceModel
    records: int
    batch: int
    in_flight: int
    requests: int
    seconds: dict[str, float]

    @property
    def binding(self) -> str:
        return max(self.seconds, key=lambda k: self.seconds[k])

    @property
    def rate(self) -> float:
        least = self.seconds[self.binding]
        return self.records / least if least > 0 else math.inf

    def describe(self) -> str:
        s = self.service
        per = s.latency_ms + self.batch * s.batch_op_ms
        text = (f"{s.name}: {self.in_flight} in flight × {self.batch}-operation $batch / ({s.latency_ms:g} ms + "
                f"{self.batch} × {s.batch_op_ms:g} ms = {per:g} ms) → {fmt_rate(self.rate)} records/s for "
                f"{self.records} records ({self.requests} requests)")
        if s.protected:
            text += (f"; windows {s.window_requests} requests"
                     + (f" and {s.window_execution_ms:,.0f} ms execution".replace(",", " ")
                        if s.window_execution_ms else "")
                     + f" per {s.window_s:g} s")
        return text + f"; binding: {self.binding}"


def capacity_bound(service: ServiceModel, records: int) -> Bound:
    """Computed from the settings alone. The records are spread over every slot the service allows (full
    batches once there are more than `max_concurrent` × `max_batch`); a batch costs the request latency plus
    its operations one after another, as the emulators run them. The windows allow a burst of
    `window_requests` requests (and `window_execution_ms` of execution) per `window_s`: a run needing more
    waits for the next window."""
    in_flight = service.max_concurrent
    batch = max(1, min(service.max_batch, math.ceil(records / in_flight)))
    requests = math.ceil(records / batch)
    per_request = (service.latency_ms + batch * service.batch_op_ms) / 1000
    seconds = {"concurrency": math.ceil(requests / in_flight) * per_request}
    if service.protected:
        seconds["request window"] = (requests - 1) // service.window_requests * service.window_s + per_request
        if service.window_execution_ms:
            spent_ms = requests * per_request * 1000
            seconds["execution window"] = ((math.ceil(spent_ms / service.window_execution_ms) - 1)
                                           * service.window_s + per_request)
    return Bound(service, records, batch, in_flight, requests, seconds)


def fmt_rate(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:,.1f}".replace(",", " ")


# ----- the machine, the code, and the generated section of bench/RESULTS.md --------------------------------
def machine() -> str:
    cpu = "unknown CPU"
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = f"{len(names)} × {names[0]}" if names else cpu
    except OSError:
        pass
    ram = ""
    try:
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
        ram = f", {kb / 2**20:.0f} GB RAM"
    except (OSError, StopIteration):
        pass
    return f"{cpu}{ram}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


def write_section(key: str, text: str, path: Path = RESULTS) -> None:
    """Put `text` between `<!-- key:begin -->` and `<!-- key:end -->` in `path`: replaced when there, else
    appended. Nothing else of the file is touched."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    content = path.read_text(encoding="utf-8")
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in content and end in content:
        content = content[:content.index(begin)] + block + content[content.index(end) + len(end):]
    else:
        content = content.rstrip() + "\n\n" + block + "\n"
    path.write_text(content, encoding="utf-8")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0…100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]
