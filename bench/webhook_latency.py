"""Webhook-to-destination delay through the sandbox (the Function App on the local Functions host, both
emulators, Azurite): a person's change on one side, timed from the write until the other system's store
holds the value (a store listener, no polling). Emulator latency 0, BC notification delay 0, Dataverse's
asynchronous-service delay 0: what is measured is dualsync's own path (webhook → queue → processor → write).

    python -m bench.webhook_latency --changes 200 --rate 10

Changes go at a steady `--rate` per second, round-robin over `--records` coupled customers, first
Business Central → Dataverse (customer phone), then Dataverse → Business Central (account phone).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from emulators.sandbox import Sandbox


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


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
    (`exact`), or held it or a later edit of the same record (`reflected`: a sync reads the record as it is
    now, so an edit overtaken by the next one on the same record is carried by that one)."""

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
    order = list(sent)
    reflected = []
    for n, value in enumerate(order):
        later = [arrived[v] for v in order[n::len(ids)] if v in arrived]  # this record's edits from this one on
        if later:
            reflected.append((min(later) - sent[value]) * 1000)
    return Streamed(changes, sending, [(arrived[v] - sent[v]) * 1000 for v in sent if v in arrived], reflected)


async def run_direction(sb: Sandbox, pairs: list[tuple[str, str]], *, to_crm: bool, changes: int,
                        rate: float) -> tuple[list[float], int]:
    if to_crm:
        leg = Leg(lambda cid, v: sb.bc_edit("customers", cid, {"phoneNumber": v}), sb.dv_app, "accounts",
                  "telephone1")
    else:
        leg = Leg(lambda aid, v: sb.dv_edit("accounts", aid, {"telephone1": v}), sb.bc_app, "customers",
                  "phoneNumber")
    ids = [customer_id if to_crm else account_id for customer_id, account_id in pairs]
    done = await stream(sb, ids, leg, prefix="T-" if to_crm else "U-", changes=changes, rate=rate)
    return done.exact, done.sent


async def main(changes: int, rate: float, records: int) -> None:
    async with Sandbox(records=0, notification_delay_ms=0, dataverse_delay_ms=0, latency_ms=0,
                       register_webhooks=False) as sb:
        for i in range(records):
            await sb.bc_create("customers", {"number": f"C98{i:03d}", "displayName": f"Bench {i}", "type": "Company",
                                             "blocked": " ", "creditLimit": 0})
        await sb.register_webhooks()
        await sb.manage("POST", "full-sync", params={"mapping": "customers", "dry_run": "false",
                                                     "direction": "to_crm"})
        accounts = {a["accountnumber"]: a["accountid"] for a in await sb.dv_rows("accounts")}
        pairs = [(c["id"], accounts[c["number"]]) for c in await sb.bc_rows("customers") if c["number"] in accounts]
        await sb.settle()
        print(f"webhook → destination, {changes} changes at {rate:g}/s over {len(pairs)} coupled records; "
              "emulator latency 0, BC notification delay 0, Dataverse webhook delay 0")
        for to_crm, label in ((True, "Business Central → Dataverse"), (False, "Dataverse → Business Central")):
            delays, sent = await run_direction(sb, pairs, to_crm=to_crm, changes=changes, rate=rate)
            print(f"{label}: {summary(delays, sent)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=200, help="changes per direction")
    parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
    parser.add_argument("--records", type=int, default=20, help="coupled customers the changes go round")
    args = parser.parse_args()
    asyncio.run(main(args.changes, args.rate, args.records))
