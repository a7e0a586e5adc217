"""Data event → Dataverse delay through the sandbox with the fo-dataverse pack (the Function App on the local
Functions host, the Finance and Operations and Dataverse emulators, Azurite): a steady stream of a person's
edits of coupled F&O customers, each timed from the write until Dataverse's store holds the value (a store
listener, no polling); then the reverse stream, Dataverse accounts → F&O customers.

    python -m bench.event_latency_fo --changes 300 --rate 50 --records 20 --event-delay-ms 0

Emulator latency 0 and Dataverse's asynchronous-service delay 0; F&O sends each data event `--event-delay-ms`
after the commit (the emulator's default is 100 ms), one endpoint's events one after another, in commit order.
Everything runs in this one process (the sandbox's servers are threads), the load generator included.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.webhook_latency import Leg, stream, summary
from emulators.sandbox import Sandbox

PACK = "templates/fo-dataverse.yaml"
PROCESSOR = "functions.processor"  # logs one line per queue message it processed


async def coupled(sb: Sandbox, records: int) -> list[tuple[str, str]]:
    """`records` organisation customers Ava creates in USMF (before any data event is activated), synced to
    Dataverse by a full sync; returns (F&O key, account id) pairs."""
    for i in range(records):
        await sb.fo_create("CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": f"BX-{i:04d}",
                                           "PartyType": "Organization", "OrganizationName": f"Bench {i}",
                                           "CustomerGroupId": "10", "SalesCurrencyCode": "USD",
                                           "PaymentTerms": "Net30"})
    await sb.register_webhooks()
    await sb.manage("POST", "full-sync", params={"mapping": "customers", "dry_run": "false", "direction": "to_crm"})
    accounts = {a["accountnumber"]: a["accountid"] for a in await sb.dv_rows("accounts")
                if str(a.get("accountnumber") or "").startswith("BX-")}
    await sb.settle()
    return [(c["@key"], accounts[c["CustomerAccount"]]) for c in await sb.fo_rows("CustomersV3")
            if c["CustomerAccount"] in accounts]


async def main(args: argparse.Namespace) -> None:
    async with Sandbox(pack=PACK, records=0, dataverse_delay_ms=0, latency_ms=0, event_delay_ms=args.event_delay_ms,
                       register_webhooks=False) as sb:
        pairs = await coupled(sb, args.records)
        if len(pairs) != args.records:
            raise SystemExit(f"only {len(pairs)} of {args.records} customers were coupled")
        print(f"data event / webhook → destination, {args.changes} changes at {args.rate:g}/s over {len(pairs)} "
              f"coupled customers; emulator latency 0, F&O data-event delay {args.event_delay_ms:g} ms, "
              "Dataverse webhook delay 0")
        legs = [("Finance and Operations → Dataverse", "T-", [key for key, _ in pairs],
                 Leg(lambda key, v: sb.fo_edit("CustomersV3", key, {"PrimaryContactPhone": v}), sb.dv_app,
                     "accounts", "telephone1")),
                ("Dataverse → Finance and Operations", "U-", [account for _, account in pairs],
                 Leg(lambda account, v: sb.dv_edit("accounts", account, {"telephone1": v}), sb.fo_app,
                     "CustomersV3", "PrimaryContactPhone"))]
        missing = []
        for label, prefix, ids, leg in legs:
            since, cpu, wall = time.monotonic(), time.process_time(), time.perf_counter()
            done = await stream(sb, ids, leg, prefix=prefix, changes=args.changes, rate=args.rate, schedule=True)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            runs = sum(1 for e in sb.events_since(since) if e.logger == PROCESSOR)
            print(f"{label}: sent at {done.sent / done.seconds:.1f}/s; {runs} processor runs "
                  f"({runs / done.sent:.2f} per edit); this process used {cpu:.1f} s CPU in {wall:.1f} s "
                  "(the sandbox's emulators, Functions host and this load generator share one interpreter)\n"
                  f"  the value itself: {summary(done.exact, done.sent)}\n"
                  f"  the value or a later edit of the same record: {summary(done.reflected, done.sent)}")
            if len(done.reflected) < done.sent:
                missing.append(f"{label}: {done.sent - len(done.reflected)} of {done.sent} edits never reached "
                               "the other side (neither they nor a later edit of the record)")
        errors = [e for e in sb.events if e.level == "ERROR"]
        if errors:
            print(f"{len(errors)} errors logged by the app, first: {errors[0].message}")
        if missing:
            raise SystemExit("; ".join(missing))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.event_latency_fo", description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=300, help="changes per direction")
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second")
    parser.add_argument("--records", type=int, default=20, help="coupled customers the changes go round")
    parser.add_argument("--event-delay-ms", type=float, default=0.0,
                        help="F&O's delay between a commit and its data event (emulator default 100)")
    asyncio.run(main(parser.parse_args()))
