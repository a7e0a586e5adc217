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
from collections.abc import Callable
from typing import Any

from emulators.sandbox import Sandbox


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def listen(app: Any, table: str, field: str, prefix: str, arrived: dict[str, float]) -> Callable[[Any], None]:
    """Record when `table.field` first holds each value starting with `prefix` (runs inside the write)."""
    def on_change(change: Any) -> None:
        value = (change.after or {}).get(field) if change.table == table else None
        if isinstance(value, str) and value.startswith(prefix):
            arrived.setdefault(value, time.monotonic())
    app.state.emulator.store.listeners.append(on_change)
    return on_change


async def run_direction(sb: Sandbox, pairs: list[tuple[str, str]], *, to_crm: bool, changes: int,
                        rate: float) -> tuple[list[float], int]:
    arrived: dict[str, float] = {}
    prefix = "T-" if to_crm else "U-"
    if to_crm:
        listen(sb.dv_app, "accounts", "telephone1", prefix, arrived)
    else:
        listen(sb.bc_app, "customers", "phoneNumber", prefix, arrived)
    sent: dict[str, float] = {}
    for i in range(changes):
        value, (customer_id, account_id) = f"{prefix}{i:05d}", pairs[i % len(pairs)]
        started = time.monotonic()
        sent[value] = started
        if to_crm:
            await sb.bc_edit("customers", customer_id, {"phoneNumber": value})
        else:
            await sb.dv_edit("accounts", account_id, {"telephone1": value})
        await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
    deadline = time.monotonic() + 30
    while len(arrived) < changes and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await sb.settle()
    return [(arrived[v] - sent[v]) * 1000 for v in sent if v in arrived], changes


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
            if not delays:
                print(f"{label}: nothing arrived")
                continue
            print(f"{label}: {len(delays)}/{sent} arrived; median {statistics.median(delays):.0f} ms, "
                  f"p95 {percentile(delays, 95):.0f} ms, max {max(delays):.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=200, help="changes per direction")
    parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
    parser.add_argument("--records", type=int, default=20, help="coupled customers the changes go round")
    args = parser.parse_args()
    asyncio.run(main(args.changes, args.rate, args.records))
