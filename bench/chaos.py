"""Chaos: N random operations by people on both sides while the world misbehaves, then the verdict from the
two systems' own stores. `python -m bench.chaos [--operations 10000] [--records 1000] [--seed 7]` (`make chaos`).

The whole local stack runs (`emulators.sandbox.Sandbox`: Azurite, the BC and Dataverse emulators, the local
Functions host with its webhooks, Service Bus queue and timers' functions) on a copy of the bc-sales pack whose
customers and contacts create counterparts (`only_coupled: false`), so every record a person makes must reach
the other side.

1. Prepare: couple the reference data, then `--records` customers/accounts and contacts made on both sides
   without webhooks; a full sync of customers and contacts is interrupted part way and resumed.
2. Storm: `--operations` random operations with up to 8 at once — creates, updates of random mapped fields,
   deletes, bursts of edits to one record, the same pair edited on both sides — while the emulators answer
   ~10 % 429 (BC without Retry-After, Dataverse with), ~5 % 5xx and some hung requests, their webhooks are
   dropped, duplicated, delayed and reordered, and the Functions host is killed and restarted mid-stream.
3. Quiesce: faults off; the product's own catch-up (the modified-records sync and retry timers) runs until a
   round finds nothing to do. The time from faults-off to then is the time to converge.
4. Judge, from the emulators' stores (not dualsync's reconcile): divergent coupled pairs, duplicates (one
   natural key twice on a side), lost updates (a pair agreeing on a value neither side's last edit wrote),
   orphans (alive on one side with no living counterpart and no deletion rule to explain it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emulators.sandbox import Sandbox
from emulators.sandbox.stack import BC_PERSON, DV_PERSON
from function_app import ROOT
from shared.mapping import Side

PACK = ROOT / "templates" / "bc-sales.yaml"
MAPPINGS = ("customers", "contacts")
REFERENCE = ("salespeople", "currencies", "payment-terms", "shipment-methods", "shipping-agents")
WORDS = ["Malmö", "Lund", "Oslo", "Bergen", "Aarhus", "Turku", "Visby", "Ystad", ""]
PHONES = ["+46 40 1", "+47 55 2", "+45 86 3", "+358 9 4", "+49 89 5", ""]
TITLES = ["Buyer", "CFO", "Owner", "Clerk", "Planner", ""]


@dataclass(frozen=True)
class Table:
    """One mapping as the harness sees it: the entity on each side, the natural key people give, and the
    plain text fields people edit (ERP name, CRM name, the values they pick from)."""

    mapping: str
    erp: str
    crm: str
    erp_id: str
    crm_id: str
    erp_key: str
    crm_key: str
    fields: tuple[tuple[str, str, tuple[str, ...]], ...]


CUSTOMERS = Table("customers", "customers", "accounts", "id", "accountid", "number", "accountnumber",
                  (("city", "address1_city", tuple(WORDS)), ("phoneNumber", "telephone1", tuple(PHONES)),
                   ("addressLine1", "address1_line1", ("Storgatan 1", "Kungsgatan 2", "Main St 3", "")),
                   ("postalCode", "address1_postalcode", ("211 20", "222 21", "0150", ""))))
CONTACTS = Table("contacts", "contacts", "contacts", "id", "contactid", "email", "emailaddress1",
                 (("jobTitle", "jobtitle", tuple(TITLES)), ("city", "address1_city", tuple(WORDS)),
                  ("phoneNumber", "telephone1", tuple(PHONES)), ("mobilePhoneNumber", "mobilephone", tuple(PHONES))))
TABLES = {t.mapping: t for t in (CUSTOMERS, CONTACTS)}


def blank(value: Any) -> Any:
    # Business Central has no nulls: an empty Sales field is "" there (shared.sync.wire).
    return None if value in ("", None) else value


@dataclass
class Thing:
    """A record people made (on `born`): its natural key, which side deleted it (then it is left alone), and
    the last value people wrote to each edited field, per side."""

    table: Table
    key: str
    born: Side
    parent: str | None = None     # contacts: the customer's natural key
    deleted: Side | None = None
    last: dict[Side, dict[str, Any]] = field(default_factory=lambda: {Side.ERP: {}, Side.CRM: {}})
    history: list[tuple[float, Side, str, Any]] = field(default_factory=list)  # (monotonic, side, field, value)


@dataclass
class Tally:
    operations: Counter[str] = field(default_factory=Counter)
    failed_operations: int = 0
    host_restarts: int = 0
    injected: dict[str, Any] = field(default_factory=dict)
    backlog: int = 0   # messages queued or scheduled when the storm ended


@dataclass
class Verdict:
    pairs: int
    records: int
    divergent: list[str]
    duplicates: list[str]
    lost: list[str]
    orphans: list[str]
    converge_s: float
    rounds: int
    error_records: Counter[str]
    trail: list[str] = field(default_factory=list)  # how each lost update happened: every write, by whom

    @property
    def clean(self) -> bool:
        return not (self.divergent or self.duplicates or self.lost or self.orphans)


def chaos_pack(folder: Path) -> Path:
    """bc-sales with customers and contacts creating counterparts, so a lost create shows as an orphan."""
    data = yaml.safe_load(PACK.read_text(encoding="utf-8"))
    for m in data["mappings"]:
        if m["name"] in MAPPINGS:
            m["only_coupled"] = False
    path = folder / "chaos-pack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


class Stores:
    """Both emulators' tables, read through their admin routes (the systems' own truth), cached briefly."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self._rows: dict[tuple[Side, str], tuple[float, list[dict[str, Any]]]] = {}

    async def rows(self, side: Side, table: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        cached = self._rows.get((side, table))
        if cached is not None and not fresh and time.monotonic() - cached[0] < 1.0:
            return cached[1]
        rows = await (self.sb.bc_rows(table) if side is Side.ERP else self.sb.dv_rows(table))
        self._rows[(side, table)] = (time.monotonic(), rows)
        return rows

    async def find(self, table: Table, side: Side, key: str) -> list[dict[str, Any]]:
        name, entity = (table.erp_key, table.erp) if side is Side.ERP else (table.crm_key, table.crm)
        return [r for r in await self.rows(side, entity) if r.get(name) == key]


class People:
    def __init__(self, sb: Sandbox, rng: random.Random, stores: Stores, prefix: str) -> None:
        self.sb, self.rng, self.stores = sb, rng, stores
        self.prefix = prefix
        self.things: list[Thing] = []
        self.serial = 0
        self.tally = Tally()
        self.currency: str | None = None
        self.started = time.monotonic()

    def _key(self, table: Table) -> str:
        self.serial += 1
        return (f"{self.prefix}{self.serial:05d}" if table is CUSTOMERS
                else f"c{self.serial:05d}.{self.prefix.lower()}@chaos.example.com")

    def alive(self, table: Table) -> list[Thing]:
        return [t for t in self.things if t.table is table and t.deleted is None]

    async def create(self, table: Table, side: Side) -> None:
        values: dict[str, Any] = {}
        parent = None
        if table is CONTACTS:
            parents = [t for t in self.alive(CUSTOMERS) if await self.stores.find(CUSTOMERS, side, t.key)]
            if not parents:
                return
            parent = self.rng.choice(parents).key
        key = self._key(table)
        for erp_name, crm_name, choices in self.rng.sample(table.fields, 2):
            values[erp_name if side is Side.ERP else crm_name] = self.rng.choice(choices[:-1])
        if side is Side.ERP:
            row = {table.erp_key: key, **values}
            if table is CUSTOMERS:
                row.update(displayName=f"Chaos {key}", type="Company")
            else:
                row.update(displayName=f"Chaos Person {self.serial}", type="Person", companyNumber=parent)
            await self.sb.bc_create(table.erp, row)
        else:
            row = {table.crm_key: key, **values}
            if table is CUSTOMERS:
                row.update(name=f"Chaos {key}", customertypecode=3, statecode=0,
                           _transactioncurrencyid_value=self.currency)
            else:
                [account] = await self.stores.find(CUSTOMERS, Side.CRM, parent) or [None]
                if account is None:
                    return
                row.update(firstname="Chaos", lastname=f"Person {self.serial}", fullname=f"Chaos Person {self.serial}",
                           _parentcustomerid_value=account["accountid"], parentcustomeridtype="account")
            await self.sb.dv_create(table.crm, row)
        thing = Thing(table, key, side, parent)
        for erp_name, crm_name, _ in table.fields:
            name = erp_name if side is Side.ERP else crm_name
            if name in values:
                thing.last[side][erp_name] = values[name]
                thing.history.append((time.monotonic(), side, erp_name, values[name]))
        self.things.append(thing)

    async def edit(self, thing: Thing, side: Side, count: int = 1) -> bool:
        [row] = await self.stores.find(thing.table, side, thing.key) or [None]
        if row is None:
            return False
        for _ in range(count):
            erp_name, crm_name, choices = self.rng.choice(thing.table.fields)
            value = self.rng.choice(choices)
            if side is Side.ERP:
                await self.sb.bc_edit(thing.table.erp, row[thing.table.erp_id], {erp_name: value})
            else:
                await self.sb.dv_edit(thing.table.crm, row[thing.table.crm_id], {crm_name: value or None})
            thing.last[side][erp_name] = value
            thing.history.append((time.monotonic(), side, erp_name, value))
        return True

    async def delete(self, thing: Thing, side: Side) -> None:
        if thing.table is CUSTOMERS and any(t.parent == thing.key for t in self.things):
            return  # a customer with contacts stays: its contacts' parent lookups must resolve
        [row] = await self.stores.find(thing.table, side, thing.key) or [None]
        if row is None:
            return
        url = (f"{self.sb.bc_url}/_admin/tables/{thing.table.erp}/{row[thing.table.erp_id]}" if side is Side.ERP
               else f"{self.sb.dv_url}/_admin/tables/{thing.table.crm}/{row[thing.table.crm_id]}")
        thing.deleted = side
        await self.sb._admin("DELETE", url, who=BC_PERSON if side is Side.ERP else DV_PERSON)

    async def act(self) -> str:
        rng = self.rng
        kind = rng.choices(["create", "edit", "both_sides", "burst", "delete"], weights=[14, 60, 12, 8, 6])[0]
        table = rng.choice((CUSTOMERS, CUSTOMERS, CONTACTS))
        side = rng.choice((Side.ERP, Side.CRM))
        things = self.alive(table)
        if kind == "create" or not things:
            await self.create(table, side)
            kind = "create"
        elif kind == "edit":
            await self.edit(rng.choice(things), side)
        elif kind == "both_sides":
            thing = rng.choice(things)
            await asyncio.gather(self.edit(thing, Side.ERP), self.edit(thing, Side.CRM))
        elif kind == "burst":
            await self.edit(rng.choice(things), side, count=rng.randint(3, 8))
        else:
            await self.delete(rng.choice(things), side)
        return kind


async def restart_host(sb: Sandbox) -> None:
    """Kill the Functions host mid-stream (in-flight messages are abandoned and redelivered, as Service Bus does
    when a worker dies) and start it again."""
    await sb._on_host(sb.host.stop())
    await sb._on_host(sb.host.start())


async def full_sync_interrupted(sb: Sandbox, mappings: Iterable[str], *, after_s: float) -> None:
    """A full sync cancelled after `after_s` seconds, then run again: it resumes from its checkpoint."""
    names = list(mappings)

    async def run() -> None:
        engine = await sb.host.runtime.engine()  # type: ignore[union-attr]
        await engine.sync_full(names, dry_run=False)

    task = asyncio.ensure_future(sb._on_host(run()))
    await asyncio.sleep(after_s)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sb._on_host(run())


STORM = {"faults": {"error_ratio": 0.05, "error_status": 503, "timeout_ratio": 0.005, "timeout_seconds": 2.0},
         "delivery": {"drop_ratio": 0.05, "duplicate_ratio": 0.1, "delay_jitter_ms": 400.0}}
CALM = {"faults": {"error_ratio": 0.0, "timeout_ratio": 0.0},
        "delivery": {"drop_ratio": 0.0, "duplicate_ratio": 0.0, "delay_jitter_ms": 0.0}}
# Throttling: roughly one request in ten over the window is refused with 429 at the storm's pace.
THROTTLE = {"limits": {"window_seconds": 0.5, "window_requests": 120}}
OPEN = {"limits": {"window_seconds": 0.5, "window_requests": 100000}}


async def configure(sb: Sandbox, config: dict[str, Any], seed: int) -> dict[str, Any]:
    answers = {}
    for name, url in (("erp", sb.bc_url), ("crm", sb.dv_url)):
        body = {k: dict(v) for k, v in config.items()}
        for part in ("faults", "delivery"):
            if part in body:
                body[part]["seed"] = seed + (0 if name == "erp" else 1)
        r = await sb.http.patch(f"{url}/_admin/config", json=body)
        r.raise_for_status()
        answers[name] = r.json()
    return answers


async def prepare(sb: Sandbox, people: People, records: int) -> None:
    people.currency = next(c["transactioncurrencyid"] for c in await sb.dv_rows("transactioncurrencies")
                           if c.get("isocurrencycode") == "EUR")
    engine = await sb._on_host(sb.host.runtime.engine())  # type: ignore[union-attr]
    await sb._on_host(engine.sync_full(list(REFERENCE), dry_run=False))
    split = {(CUSTOMERS, Side.ERP): 0.3, (CUSTOMERS, Side.CRM): 0.3, (CONTACTS, Side.ERP): 0.2,
             (CONTACTS, Side.CRM): 0.2}
    for (table, side), share in split.items():
        for _ in range(max(1, int(records * share))):
            await people.create(table, side)


async def storm(sb: Sandbox, people: People, operations: int, seed: int, *, restarts: int) -> None:
    rng = people.rng
    restart_at = {operations * (i + 1) // (restarts + 1) for i in range(restarts)}
    gate = asyncio.Semaphore(8)
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        async with gate:
            try:
                people.tally.operations[await people.act()] += 1
            except Exception:  # a person's edit the emulator refused (e.g. a record deleted meanwhile)
                people.tally.failed_operations += 1

    for n in range(operations):
        if n % 250 == 0:
            calm = rng.random() < 0.25
            await configure(sb, {**(CALM if calm else STORM), **(OPEN if calm else THROTTLE)}, seed + n)
        if n in restart_at:
            await asyncio.gather(*pending)
            await restart_host(sb)
            people.tally.host_restarts += 1
        task = asyncio.ensure_future(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(0)
        if len(pending) >= 8:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)


DRAIN_S = 3600.0


def progress(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def quiesce(sb: Sandbox, *, max_rounds: int = 8) -> tuple[float, int]:
    """Faults off; wait for the queue, then the product's own catch-up until a round changes nothing."""
    await configure(sb, {**CALM, **OPEN}, 0)
    started = time.monotonic()
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - the count is reported
        # The storm's backlog drains first (at 10 000 operations it takes minutes): part of converging.
        await sb.settle(timeout=DRAIN_S)
        before = await _fingerprint(sb)
        await sb.fire("timer_modified_sync")
        await sb.fire("timer_retry_failed")
        await asyncio.sleep(0.5)  # the echoes of catch-up writes arrive as webhooks
        await sb.settle(timeout=DRAIN_S)
        if await _fingerprint(sb) == before:
            break
    return time.monotonic() - started, rounds


async def _fingerprint(sb: Sandbox) -> tuple[Any, ...]:
    parts = []
    for t in TABLES.values():
        for side, entity in ((Side.ERP, t.erp), (Side.CRM, t.crm)):
            rows = await (sb.bc_rows(entity) if side is Side.ERP else sb.dv_rows(entity))
            parts.append(tuple(sorted(str(sorted((k, str(v)) for k, v in r.items())) for r in rows)))
    return tuple(parts)


async def state_of(sb: Sandbox) -> tuple[dict[str, list[Any]], Counter[str]]:
    """Every coupling of the judged mappings, and how many error records are left — read on the host's loop,
    where the app's Table clients live."""
    async def read() -> tuple[dict[str, list[Any]], Counter[str]]:
        engine = await sb.host.runtime.engine()  # type: ignore[union-attr]
        couplings = {m: [c async for c in engine.state.couplings.list_couplings(m)] for m in MAPPINGS}
        errors = Counter([f"{e.mapping} {e.direction}: {e.message[:120]}"
                          async for e in engine.state.errors.list_errors()])
        return couplings, errors
    return await sb._on_host(read())


async def judge(sb: Sandbox, people: People, converge_s: float, rounds: int) -> Verdict:
    stores = Stores(sb)
    all_couplings, errors = await state_of(sb)
    divergent: list[str] = []
    duplicates: list[str] = []
    lost: list[str] = []
    trail: list[str] = []
    orphans: list[str] = []
    pairs = records = 0
    for table in TABLES.values():
        erp_rows = {r[table.erp_id]: r for r in await stores.rows(Side.ERP, table.erp, fresh=True)}
        crm_rows = {r[table.crm_id]: r for r in await stores.rows(Side.CRM, table.crm, fresh=True)}
        couplings = all_couplings[table.mapping]
        by_erp = {c.erp_id: c for c in couplings if c.erp_id}
        by_crm = {c.crm_id: c for c in couplings if c.crm_id}
        ours = {t.key: t for t in people.things if t.table is table}
        for side, rows, name in ((Side.ERP, erp_rows, table.erp_key), (Side.CRM, crm_rows, table.crm_key)):
            counts = Counter(r.get(name) for r in rows.values() if r.get(name) in ours)
            duplicates += [f"{table.mapping}: {side.value} {name} {k!r} appears {n} times"
                           for k, n in counts.items() if n > 1]
        for key, thing in ours.items():
            erp = [r for r in erp_rows.values() if r.get(table.erp_key) == key]
            crm = [r for r in crm_rows.values() if r.get(table.crm_key) == key]
            records += len(erp) + len(crm)
            if thing.deleted is not None:
                # The deletion rule (remove_coupling): the other side's record may stay, uncoupled; what must
                # not stay is a coupling to the deleted record.
                for mine, other in [(r[table.erp_id], by_erp) for r in erp] + [(r[table.crm_id], by_crm)
                                                                                 for r in crm]:
                    c = other.get(mine)
                    if c is not None and not c.pending and (c.erp_id not in erp_rows or c.crm_id not in crm_rows):
                        orphans.append(f"{table.mapping} {key}: coupled to a deleted record ({thing.deleted.value} "
                                       "deletion never caught up)")
                continue
            if not erp or not crm:
                where = "ERP" if erp else "CRM" if crm else "neither side"
                orphans.append(f"{table.mapping} {key}: alive only on {where} (made on {thing.born.value})")
                continue
            e, c = erp[0], crm[0]
            coupling = by_erp.get(e[table.erp_id])
            if coupling is None or coupling.crm_id != c[table.crm_id]:
                orphans.append(f"{table.mapping} {key}: on both sides but not coupled to each other")
                continue
            pairs += 1
            for erp_name, crm_name, _ in table.fields:
                ev, cv = blank(e.get(erp_name)), blank(c.get(crm_name))
                if ev != cv:
                    divergent.append(f"{table.mapping} {key}.{erp_name}: ERP {ev!r} vs CRM {cv!r}")
                    continue
                wrote = [blank(thing.last[s][erp_name]) for s in Side if erp_name in thing.last[s]]
                if wrote and ev not in wrote:
                    edits = [f"{s.value}={v!r}@{t - people.started:.2f}s" for t, s, n, v in thing.history
                             if n == erp_name][-6:]
                    lost.append(f"{table.mapping} {key}.{erp_name}: both sides hold {ev!r}, people last wrote "
                                f"{' / '.join(repr(w) for w in wrote)} (edits: {', '.join(edits)})")
                    trail += write_trail(sb, table, e[table.erp_id], c[table.crm_id], erp_name, crm_name)
    return Verdict(pairs, records, divergent, duplicates, lost, orphans, converge_s, rounds, errors, trail)


def write_trail(sb: Sandbox, table: Table, erp_id: str, crm_id: str, erp_name: str, crm_name: str) -> list[str]:
    """Every write of one field on both sides (the emulators' change logs: who, when, before → after) and the
    app's log lines about the pair: what a lost update needs to be explained."""
    writes = []
    for side, app, entity, rid, name in ((Side.ERP, sb.bc_app, table.erp, erp_id, erp_name),
                                         (Side.CRM, sb.dv_app, table.crm, crm_id, crm_name)):
        for ch in app.state.emulator.store.changes:
            if ch.table == entity and ch.record_id == rid and name in ch.changed_fields:
                before, after = (ch.before or {}).get(name), (ch.after or {}).get(name)
                writes.append((ch.at, f"  {ch.at:%H:%M:%S.%f} {side.value} {ch.actor.name or ch.actor.user_id}: "
                                      f"{before!r} → {after!r} (v{(ch.after or {}).get('versionnumber', '')})"))
    # The app's log lines about the pair, on the same clock (events carry monotonic times).
    offset = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic())
    for e in sb.events:
        if erp_id in e.message or crm_id in e.message:
            at = offset + dt.timedelta(seconds=e.at)
            writes.append((at, f"  {at:%H:%M:%S.%f} log {e.level} {e.logger}: {e.message[:240]}"))
    return [f"- trail of {table.mapping} {erp_id} / {crm_id} .{erp_name}:", *(t for _, t in sorted(writes))]


async def run(operations: int, records: int, seed: int, *, restarts: int | None = None,
              quiet: bool = False) -> tuple[Verdict, Tally, float]:
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        async with Sandbox(pack=chaos_pack(Path(folder)), records=4, seed=seed, notification_delay_ms=50,
                           dataverse_delay_ms=20, register_webhooks=False) as sb:
            people = People(sb, rng, Stores(sb), prefix=f"K{seed % 100:02d}")
            await prepare(sb, people, records)
            progress(f"prepared {len(people.things)} records")
            await sb.register_webhooks()
            await configure(sb, {**STORM, **THROTTLE}, seed)
            await full_sync_interrupted(sb, MAPPINGS, after_s=1.0)
            await storm(sb, people, operations, seed,
                        restarts=restarts if restarts is not None else max(1, operations // 2500))
            people.tally.injected = await configure(sb, {}, 0)
            people.tally.backlog = sb.queue.active_count + len(sb.queue.scheduled)
            progress(f"storm over after {time.monotonic() - started:.0f} s; {people.tally.backlog} message(s) queued")
            converge_s, rounds = await quiesce(sb)
            progress(f"quiet after {converge_s:.0f} s ({rounds} catch-up rounds); judging")
            verdict = await judge(sb, people, converge_s, rounds)
    return verdict, people.tally, time.monotonic() - started


def render(verdict: Verdict, tally: Tally, total_s: float, operations: int, seed: int) -> str:
    injected = ", ".join(f"{side}: {d['dropped']} dropped, {d['duplicated']} duplicated, {d['delayed']} delayed "
                         f"of {d['deliveries']}"
                         for side, d in ((s, a["delivery_counts"]) for s, a in tally.injected.items()))
    lines = [
        "| operations | seed | records judged | coupled pairs | divergent | duplicates | lost updates | orphans | "
        "converged in | catch-up rounds | error records left | run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {operations} | {seed} | {verdict.records} | {verdict.pairs} | {len(verdict.divergent)} | "
        f"{len(verdict.duplicates)} | {len(verdict.lost)} | {len(verdict.orphans)} | {verdict.converge_s:.1f} s | "
        f"{verdict.rounds} | {sum(verdict.error_records.values())} | {total_s:.0f} s |",
        "",
        f"Operations: {dict(tally.operations)}; refused by the emulators (record gone meanwhile): "
        f"{tally.failed_operations}; host restarts: {tally.host_restarts}; queue backlog when the storm ended: "
        f"{tally.backlog} message(s). Webhook deliveries: {injected}.",
    ]
    if verdict.error_records:
        lines.append("Error records left (each names the rule that stops it; the sandbox's seed data holds records "
                     "the pack cannot sync, e.g. salespeople with no Sales user):")
    lines += [f"- error record ({n}×): {text}" for text, n in verdict.error_records.most_common(8)]
    for label, items in (("divergent", verdict.divergent), ("duplicates", verdict.duplicates),
                         ("lost", verdict.lost), ("orphans", verdict.orphans)):
        lines += [f"- {label}: {x}" for x in items[:10]]
    return "\n".join(lines + verdict.trail[:400])


def write_results(text: str, path: Path = ROOT / "bench" / "RESULTS.md") -> None:
    begin, end = "<!-- chaos:begin -->", "<!-- chaos:end -->"
    content = path.read_text(encoding="utf-8")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    block = f"{begin}\n## Chaos (`make chaos`, {stamp})\n\n{text}\n{end}"
    if begin in content:
        content = content[:content.index(begin)] + block + content[content.index(end) + len(end):]
    else:
        content = content.rstrip() + "\n\n" + block + "\n"
    path.write_text(content, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    verdict, tally, total = asyncio.run(run(args.operations, args.records, args.seed))
    text = render(verdict, tally, total, args.operations, args.seed)
    print(text)
    if not args.no_write:
        write_results(text)
    raise SystemExit(0 if verdict.clean else 1)


if __name__ == "__main__":
    main()
