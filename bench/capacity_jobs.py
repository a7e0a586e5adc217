"""What `bench.capacity` runs in a measured process of its own (`harness.run_measured`): the product's full
sync, the naive one-request-per-record baseline, and the capacity bound's creates sent alone. Each job builds
the engine exactly as the Function App does (`shared.runtime.build_engine` from default settings pointing at
the emulators), counts the requests of its timed part and returns plain numbers.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.harness import PACKS, Requests, cpu_and_wall, product_settings
from shared.connectors.base import WriteOp
from shared.connectors.odata_batch import build_batch, parse_batch_response
from shared.http.auth import make_credential
from shared.mapping import Direction, Side, map_record, source_filter
from shared.runtime import build_engine
from shared.sync import SyncEngine, full_create, match
from shared.sync.checkpoint import CheckpointStore
from shared.sync.context import RunContext


@dataclass(frozen=True)
class Flow:
    """One direction of one mapping the matrix measures: source rows are seeded into `source.table` of the
    emulator `source_emulator`; `reference` mappings are synced first, untimed (what the flow's lookups need)."""

    name: str
    label: str
    erp: str  # which ERP emulator: bc / fo
    direction: Direction
    mapping: str = "customers"
    reference: tuple[str, ...] = ()

    @property
    def source_emulator(self) -> str:
        return "erp" if self.direction is Direction.TO_CRM else "dv"

    @property
    def target_emulator(self) -> str:
        return "dv" if self.direction is Direction.TO_CRM else "erp"

    @property
    def target_service(self) -> str:
        return "Dataverse" if self.direction is Direction.TO_CRM else ("F&O" if self.erp == "fo" else "BC")


FLOWS = {f.name: f for f in (
    Flow("to_crm", "BC → Dataverse", "bc", Direction.TO_CRM),
    Flow("to_erp", "Dataverse → BC", "bc", Direction.TO_ERP),
    Flow("fo_to_crm", "F&O → Dataverse", "fo", Direction.TO_CRM,
         reference=("companies", "currencies", "customer-groups", "payment-terms")),
)}


@dataclass(frozen=True)
class Job:
    """A measured run: `flow` against the emulators of `info`, state in `storage` under `prefix`. `records`:
    how many (the sync: all the source holds). The bound sends `batch` operations per `$batch`, `in_flight` at
    once. `max_seconds` stops a sync early (memory on a shortened run)."""

    flow: str
    info: dict[str, Any]
    storage: str
    prefix: str
    records: int
    batch: int = 0
    in_flight: int = 0
    max_seconds: float | None = None


class _Engine:
    """`async with _Engine(job) as (engine, requests):` the product's engine, its reference mappings synced."""

    def __init__(self, job: Job) -> None:
        self.job, self.flow = job, FLOWS[job.flow]
        self.settings = product_settings(job.info, job.storage, job.prefix, pack_path=PACKS[self.flow.erp])
        self.requests = Requests.of(job.info, job.storage)

    async def __aenter__(self) -> tuple[SyncEngine, Requests]:
        self._cm = build_engine(self.settings)
        engine = await self._cm.__aenter__()
        if self.flow.reference:
            await engine.sync_full(list(self.flow.reference))
        return engine, self.requests

    async def __aexit__(self, *exc: Any) -> None:
        await self._cm.__aexit__(*exc)


# ----- the product's full sync -----------------------------------------------------------------------------
async def job_sync(job: Job) -> dict[str, Any]:
    """`sync_full([mapping], directions={flow})`, timed; stopped after `max_seconds` when given."""
    flow = FLOWS[job.flow]
    async with _Engine(job) as (engine, requests):
        work = engine.sync_full([flow.mapping], directions=frozenset({flow.direction}))
        with requests.counting(), cpu_and_wall() as took:
            try:
                [run] = await (asyncio.wait_for(work, job.max_seconds) if job.max_seconds else work)
            except TimeoutError:
                run = None
        if run is None:  # how far it got: the checkpoint of its last finished page
            cp = await CheckpointStore(engine.state.watermarks.table).find(flow.mapping, flow.direction.value)
            pages = cp.pages if cp else 0
            return {**took, **requests.snapshot(), "records": pages * 1000, "stopped": True, "counts": {},
                    "failures": []}
    return {**took, **requests.snapshot(), "records": job.records, "stopped": False, "counts": dict(run.counts),
            "failures": [f.message for f in run.failures[:3]], "failed": len(run.failures)}


# ----- the naive baseline ----------------------------------------------------------------------------------
async def source_records(engine: SyncEngine, flow: Flow, n: int) -> list[Any]:
    """The first `n` source records the mapping takes, read page by page."""
    mapping, side = engine.mapping(flow.mapping), flow.direction.source
    records: list[Any] = []
    async for page in engine.connector(side).list(mapping.entity(side).entity, filter=source_filter(mapping, side),
                                                  page_size=min(n, 1000)):
        records.extend(page)
        if len(records) >= n:
            break
    return records[:n]


async def job_baseline(job: Job) -> dict[str, Any]:
    """GET the source records page by page, then one create per record, one after another: no batching, no
    state, no lookups (left out of the body: resolving them would cost the baseline more requests), no empty
    values (BC refuses a null; leaving them out is what a naive client writes)."""
    flow = FLOWS[job.flow]
    async with _Engine(job) as (engine, requests):
        mapping, target = engine.mapping(flow.mapping), engine.connector(flow.direction.target)
        entity = mapping.entity(flow.direction.target).entity
        with requests.counting(), cpu_and_wall() as took:
            for record in await source_records(engine, flow, job.records):
                payload = map_record(mapping, record.values, flow.direction, creating=True).payload
                await target.create(entity, {k: v for k, v in payload.items() if v is not None
                                             and not k.endswith("@odata.bind") and not k.startswith("_")})
    return {**took, **requests.snapshot(), "records": job.records}


# ----- the capacity bound, measured ------------------------------------------------------------------------
async def prepared_creates(engine: SyncEngine, flow: Flow, n: int) -> list[WriteOp]:
    """The creates the full sync would send for the first `n` source records (mapped, lookups resolved)."""
    mapping = engine.mapping(flow.mapping)
    ctx = RunContext(job_id="bench-bound")
    prepared = await match.bounded(engine.options.concurrency,
                                   (full_create.prepare(engine, ctx, mapping, flow.direction, r)
                                    for r in await source_records(engine, flow, n)))
    ops = [full_create.write_op(engine, mapping, flow.direction, p) for p in prepared
           if isinstance(p, full_create.Prepared)]
    if len(ops) != n:
        raise RuntimeError(f"capacity bound: only {len(ops)} of {n} creates could be prepared")
    return ops


async def job_bound(job: Job) -> dict[str, Any]:
    """The flow's creates, prepared beforehand (untimed), then sent alone: `batch` per `$batch`, `in_flight`
    requests at once — the service's own concurrency limit, not the connector's, so this sends them itself."""
    flow, runner = FLOWS[job.flow], _Engine(job)
    async with runner as (engine, requests):
        ops = await prepared_creates(engine, flow, job.records)
        sender = _BatchSender(engine, flow, runner.settings)
        await sender.sign_in()
        with requests.counting(), cpu_and_wall() as took:
            failed = await sender.send(ops, job.batch, job.in_flight)
        await sender.close()
    if failed:
        raise RuntimeError(f"capacity bound: {failed} of {len(ops)} creates failed: {sender.first_error}")
    return {**took, **requests.snapshot(), "records": len(ops), "batch": job.batch, "in_flight": job.in_flight}


class _BatchSender:
    """Sends creates as `$batch` requests with the target connector's request encoding, holding `in_flight`
    at once; a 429 waits its Retry-After and goes again."""

    def __init__(self, engine: SyncEngine, flow: Flow, settings: Any) -> None:
        self.side = flow.direction.target
        self.connector = engine.connector(self.side)
        self.group = settings.crm if self.side is Side.CRM else settings.erp
        self.first_error = ""
        self.http = httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=64))

    async def sign_in(self) -> None:
        g = self.group
        self.credential = make_credential(tenant_id=g.tenant_id, client_id=g.client_id, client_secret=g.client_secret,
                                          authority=g.authority)
        self.token = (await self.credential.get_token(g.effective_scope)).token

    async def close(self) -> None:
        await self.credential.close()
        await self.http.aclose()

    async def send(self, ops: Sequence[WriteOp], batch: int, in_flight: int) -> int:
        gate = asyncio.Semaphore(in_flight)
        chunks = [ops[i:i + batch] for i in range(0, len(ops), batch)]
        failed = await asyncio.gather(*(self._one(chunk, gate) for chunk in chunks))
        return sum(failed)

    async def _one(self, chunk: Sequence[WriteOp], gate: asyncio.Semaphore) -> int:
        url, headers, content = self._encode(chunk)
        headers = {**headers, "Authorization": f"Bearer {self.token}", "Prefer": "odata.continue-on-error"}
        while True:
            async with gate:
                r = await self.http.post(url, headers=headers, content=content)
            if r.status_code != 429:
                break
            await asyncio.sleep(float(r.headers.get("Retry-After") or 1))
        statuses = self._statuses(r)
        bad = [s for s in statuses if s >= 400] + [r.status_code] * (len(chunk) - len(statuses))
        if bad and not self.first_error:
            self.first_error = f"HTTP {bad[0]}: {r.text[:300]}"
        return len(bad)

    def _encode(self, chunk: Sequence[WriteOp]) -> tuple[str, dict[str, str], bytes]:
        c = self.connector
        if self.side is Side.CRM:  # Dataverse: multipart, each operation as the connector writes it
            content_type, body = build_batch([c.batch_request(op) for op in chunk], atomic=False)
            return c.batch_url, {"Content-Type": content_type, "OData-Version": "4.0",
                                 "OData-MaxVersion": "4.0"}, body
        requests = [{"method": "POST", "id": str(n), "url": c.path(op.entity, company=c.company_id),
                     "headers": {"Content-Type": "application/json"}, "body": dict(op.payload)}
                    for n, op in enumerate(chunk, start=1)]  # Business Central: JSON batch
        return c.api_root + "$batch", {"Content-Type": "application/json"}, json.dumps({"requests": requests}).encode()

    def _statuses(self, r: httpx.Response) -> list[int]:
        if r.status_code >= 400:
            return []
        if self.side is Side.CRM:
            return [p.status for p in parse_batch_response(r.headers.get("content-type"), r.content)]
        return [int(a.get("status", 0)) for a in r.json().get("responses", [])]


def per_record(value: float, records: int) -> float:
    return value / records if records else math.nan
